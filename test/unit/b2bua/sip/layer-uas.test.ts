/**
 * The transaction layer, UAS side (towards the caller), with a scripted TU, no sockets,
 * the fake clock: the RFC 3261 cases a B2BUA meets; and malformed input.
 */
import t from 'tap';
import { responseTo } from '../../../../plugin/b2bua/sip/build.js';
import { buildInDialog, checkRemoteCseq, dialogAsUas, DialogError, incomingDialogId, refreshTarget } from '../../../../plugin/b2bua/sip/dialog.js';
import { InviteServerTransaction } from '../../../../plugin/b2bua/sip/invite-server.js';
import { reInviteVerdict, Retransmit2xx } from '../../../../plugin/b2bua/sip/invite-usage.js';
import { answer, incoming, OUR_SENT_BY, req } from './helpers.js';
import { CONTACT, setup, type Setup } from './layer-harness.js';

/** The caller's INVITE answered 200 by the B2BUA, with the §13.3.1.4 retransmission running. */
function answered(s: Setup, rr: string[] = []) {
  s.layer.receive(incoming({ rr }));
  const [inv, tx] = s.calls.requests[0]!;
  if (!(tx instanceof InviteServerTransaction)) throw new Error('not an INVITE server transaction');
  const ok = responseTo(inv, 200, { toTag: tx.toTag, headers: [CONTACT] });
  tx.respond(ok);
  let noAck = false;
  const retransmit = new Retransmit2xx(s.h.clock, s.h.ctx.timers, s.h.ctx.send, ok.text, () => (noAck = true));
  return { inv, tx, dialog: dialogAsUas(inv, ok.msg), retransmit, noAck: () => noAck };
}

t.test('UAS: 2xx retransmitted until the ACK (§13.3.1.4), the ACK goes to the TU', async (t) => {
  const s = setup();
  const a = answered(s);
  s.h.clock.advance(3600);
  s.layer.receive(incoming({ method: 'ACK', branch: 'z9hG4bKack1', toTag: a.dialog.localTag }));
  t.equal(s.calls.acks.length, 1, 'ACK of the 2xx: no transaction, to the TU');
  t.equal(incomingDialogId(s.calls.acks[0]!), `call-1@10.0.0.9;${a.dialog.localTag};a1`);
  a.retransmit.stop();
  s.h.clock.advance(40000);
  t.same(s.wire(), ['100', '200', '200', '200', '200'], '100, 200 and its retransmissions at 0.5, 1.5, 3.5 s');
  t.equal(a.noAck(), false);
  t.equal(s.layer.size.servers, 0, 'Timer L ended the INVITE server transaction');
});

t.test('UAS: no ACK in 64*T1: reported, the call sends BYE', async (t) => {
  const s = setup();
  const a = answered(s, ['<sip:127.0.0.1:5060;lr>']);
  s.h.clock.advance(32000);
  t.equal(a.noAck(), true);
  t.equal(s.wire().filter((l) => l === '200').length, 11, 'the 2xx and 10 retransmissions');
  const bye = buildInDialog(a.dialog, 'BYE', { sentBy: OUR_SENT_BY });
  s.layer.sendRequest(bye.request, { response: () => {}, timeout: () => {}, terminated: () => {} });
  t.same(bye.request.msg.getAll('Route'), ['<sip:127.0.0.1:5060;lr>'], 'UAS route set in order');
  t.equal(bye.request.msg.ruri, 'sip:alice@10.0.0.9:5060;transport=udp');
  t.equal(s.wire().at(-1), 'BYE');
});

t.test('UAS: a BYE before the ACK is accepted and stops the 2xx retransmission (§15)', async (t) => {
  const s = setup();
  const a = answered(s);
  s.h.clock.advance(600);
  s.layer.receive(incoming({ method: 'BYE', branch: 'z9hG4bKbye1', cseq: 2, toTag: a.dialog.localTag }));
  const [bye, tx] = s.calls.requests[1]!;
  t.equal(bye.method, 'BYE');
  const check = checkRemoteCseq(a.dialog, bye);
  t.ok(check.ok, 'CSeq 2 after 1');
  t.equal(a.retransmit.stop(), true);
  tx.respond(responseTo(bye, 200));
  s.h.clock.advance(40000);
  t.same(s.wire(), ['100', '200', '200', '200'], 'one retransmission before the BYE, its 200, nothing after');
  t.equal(a.noAck(), false);
});

