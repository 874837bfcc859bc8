// The relay process: configuration, start-up line, control reachable, clean stop.
import t from 'tap';
import net from 'node:net';
import { readConfig } from '../../../media/main.js';
import { NetstringDecoder, encodeNetstring } from '../../../media/relay/netstring.js';
import { startRelayProcess } from './helpers.js';

t.test('readConfig', async t => {
  t.same(readConfig([], {}), { host: '127.0.0.1', msrpPort: 2855, controlPort: 2856, history: 'run/history.mdb' });
  t.same(readConfig(['--msrp-port', '0', '--history', 'off'], { RELAY_CONTROL_PORT: '9999' }),
    { host: '127.0.0.1', msrpPort: 0, controlPort: 9999, history: null });
  t.throws(() => readConfig(['--msrp-port', 'x'], {}), /msrp-port must be a port number/);
  t.throws(() => readConfig([], { RELAY_CONTROL_PORT: '70000' }), /control-port/);
  t.throws(() => readConfig(['--bogus'], {}));
});

t.test('process starts, answers ping, stops on SIGTERM', async t => {
  const dir = t.testdir();
  const { child, ready } = await startRelayProcess<{ msrpPort: number; controlPort: number }>(
    ['--msrp-port', '0', '--control-port', '0', '--history', `${dir}/h.mdb`],
  );
  t.ok(ready.msrpPort > 0 && ready.controlPort > 0);
  const sock = net.connect({ host: '127.0.0.1', port: ready.controlPort });
  const dec = new NetstringDecoder();
  const reply = await new Promise<unknown>(resolve => {
    sock.on('data', d => {
      const [m] = dec.push(d);
      if (m) resolve(JSON.parse(m.toString()));
    });
    sock.write(encodeNetstring(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping', params: {} })));
  });
  t.same(reply, { jsonrpc: '2.0', id: 7, result: { result: 'ok', sessions: 0 } });
  sock.destroy();
  const code = await new Promise<number | null>(resolve => {
    child.once('exit', c => resolve(c));
    child.kill('SIGTERM');
  });
  t.equal(code, 0, 'clean exit');
});
