/** Dialogs (RFC 3261 §12) as plain data: creation on both sides, routing, CSeq, target refresh, JSON. */
import t from 'tap';
import { printRequest, responseTo } from '../../../../plugin/b2bua/sip/build.js';
import {
  buildInDialog, checkRemoteCseq, confirmAsUac, dialogAsUac, dialogAsUas, DialogError, dialogId, fromJSON, incomingDialogId,
  refreshTarget, routing, toJSON, transitionDialog, type Dialog,
} from '../../../../plugin/b2bua/sip/dialog.js';
import { IllegalTransition } from '../../../../lib/fsm.js';
import { answer, incoming, req, res } from './helpers.js';

const RR = ['<sip:p1.example.net;lr>', '<sip:p2.example.net;lr;ftag=x>'];
const CONTACT = ['Contact', '<sip:b2bua@127.0.0.1:5070;transport=tcp>'] as const;

function ourInvite(extra: readonly (readonly [string, string])[] = []) {
  return printRequest('INVITE', 'sip:bob@example.net', [
    ['Via', 'SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKu1'], ['Max-Forwards', '70'], ['From', '"PF" <sip:pf@example.net>;tag=pf1'],
    ['To', '<sip:bob@example.net>'], ['Call-ID', 'leg-1'], ['CSeq', '10 INVITE'], CONTACT, ...extra,
  ]).msg;
}

function uas(o: Parameters<typeof incoming>[0] = {}): Dialog {
  const inv = req(incoming({ rr: RR, ...o }));
  return dialogAsUas(inv, responseTo(inv, 200, { toTag: 'b2b1', headers: [CONTACT] }).msg);
}

t.test('§12.1.1 UAS: route set as received, remote target from the request, local CSeq empty', async (t) => {
  const d = uas();
  t.same(d, {
    role: 'uas', state: 'confirmed', callId: 'call-1@10.0.0.9', localTag: 'b2b1', remoteTag: 'a1',
    localUri: 'sip:bob@example.net', remoteUri: 'sip:alice@example.net', localSeq: null, remoteSeq: 1,
    remoteTarget: 'sip:alice@10.0.0.9:5060;transport=udp', routeSet: RR, secure: false,
  });
  const inv = req(incoming());
  t.equal(dialogAsUas(inv, responseTo(inv, 180, { toTag: 'e1', headers: [CONTACT] }).msg).state, 'early', '1xx with a tag: early');
  t.equal(uas({ ruri: 'sips:bob@example.net' }).secure, true, 'sips Request-URI: secure');
});

t.test('§12.1.2 UAC: route set reversed, remote target from the response, one dialog per To-tag', async (t) => {
  const inv = ourInvite();
  const a = dialogAsUac(inv, res(answer(inv, { toTag: 'd1', rr: RR })));
  const b = dialogAsUac(inv, res(answer(inv, { toTag: 'd2', contact: '<sip:dev2@10.0.0.21>' })));
  t.same(a.routeSet, [...RR].reverse());
  t.equal(a.remoteTarget, 'sip:dev-d1@10.0.0.20:5060');
  t.equal(a.localSeq, 10);
  t.equal(a.remoteSeq, null);
  t.equal(a.localUri, 'sip:pf@example.net');
  t.not(dialogId(a), dialogId(b), 'forked 2xx: distinct dialogs');
  t.same(b.routeSet, []);
  const early = dialogAsUac(inv, res(answer(inv, { status: 183, toTag: 'd1', rr: ['<sip:old;lr>'] })));
  t.equal(early.state, 'early');
  const confirmed = confirmAsUac(early, res(answer(inv, { toTag: 'd1', rr: RR, contact: '<sip:moved@10.0.0.30>' })));
  t.equal(confirmed.state, 'confirmed');
  t.same(confirmed.routeSet, [...RR].reverse(), '§13.2.2.4: route set recomputed from the 2xx');
  t.equal(confirmed.remoteTarget, 'sip:moved@10.0.0.30');
  t.throws(() => confirmAsUac(confirmed, res(answer(inv, { toTag: 'd1' }))), IllegalTransition);
});

t.test('no dialog from what cannot make one', async (t) => {
  const inv = ourInvite();
  const cases: [string, () => unknown][] = [
    ['100', () => dialogAsUac(inv, res(answer(inv, { status: 100, toTag: null })))],
    ['486', () => dialogAsUac(inv, res(answer(inv, { status: 486 })))],
    ['2xx without To-tag', () => dialogAsUac(inv, res(answer(inv, { toTag: null })))],
    ['2xx without Contact', () => dialogAsUac(inv, res(answer(inv, { contact: null })))],
    ['2xx with a tel: Contact', () => dialogAsUac(inv, res(answer(inv, { contact: '<tel:+15550001>' })))],
    ['UAS request without Contact', () => uas({ contact: null })],
    ['UAS 2xx without To-tag', () => dialogAsUas(req(incoming()), responseTo(req(incoming()), 200).msg)],
  ];
  for (const [name, f] of cases) t.throws(f, DialogError, name);
});

