/**
 * `core.fork` (docs/jsonrpc.md): the methods it forks (INVITE, OPTIONS, MESSAGE; RFC 3841
 * applies to any request) and the clear -32602 for the others. A device that lists its
 * `methods` is only a target for those (RFC 3841 §7.2.2.1, implicit preference).
 */
import t from 'tap';
import { pino } from 'pino';
import { buildMethods, type MethodDeps } from '../../../plugin/rpc/methods.js';
import { RpcError } from '../../../wire/errors.js';
import { parseConfig } from '../../../plugin/config/load.js';
import { ServiceMetrics } from '../../../plugin/metrics/metrics.js';
import type { DeviceStore } from '../../../plugin/devices/store.js';
import { device, NOW, TAGS } from '../rules/fixtures/build.js';

const phone = device('phone', TAGS.cpm, { contact: 'sip:bob@127.0.0.1:6001', received: 'udp:127.0.0.1:6001' });
const pager = device('pager', { ...TAGS.cpm, methods: 'MESSAGE' }, { contact: 'sip:bob@127.0.0.1:6002', received: 'udp:127.0.0.1:6002' });

const devices = { list: (aor: string) => (aor === 'sip:bob@example.net' ? [phone, pager] : []) } as unknown as DeviceStore;
const deps: MethodDeps = {
  config: parseConfig({ rpcPort: 0, httpPort: 0, dataDir: '/nonexistent', logLevel: 'silent' }),
  devices,
  xdm: { load: () => ({ blacklist: null, ruleset: null }) as never },
  metrics: new ServiceMetrics(),
  log: pino({ level: 'silent' }),
  now: () => NOW,
};
const fork = buildMethods(deps)['core.fork']!;

const request = (method: string, user = 'bob'): string =>
  [
    `${method} sip:${user}@example.net SIP/2.0`,
    'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx',
    'From: <sip:alice@example.net>;tag=1',
    `To: <sip:${user}@example.net>`,
    'Call-ID: c1',
    `CSeq: 1 ${method}`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');

const uris = (r: unknown): string[] => (r as { rtjson: { routes: { uri: string }[] } }).rtjson.routes.map((x) => x.uri).sort();

const cases: Array<[string, string, string, string[] | number]> = [
  // name, method, user, routes (sorted URIs) or the code of a non-200 answer
  ['INVITE forks to the devices that take INVITE', 'INVITE', 'bob', ['sip:bob@127.0.0.1:6001']],
  ['OPTIONS likewise (the pager lists MESSAGE only)', 'OPTIONS', 'bob', ['sip:bob@127.0.0.1:6001']],
  ['MESSAGE reaches both', 'MESSAGE', 'bob', ['sip:bob@127.0.0.1:6001', 'sip:bob@127.0.0.1:6002']],
  ['no device: 480', 'OPTIONS', 'carol', 480],
  ['no device: 480 for MESSAGE too', 'MESSAGE', 'carol', 480],
];
for (const [name, m, user, want] of cases) {
  t.test(name, async (t) => {
    const r = await fork.handler({ v: 1, msg: request(m, user), src: 'udp:127.0.0.1:5070' }, undefined);
    if (typeof want === 'number') t.same(r, { code: want, reason: 'Temporarily Unavailable' });
    else {
      t.match(r, { code: 200, rtjson: { routing: 'parallel' } });
      t.same(uris(r), want);
    }
  });
}

for (const m of ['BYE', 'SUBSCRIBE', 'REGISTER']) {
  t.test(`${m} is refused with -32602`, async (t) => {
    const err = await Promise.resolve()
      .then(() => fork.handler({ v: 1, msg: request(m), src: 'x' }, undefined))
      .then(
        () => null,
        (e: unknown) => e,
      );
    t.ok(err instanceof RpcError);
    t.match(err, { code: -32602, data: 'msg is not a INVITE, OPTIONS, MESSAGE request' });
  });
}