t.test('UAS: an ACK of a non-2xx matches the INVITE server transaction, not the TU (§17.2.3)', async (t) => {
  const s = setup();
  s.layer.receive(incoming());
  const [inv, tx] = s.calls.requests[0]!;
  tx.respond(responseTo(inv, 486, { toTag: (tx as InviteServerTransaction).toTag }));
  s.layer.receive(incoming({ method: 'ACK', toTag: (tx as InviteServerTransaction).toTag }));
  t.equal(s.calls.acks.length, 0);
  t.equal(tx.state, 'terminated', 'Confirmed, then Timer I = 0');
  t.equal(s.layer.size.servers, 0);
  t.same(s.wire(), ['100', '486']);
});

t.test('UAS: a retransmitted INVITE is absorbed by its transaction', async (t) => {
  const s = setup();
  s.layer.receive(incoming());
  s.layer.receive(incoming());
  t.equal(s.calls.requests.length, 1, 'one INVITE for the TU');
  t.same(s.wire(), ['100', '100'], 'the last provisional again');
});

t.test('UAS CANCEL races (§9.2)', async (t) => {
  const rows: [string, 'before' | 'after-2xx' | 'unknown', string[], string][] = [
    ['CANCEL before any final: 200 to CANCEL, 487 to the INVITE', 'before', ['100', '200', '487'], 'terminated'],
    ['CANCEL after the 2xx: 200 to CANCEL still, the INVITE stays 2xx', 'after-2xx', ['100', '200', '200'], 'accepted'],
    ['CANCEL of no INVITE: 481', 'unknown', ['481'], ''],
  ];
  for (const [name, when, wire, state] of rows) {
    const s = setup();
    if (when !== 'unknown') s.layer.receive(incoming());
    const pair = s.calls.requests[0];
    const tx = pair?.[1] as InviteServerTransaction | undefined;
    if (when === 'after-2xx' && pair && tx) tx.respond(responseTo(pair[0], 200, { toTag: tx.toTag, headers: [CONTACT] }));
    s.layer.receive(incoming({ method: 'CANCEL' }));
    for (const inv of s.calls.cancels) {
      // the TU keeps its own INVITE: the transaction lets go of it once a 2xx is sent
      const sent = inv.respond(responseTo(pair![0], 487, { toTag: inv.toTag }));
      t.equal(sent, when === 'before', `${name}: 487 ${when === 'before' ? 'sent' : 'refused'}`);
    }
    if (when === 'before' && tx) s.layer.receive(incoming({ method: 'ACK', toTag: tx.toTag }));
    t.same(s.wire(), wire, name);
    if (tx) t.equal(tx.state, state, `${name}: INVITE transaction`);
    const cancel200 = s.h.sent.find((x) => x.includes('CANCEL') && x.startsWith('SIP/2.0 200'));
    if (cancel200 && tx) t.match(cancel200, `tag=${tx.toTag}`, `${name}: the 200 to CANCEL has the INVITE's To-tag`);
    t.equal(s.calls.requests.length, when === 'unknown' ? 0 : 1, `${name}: the CANCEL is not a new request for the TU`);
  }
});

t.test('UAS: 491 for a re-INVITE while ours is pending in the dialog (§14.2)', async (t) => {
  const s = setup();
  const a = answered(s);
  s.layer.receive(incoming({ method: 'ACK', branch: 'z9hG4bKack1', toTag: a.dialog.localTag }));
  a.retransmit.stop();
  const ours = buildInDialog(a.dialog, 'INVITE', { sentBy: OUR_SENT_BY, headers: [CONTACT] });
  const uac = s.layer.sendRequest(ours.request, { response: () => {}, timeout: () => {}, terminated: () => {} });
  s.layer.receive(incoming({ branch: 'z9hG4bKre1', cseq: 2, toTag: a.dialog.localTag }));
  const [theirs, tx] = s.calls.requests[1]!;
  const verdict = reInviteVerdict({ ours: uac.state === 'calling' || uac.state === 'proceeding', theirs: false });
  t.same(verdict, { status: 491 });
  tx.respond(responseTo(theirs, verdict!.status, { toTag: a.dialog.localTag }));
  s.layer.receive(incoming({ method: 'ACK', branch: 'z9hG4bKre1', cseq: 2, toTag: a.dialog.localTag }));
  t.same(s.wire().slice(-3), ['INVITE', '100', '491']);
  t.equal(tx.state, 'terminated', 'the 491 was ACKed');
  t.equal(uac.state, 'calling', 'ours still pending');
});