t.test('§12.2.1.1 Request-URI and Route from the route set', async (t) => {
  const base = uas();
  const target = 'sip:alice@10.0.0.9:5060;transport=udp';
  const cases: [string, string[], string, string[]][] = [
    ['no route set', [], target, []],
    ['loose routing (;lr)', RR, target, RR],
    ['strict router first: it becomes the Request-URI, the target the last Route', ['<sip:strict.example.net;maddr=1.2.3.4?X=1>', '<sip:p2;lr>'],
      'sip:strict.example.net;maddr=1.2.3.4', ['<sip:p2;lr>', `<${target}>`]],
  ];
  for (const [name, routeSet, ruri, routes] of cases) t.same(routing({ ...base, routeSet }), { ruri, routes }, name);
  t.throws(() => routing({ ...base, routeSet: ['<tel:+1555>'] }), DialogError, 'a tel: route is refused');
  t.throws(() => routing({ ...base, routeSet: ['garbage <'] }), DialogError, 'garbage route is refused');
});

t.test('in-dialog requests: From/To/Call-ID, CSeq moves on except for ACK and CANCEL', async (t) => {
  let d = uas();
  const first = buildInDialog(d, 'INFO', { sentBy: '127.0.0.1:5070', branch: 'z9hG4bKi1' });
  const m = first.request.msg;
  t.equal(m.ruri, d.remoteTarget);
  t.equal(m.get('From'), '<sip:bob@example.net>;tag=b2b1');
  t.equal(m.get('To'), '<sip:alice@example.net>;tag=a1');
  t.equal(m.get('CSeq'), '1 INFO', 'empty local CSeq starts at 1');
  t.same(m.getAll('Route'), RR);
  t.equal(m.get('Via'), 'SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKi1');
  d = first.dialog;
  const bye = buildInDialog(d, 'BYE', { sentBy: '127.0.0.1:5070' });
  t.equal(bye.request.msg.get('CSeq'), '2 BYE');
  t.equal(bye.dialog.localSeq, 2);
  const ack = buildInDialog(bye.dialog, 'ACK', { sentBy: '127.0.0.1:5070', seq: 1 });
  t.equal(ack.request.msg.get('CSeq'), '1 ACK');
  t.equal(ack.dialog.localSeq, 2, 'ACK does not move the CSeq');
  t.throws(() => buildInDialog(d, 'ACK', { sentBy: 'x' }), DialogError, 'ACK needs the INVITE number');
  t.throws(() => buildInDialog(transitionDialog(d, 'terminated'), 'BYE', { sentBy: 'x' }), DialogError, 'nothing on a terminated dialog');
  t.throws(() => buildInDialog(d, 'INFO', { sentBy: 'x', headers: [['X', 'a\r\nb']] }), DialogError, 'bad header: DialogError');
});

t.test('§12.2.2 remote CSeq: lower is 500, ACK and CANCEL not checked', async (t) => {
  const d = { ...uas(), remoteSeq: 5 };
  const fresh = { ...d, remoteSeq: null };
  const cases: [string, Dialog, string, number, number | 'ok', number | null][] = [
    ['higher', d, 'BYE', 6, 'ok', 6],
    ['equal', d, 'INFO', 5, 'ok', 5],
    ['lower', d, 'BYE', 4, 500, 5],
    ['lower re-INVITE', d, 'INVITE', 1, 500, 5],
    ['ACK with the INVITE number', d, 'ACK', 1, 'ok', 5],
    ['CANCEL', d, 'CANCEL', 1, 'ok', 5],
    ['empty remote CSeq takes any', fresh, 'BYE', 1, 'ok', 1],
  ];
  for (const [name, dialog, method, cseq, want, seqAfter] of cases) {
    const r = checkRemoteCseq(dialog, req(incoming({ method, cseq, toTag: 'b2b1' })));
    t.equal(r.ok ? 'ok' : r.status, want, name);
    if (r.ok) t.equal(r.dialog.remoteSeq, seqAfter, `${name}: remote CSeq after`);
  }
  const bad = req(incoming({ method: 'BYE', toTag: 'b2b1' }).replace('CSeq: 1 BYE', 'CSeq: x BYE'));
  t.same(checkRemoteCseq(d, bad), { ok: false, status: 400 }, 'unreadable CSeq: 400');
});

t.test('target refresh (§12.2.1.2, §12.2.2)', async (t) => {
  const d = uas();
  const reinvite = req(incoming({ cseq: 2, toTag: 'b2b1', contact: '<sip:alice@10.0.0.99:5062>' }));
  t.equal(refreshTarget(d, reinvite).remoteTarget, 'sip:alice@10.0.0.99:5062');
  t.equal(refreshTarget(d, reinvite).routeSet, d.routeSet, 'the route set stays');
  t.throws(() => refreshTarget(d, req(incoming({ cseq: 2, toTag: 'b2b1', contact: null }))), DialogError, 'no Contact: the caller answers 400');
  t.equal(incomingDialogId(reinvite), dialogId(d), 'an incoming request names the dialog by its To-tag');
  t.equal(incomingDialogId(req(incoming())), null, 'no To-tag: not in a dialog');
});

t.test('toJSON/fromJSON round trip is the identity; bad records refused', async (t) => {
  const inv = ourInvite();
  const dialogs = [uas(), { ...uas(), remoteSeq: null, localSeq: 7 }, dialogAsUac(inv, res(answer(inv, { rr: RR }))), transitionDialog(uas(), 'terminated')];
  for (const d of dialogs) t.same(fromJSON(toJSON(d)), d, `${d.role} ${d.state}`);
  const bad = ['not json', '{}', JSON.stringify({ ...uas(), state: 'gone' }), JSON.stringify({ ...uas(), extra: 1 }), JSON.stringify({ ...uas(), localSeq: -1 })];
  for (const b of bad) t.throws(() => fromJSON(b), DialogError, b.slice(0, 40));
});
