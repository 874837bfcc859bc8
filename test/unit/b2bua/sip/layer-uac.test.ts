/**
 * The transaction layer, UAC side (a device leg through Kamailio), with a scripted TU,
 * no sockets, the fake clock: forked 2xx, ACKs, CANCEL races, Timer B.
 */
import t from 'tap';
import { printRequest } from '../../../../plugin/b2bua/sip/build.js';
import { buildInDialog } from '../../../../plugin/b2bua/sip/dialog.js';
import type { InviteClientTransaction } from '../../../../plugin/b2bua/sip/invite-client.js';
import { UacInvite } from '../../../../plugin/b2bua/sip/invite-usage.js';
import type { SipResponse } from '../../../../plugin/sip/message.js';
import { answer, OUR_SENT_BY, req } from './helpers.js';
import { CONTACT, setup, type Setup } from './layer-harness.js';

/** The UAC side: an INVITE to a device leg through Kamailio. */
function leg(s: Setup) {
  const invite = printRequest('INVITE', 'sip:bob@example.net', [
    ['Via', `SIP/2.0/TCP ${OUR_SENT_BY};branch=z9hG4bKleg1`], ['Max-Forwards', '70'], ['From', '<sip:alice@example.net>;tag=pf1'],
    ['To', '<sip:bob@example.net>'], ['Call-ID', 'leg-1'], ['CSeq', '1 INVITE'], CONTACT, ['Route', '<sip:127.0.0.1:5060;transport=tcp;lr>'],
  ]);
  const uac = new UacInvite(invite.msg, OUR_SENT_BY);
  const seen: SipResponse[] = [];
  let timedOut = false;
  const tx = s.layer.sendRequest(invite, {
    response: (r) => {
      seen.push(r);
      const o = uac.receive(r);
      if (o.kind === 'accepted') s.layer.sendAck(o.ack);
    },
    timeout: () => (timedOut = true),
    terminated: () => {},
  }) as InviteClientTransaction;
  return { invite, uac, tx, seen, timedOut: () => timedOut };
}

const RR = ['<sip:127.0.0.1:5060;transport=tcp;lr>', '<sip:core.example.net;lr>'];

t.test('UAC: forked 2xx: two dialogs, each ACKed; a retransmitted 2xx ACKed again, no new dialog', async (t) => {
  const s = setup();
  const l = leg(s);
  for (const [tag, status] of [['d1', 180], ['d1', 200], ['d2', 200], ['d1', 200]] as const) {
    s.layer.receive(answer(l.invite.msg, { status, toTag: tag, rr: RR }));
  }
  t.same(s.wire(), ['INVITE', 'ACK', 'ACK', 'ACK']);
  t.same(l.uac.dialogs.map((d) => `${d.remoteTag} ${d.state}`), ['d1 confirmed', 'd2 confirmed']);
  const acks = s.h.sent.filter((x) => x.startsWith('ACK'));
  t.equal(acks[0], acks[2], 'the retransmitted 2xx of d1 gets the same ACK');
  t.match(acks[1]!, 'tag=d2');
  const ack2 = req(acks[1]!);
  t.same(ack2.getAll('Route'), [...RR].reverse(), 'the ACK of a 2xx follows the dialog route set (§13.2.2.4)');
  t.equal(ack2.ruri, 'sip:dev-d2@10.0.0.20:5060', 'to the remote target');
  t.not(ack2.get('Via'), l.invite.msg.get('Via'), 'with a new branch');
  const d2 = l.uac.dialogs[1]!;
  t.same(d2.routeSet, [...RR].reverse(), 'UAC route set reversed (§12.1.2)');
  const bye = buildInDialog(d2, 'BYE', { sentBy: OUR_SENT_BY }).request.msg;
  t.same(bye.getAll('Route'), [...RR].reverse(), 'the unwanted fork gets a BYE along its route set');
  t.equal(bye.get('CSeq'), '2 BYE');
  s.h.clock.advance(32000);
  t.equal(l.tx.state, 'terminated', 'Timer M');
  s.layer.receive(answer(l.invite.msg, { toTag: 'd1' }));
  t.equal(s.layer.counts.unmatchedResponses, 1, 'a 2xx after Timer M matches nothing: dropped and counted');
});

t.test('UAC: ACK of a non-2xx by the transaction (§17.1.1.3)', async (t) => {
  const s = setup();
  const l = leg(s);
  s.layer.receive(answer(l.invite.msg, { status: 486, toTag: 'd1' }));
  s.layer.receive(answer(l.invite.msg, { status: 486, toTag: 'd1' }));
  t.same(s.wire(), ['INVITE', 'ACK']);
  const ack = req(s.h.sent[1]!);
  t.equal(ack.get('Via'), l.invite.msg.get('Via'), 'same branch as the INVITE');
  t.same(ack.getAll('Route'), l.invite.msg.getAll('Route'));
  t.equal(s.layer.counts.unmatchedResponses, 1, 'the retransmitted 486 after Timer D = 0 is dropped');
});