t.test('UAS: in-dialog CSeq and Contact checks answered by the TU', async (t) => {
  const s = setup();
  const a = answered(s);
  a.retransmit.stop();
  const rows: [string, Parameters<typeof incoming>[0], number][] = [
    ['lower CSeq: 500 (§12.2.2)', { method: 'INFO', branch: 'z9hG4bKi0', cseq: 0 }, 500],
    ['re-INVITE without Contact: 400, not an exception', { branch: 'z9hG4bKr1', cseq: 3, contact: null }, 400],
    ['re-INVITE with Contact: 200, target refreshed', { branch: 'z9hG4bKr2', cseq: 4, contact: '<sip:alice@10.0.0.50>' }, 200],
  ];
  let d = a.dialog;
  for (const [name, o, want] of rows) {
    s.layer.receive(incoming({ ...o, toTag: d.localTag }));
    const [r, tx] = s.calls.requests.at(-1)!;
    const check = checkRemoteCseq(d, r);
    let status: number = check.ok ? 200 : check.status;
    if (check.ok && r.method === 'INVITE') {
      try {
        d = refreshTarget(check.dialog, r);
      } catch (err) {
        if (!(err instanceof DialogError)) throw err;
        status = 400;
      }
    }
    tx.respond(responseTo(r, status, { toTag: d.localTag, headers: status === 200 ? [CONTACT] : [] }));
    t.equal(status, want, name);
  }
  t.equal(d.remoteTarget, 'sip:alice@10.0.0.50');
  t.equal(d.remoteSeq, 4);
});

t.test('malformed input: counted, 400 where a response can go, never a throw', async (t) => {
  const noBranch = incoming({ via: 'SIP/2.0/TCP 127.0.0.1:5060' });
  const rows: [string, string, keyof typeof counts0 | null, string[]][] = [
    ['garbage', 'hello\r\n\r\n', 'malformed', []],
    ['empty', '\r\n\r\n', 'malformed', []],
    ['bad header line', 'INVITE sip:a@b SIP/2.0\r\nno colon\r\n\r\n', 'malformed', []],
    ['response for no transaction', answer(req(incoming()), { status: 200 }), 'unmatchedResponses', []],
    ['response without Via', 'SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n', 'unmatchedResponses', []],
    ['request without Via branch', noBranch, 'badRequests', ['400']],
    ['request without Via: dropped, nowhere to answer', incoming().replace(/^Via: .*\r\n/gm, ''), 'badRequests', []],
    ['RFC 2543 branch (no z9hG4bK)', incoming({ branch: 'old-1' }), 'badRequests', ['400']],
    ['CSeq method mismatch', incoming({ method: 'BYE', toTag: 'x' }).replace('CSeq: 1 BYE', 'CSeq: 1 INVITE'), 'badRequests', ['400']],
    ['no Call-ID', incoming().replace(/^Call-ID: .*\r\n/m, ''), 'badRequests', ['400']],
    ['ACK without branch: dropped, no response to an ACK', incoming({ method: 'ACK', via: 'SIP/2.0/TCP 127.0.0.1:5060' }), 'badRequests', []],
    ['TU throws: 500, the transaction ends', incoming({ method: 'OPTIONS' }), 'tuErrors', ['500']],
  ];
  const counts0 = { malformed: 0, unmatchedResponses: 0, badRequests: 0, tuErrors: 0 };
  for (const [name, raw, counter, wire] of rows) {
    const s = setup('OPTIONS');
    t.doesNotThrow(() => s.layer.receive(raw), name);
    t.same(s.layer.counts, counter === null ? counts0 : { ...counts0, [counter]: 1 }, `${name}: counted`);
    t.same(s.wire(), wire, `${name}: wire`);
    if (wire[0] === '400') t.match(s.h.sent[0]!, /^SIP\/2\.0 400 [^\r]+\r\n/, `${name}: the 400 parses and says why`);
    t.equal(s.layer.size.servers, 0, `${name}: no transaction left open`);
  }
  const s = setup('OPTIONS');
  s.layer.receive(incoming({ method: 'OPTIONS' }));
  t.equal(s.errors.length, 1, 'the TU error reaches onError');
});
