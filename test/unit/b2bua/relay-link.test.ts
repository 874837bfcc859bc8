/**
 * The B2BUA's relay link (plugin/b2bua/relay-link.ts) against a real relay control
 * server: `up` once connected, a closed connection found by its ping reported once
 * through `onLost`, then connected again (and `up`) by itself once the relay is back on
 * its port; `query` reaches the relay.
 */
import t from 'tap';
import { pino } from 'pino';
import { MsrpRelay } from '../../../media/relay/relay.js';
import { ControlServer } from '../../../media/relay/control.js';
import { RelayLink } from '../../../plugin/b2bua/relay-link.js';
import { until } from '../../../lab/proc.js';

t.test('up, lost once when the relay goes, up again when it is back', async (t) => {
  const relay = new MsrpRelay({ port: 0 });
  await relay.listen();
  let server = new ControlServer(relay);
  const port = await server.listen();
  const link = new RelayLink('127.0.0.1', port, () => undefined, pino({ level: 'silent' }), 500, 50);
  let lost = 0;
  link.onLost = () => void lost++;
  t.teardown(async () => {
    await link.close();
    await server.close();
    await relay.close();
  });
  t.equal(link.up, false, 'not up before it connected');
  await link.warm();
  t.equal(link.up, true, 'up once connected');
  const q = await link.query({ 'call-id': 'nope' });
  t.same(q.result === 'error' ? q['error-code'] : q.result, 'UNKNOWN_SESSION', 'query reaches the relay');

  await server.close();
  await until(async () => (lost > 0 ? true : undefined), 5000, 'onLost', 10);
  t.equal(link.up, false, 'down once the connection is lost');
  await t.rejects(link.query({ 'call-id': 'x' }), 'a verb while the relay is gone rejects');
  t.equal(lost, 1, 'reported once');

  server = new ControlServer(relay, { port });
  await server.listen();
  await until(async () => (link.up ? true : undefined), 5000, 'up again', 10);
  t.pass('connected again by itself');
  t.equal(lost, 1, 'still one loss');
});
