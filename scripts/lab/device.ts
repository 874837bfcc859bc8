/**
 * A lab device: registers <user> from its own SIP port (feature tags of a CPM chat
 * client, or MMTEL-only with --mmtel), then a sipp UAS on that port answers (or, with
 * --ring, only rings) every INVITE until Ctrl-C. On Ctrl-C / SIGTERM it unregisters
 * (REGISTER, Contact expires=0, same Call-ID, next CSeq; waits at most 2 s for the
 * answer) before it exits, so no dead contact stays behind.
 *
 *   npx tsx scripts/lab/device.ts bob [--ring | --pager] [--mmtel] [--instance urn:uuid:...]
 * --pager: answers OPTIONS and MESSAGE with 200 instead (no INVITE).
 * Env: LAB_SIP_PORT (5060), LAB_RUN_DIR (run/lab; the sipp traces go to <dir>/devices/).
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { Device, newInstance } from '../../lab/calls.js';
import { ROOT } from '../../lab/lab.js';
import { MMTEL_DEVICE_PARAMS, CPM_DEVICE_PARAMS } from '../../lab/sip.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { ring: { type: 'boolean' }, pager: { type: 'boolean' }, mmtel: { type: 'boolean' }, instance: { type: 'string' } },
});
const user = positionals[0];
if (!user) {
  console.error('usage: npx tsx scripts/lab/device.ts <user> [--ring | --pager] [--mmtel] [--instance urn:uuid:...]');
  process.exit(2);
}
const sipPort = Number(process.env.LAB_SIP_PORT ?? 5060);
const instance = values.instance ?? newInstance();
const dev = await Device.start({
  dir: process.env.LAB_RUN_DIR || join(ROOT, 'run', 'lab'),
  sipPort,
  user,
  instance,
  params: values.mmtel ? MMTEL_DEVICE_PARAMS : CPM_DEVICE_PARAMS,
  behaviour: { kind: values.pager ? 'pager' : values.ring ? 'ring' : 'answer' },
});
const plays = values.pager ? 'answers OPTIONS and MESSAGE' : values.ring ? 'rings' : 'answers';
console.log(`device ${user} ${instance} on udp:127.0.0.1:${dev.port} (${plays}); Ctrl-C to stop`);
const UNREGISTER_MS = 2000;
async function stop(): Promise<void> {
  let code = 0;
  try {
    const r = await dev.unregister(UNREGISTER_MS);
    if (r.status === 200) console.log(`device ${user} ${instance} unregistered`);
    else {
      console.error(`device ${user}: unregister answered ${r.status} ${r.reason}`);
      code = 1;
    }
  } catch (err) {
    console.error(`device ${user}: unregister failed: ${err instanceof Error ? err.message : String(err)}`);
    code = 1;
  }
  await dev.stop();
  process.exit(code);
}
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
