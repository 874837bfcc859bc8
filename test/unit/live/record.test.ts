/**
 * The live view's record of pf.invite (plugin/live/record.ts): the answer is the same,
 * synchronous or not, errors pass through, and each is filed with its stage.
 */
import t from 'tap';
import { Type } from '@sinclair/typebox';
import { readDecision, recordInvites } from '../../../plugin/live/record.js';
import { method, type RpcMethod } from '../../../plugin/rpc/server.js';
import type { DecisionInput } from '../../../plugin/live/store.js';

t.test('readDecision', async (t) => {
  const cases: Array<[string, unknown, Pick<DecisionInput, 'action' | 'stage' | 'code'>]> = [
    ['text form', 'proxy|service-identification|P-Preferred-Service|||{"code":200}|P-Asserted-Service: x\r\n', { action: 'proxy', stage: 'service-identification', code: null }],
    ['reject', { action: 'reject', code: 480, reason: 'x', hdrs: '', stage: 'do-not-disturb' }, { action: 'reject', stage: 'do-not-disturb', code: 480 }],
    ['b2bua', { action: 'b2bua', stage: 'b2bua', remove: [], hdrs: '' }, { action: 'b2bua', stage: 'b2bua', code: null }],
    ['pass', { action: 'pass', stage: 'not-cpm' }, { action: 'pass', stage: 'not-cpm', code: null }],
    ['odd object', { nothing: 1 }, { action: '?', stage: null, code: null }],
    ['number', 5, { action: '?', stage: null, code: null }],
    ['empty text', '', { action: '', stage: null, code: null }],
  ];
  for (const [name, answer, want] of cases) {
    const d = readDecision(answer);
    t.same({ action: d.action, stage: d.stage, code: d.code }, want, name);
  }
});

const INVITE = 'INVITE sip:bob@example.net SIP/2.0\r\nCall-ID: abc@h\r\nCSeq: 1 INVITE\r\n\r\n';

t.test('recordInvites', async (t) => {
  const filed: DecisionInput[] = [];
  let clock = 10;
  const now = (): number => clock++;
  const P = Type.Object({ msg: Type.String() });
  const make = (f: (p: { msg: string }) => unknown): Record<string, RpcMethod> => ({
    'pf.invite': method(P, f),
    'pf.ping': method(Type.Object({}), () => ({ pong: true })),
  });
  const sync = recordInvites(make(() => 'proxy|proxy||||'), (d) => filed.push(d), now);
  t.equal(sync['pf.invite']!.handler({ msg: INVITE }, undefined), 'proxy|proxy||||', 'a synchronous answer stays synchronous and the same');
  t.same(filed.map((d) => [d.callId, d.action, d.stage, d.tAsk, d.t]), [['abc@h', 'proxy', 'proxy', 10, 11]]);

  const later = recordInvites(make(async () => ({ action: 'reject', code: 403, stage: 'blacklist' })), (d) => filed.push(d), now);
  const out = later['pf.invite']!.handler({ msg: INVITE.replace('Call-ID', 'i') }, undefined);
  t.ok(out instanceof Promise, 'a promise stays a promise');
  t.same(await out, { action: 'reject', code: 403, stage: 'blacklist' });
  t.same(filed.at(-1)?.code, 403, 'filed once it resolved (compact Call-ID header)');

  const boom = new Error('XDM unavailable');
  const throws = recordInvites(make(() => {
    throw boom;
  }), (d) => filed.push(d), now);
  t.throws(() => throws['pf.invite']!.handler({ msg: INVITE }, undefined), boom, 'a thrown error passes through');
  t.same([filed.at(-1)?.action, filed.at(-1)?.text], ['error', 'XDM unavailable']);
  const rejects = recordInvites(make(() => Promise.reject(boom)), (d) => filed.push(d), now);
  await t.rejects(rejects['pf.invite']!.handler({ msg: INVITE }, undefined) as Promise<unknown>, boom, 'a rejection passes through');
  t.equal(filed.at(-1)?.action, 'error');

  const n = filed.length;
  t.equal(sync['pf.invite']!.handler({ msg: 'INVITE sip:x SIP/2.0\r\n\r\n' }, undefined), 'proxy|proxy||||');
  t.equal(filed.length, n, 'no Call-ID: nothing filed');
  t.same(sync['pf.ping']!.handler({}, undefined), { pong: true }, 'other methods as they were');
  t.same(Object.keys(recordInvites({ 'pf.ping': method(Type.Object({}), () => 1) }, () => undefined, now)), ['pf.ping'], 'no pf.invite: nothing wrapped');
});
