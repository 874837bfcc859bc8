/**
 * A lab device: registers <user> from its own SIP port (feature tags of a CPM chat
 * client, or MMTEL-only with --mmtel), then a sipp UAS on that port answers (or, with
 * --ring, only rings) every INVITE until Ctrl-C.
 *
 *   npx tsx scripts/lab/device.ts bob [--ring] [--mmtel] [--instance urn:uuid:...]
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { Device, newInstance } from '../../lab/calls.js';
import { ROOT } from '../../lab/lab.js';
import { MMTEL_DEVICE_PARAMS, CPM_DEVICE_PARAMS } from '../../lab/sip.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { ring: { type: 'boolean' }, mmtel: { type: 'boolean' }, instance: { type: 'string' } },
});
const user = positionals[0];
if (!user) {
  console.error('usage: npx tsx scripts/lab/device.ts <user> [--ring] [--mmtel] [--instance urn:uuid:...]');
  process.exit(2);
}
const sipPort = Number(process.env.LAB_SIP_PORT ?? 5060);
const instance = values.instance ?? newInstance();
const dev = await Device.start({
  dir: join(ROOT, 'run', 'lab'),
  sipPort,
  user,
  instance,
  params: values.mmtel ? MMTEL_DEVICE_PARAMS : CPM_DEVICE_PARAMS,
  behaviour: { kind: values.ring ? 'ring' : 'answer' },
});
console.log(`device ${user} ${instance} on udp:127.0.0.1:${dev.port} (${values.ring ? 'rings' : 'answers'}); Ctrl-C to stop`);
const stop = (): void => void dev.stop().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