t.test('UAC CANCEL races (§9.1)', async (t) => {
  const rows: [string, (number | 'cancel' | '200c')[], string[], string[]][] = [
    // events: 'cancel' or a status (200c: 200 to the CANCEL); wire; outcomes of cancel()
    ['CANCEL before any response: held until the 180', ['cancel', 180, '200c', 487], ['INVITE', 'CANCEL', 'ACK'], ['pending']],
    ['CANCEL after a 180, then 487', [180, 'cancel', '200c', 487], ['INVITE', 'CANCEL', 'ACK'], ['sent']],
    ['CANCEL crossing the 2xx: ACK, then BYE', [180, 'cancel', 200, '200c', 'cancel'], ['INVITE', 'CANCEL', 'ACK', 'BYE'], ['sent', 'too-late']],
    ['CANCEL before any response, 2xx first: never sent', ['cancel', 200], ['INVITE', 'ACK', 'BYE'], ['pending']],
  ];
  for (const [name, events, wire, outcomes] of rows) {
    const s = setup();
    const l = leg(s);
    const got: string[] = [];
    for (const e of events) {
      if (e === 'cancel') got.push(s.layer.cancel(l.tx, { response: () => {}, timeout: () => {}, terminated: () => {} }));
      else if (e === '200c') {
        const cancel = s.h.sent.map(req).find((m) => m.method === 'CANCEL')!;
        s.layer.receive(answer(cancel, { toTag: 'd1', contact: null }));
      } else s.layer.receive(answer(l.invite.msg, { status: e, toTag: 'd1' }));
    }
    const d = l.uac.dialogs.find((x) => x.state === 'confirmed');
    if (d) s.layer.sendRequest(buildInDialog(d, 'BYE', { sentBy: OUR_SENT_BY }).request, { response: () => {}, timeout: () => {}, terminated: () => {} });
    t.same(s.wire(), wire, `${name}: wire`);
    t.same(got, outcomes, `${name}: cancel()`);
    t.equal(s.layer.counts.unmatchedResponses, 0, `${name}: the 200 to CANCEL matched its own transaction`);
  }
});

t.test('UAC CANCEL with a Reason (RFC 3326 §2): sent at once, or held until the 180', async (t) => {
  const REASON = 'SIP;cause=200;text="Call completed elsewhere"';
  for (const early of [true, false]) {
    const s = setup();
    const l = leg(s);
    if (early) s.layer.receive(answer(l.invite.msg, { status: 180, toTag: 'd1' }));
    t.equal(s.layer.cancel(l.tx, { response: () => {}, timeout: () => {}, terminated: () => {} }, REASON), early ? 'sent' : 'pending');
    if (!early) s.layer.receive(answer(l.invite.msg, { status: 180, toTag: 'd1' }));
    const cancel = s.h.sent.map(req).find((m) => m.method === 'CANCEL');
    t.same(cancel?.getAll('Reason'), [REASON], `${early ? 'after' : 'before'} the 180: the CANCEL carries the Reason`);
  }
});

t.test('UAC: Timer B without any response; a held CANCEL goes with it', async (t) => {
  const s = setup();
  const l = leg(s);
  t.equal(s.layer.cancel(l.tx, { response: () => {}, timeout: () => {}, terminated: () => {} }), 'pending');
  s.h.clock.advance(32000);
  t.same(s.wire(), ['INVITE'], 'no CANCEL without a provisional');
  t.equal(l.timedOut(), true);
  t.equal(s.layer.size.clients, 0);
});

t.test('UAC: no final response 64*T1 after our CANCEL: the INVITE is given up (§9.1)', async (t) => {
  const rows: [string, number | null, boolean][] = [
    ['no final', null, true],
    ['487 in time', 487, false],
    ['2xx in time', 200, false],
  ];
  for (const [name, final, gaveUp] of rows) {
    const s = setup();
    const l = leg(s);
    s.layer.receive(answer(l.invite.msg, { status: 180, toTag: 'd1' }));
    t.equal(s.layer.cancel(l.tx, { response: () => {}, timeout: () => {}, terminated: () => {} }), 'sent');
    s.h.clock.advance(1000);
    if (final !== null) s.layer.receive(answer(l.invite.msg, { status: final, toTag: 'd1' }));
    s.h.clock.advance(31000);
    t.equal(l.timedOut(), gaveUp, `${name}: timeout`);
    if (gaveUp) t.equal(l.tx.state, 'terminated', `${name}: ended`);
  }
});
