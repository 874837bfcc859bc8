/**
 * pf.cfg's reading of a proxy decision's text form (route[PF_TEXT_DECISION]) when the
 * text holds an escape other than \" and \r\n. The decision service never sends one
 * (plugin/rpc/decision-text.ts refuses a backslash), so a stand-in service answers
 * pf.invite here: pf.cfg must then decode the string with jansson, and the header
 * arrives with its backslash.
 */
import t from 'tap';
import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { Kamailio, runDir } from '../../lab/lab.js';
import { call, Device, newInstance } from '../../lab/calls.js';
import { headerValues } from '../../lab/sipp.js';
import { method } from '../../wire/dispatcher.js';
import { JsonRpcServer } from '../../wire/server.js';

const dir = runDir('it-text-decision');
const device = await Device.start({ dir, sipPort: 0, user: 'pat', instance: newInstance(), behaviour: { kind: 'answer' }, register: false });

/**
 * A stand-in decision service on wire/server.ts: every pf.invite gets `decision` (the
 * lab's PF_INVITE_FORK carries the fork), any other method -32601.
 */
const routes = { version: '1.0', routing: 'parallel', routes: [{ uri: `sip:pat@127.0.0.1:${device.port}` }] };
const decision = `proxy|proxy||||${JSON.stringify({ code: 200, rtjson: routes })}|X-Escaped: a\\b\r\n`;
const server = new JsonRpcServer({
  methods: { 'pf.invite': method(Type.Unknown(), () => decision) },
  log: pino({ level: 'silent' }),
  maxFrameBytes: 1 << 20,
});
const port = await server.listen(0, '127.0.0.1');
const kamailio = await Kamailio.start({ dir, rpc: [{ port }] });
t.teardown(async () => {
  await device.stop();
  await kamailio.stop();
  await server.close();
});

t.test('an escape other than \\" and \\r\\n: the text is decoded with jansson', async (t) => {
  const r = await call({ dir, sipPort: kamailio.sipPort, to: 'pat' });
  t.equal(r.code, 0, `call completed ${r.errors}`);
  const inv = device.invites()[0] ?? '';
  t.same(headerValues(inv, 'X-Escaped'), ['a\\b'], 'the header with its backslash');
  t.equal(headerValues(inv, 'Record-Route').length, 1, 'record-routed (a proxy decision)');
});
