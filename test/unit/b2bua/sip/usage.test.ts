/** invite-usage.ts alone: the 2xx retransmission schedule, the UAC's dialogs per To-tag, glare. */
import t from 'tap';
import { printRequest } from '../../../../plugin/b2bua/sip/build.js';
import { glareBackoffMs, reInviteVerdict, Retransmit2xx, UacInvite } from '../../../../plugin/b2bua/sip/invite-usage.js';
import { answer, harness, res } from './helpers.js';

t.test('§13.3.1.4 2xx retransmission: T1, 2*T1, ... capped at T2, until 64*T1', async (t) => {
  const rows: [string, number | null, number[], boolean][] = [
    // name, ACK at (ms) or never, retransmission times, gave up
    ['ACK at 4 s', 4000, [500, 1500, 3500], false],
    ['ACK before T1', 499, [], false],
    ['no ACK', null, [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500], true],
  ];
  for (const [name, ackAt, times, gaveUp] of rows) {
    const h = harness();
    const at: number[] = [];
    let noAck = false;
    const r = new Retransmit2xx(h.clock, h.ctx.timers, () => void at.push(h.clock.now()), '200', () => (noAck = true));
    if (ackAt !== null) {
      h.clock.advance(ackAt);
      t.equal(r.stop(), true, `${name}: ACK stops it`);
      t.equal(r.stop(), false, `${name}: a second ACK finds it stopped`);
    }
    h.clock.advance(40000);
    t.same(at, times, `${name}: sent at`);
    t.equal(r.sent, times.length);
    t.equal(noAck, gaveUp, `${name}: no-ACK report`);
    t.equal(r.state, 'done');
    t.equal(h.clock.pending, 0, `${name}: no timer left`);
  }
});

t.test('UAC INVITE: a dialog and an ACK per To-tag; a retransmitted 2xx gets the same ACK', async (t) => {
  const invite = printRequest('INVITE', 'sip:bob@example.net', [
    ['Via', 'SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKu1'], ['From', '<sip:pf@example.net>;tag=pf1'], ['To', '<sip:bob@example.net>'],
    ['Call-ID', 'leg-1'], ['CSeq', '3 INVITE'], ['Contact', '<sip:b2bua@127.0.0.1:5070;transport=tcp>'],
  ]).msg;
  const u = new UacInvite(invite, '127.0.0.1:5070');
  const steps: [string, string, string][] = [
    // response, outcome summary, name
    [answer(invite, { status: 100, toTag: null }), 'provisional -', '100: no dialog'],
    [answer(invite, { status: 180, toTag: 'd1' }), 'provisional early d1', '180 d1: early dialog'],
    [answer(invite, { status: 180, toTag: 'd1' }), 'provisional early d1', '180 d1 again: the same'],
    [answer(invite, { status: 200, toTag: 'd1' }), 'accepted confirmed d1 fresh', '2xx d1: confirmed, ACK'],
    [answer(invite, { status: 200, toTag: 'd1' }), 'accepted confirmed d1 again', '2xx d1 retransmitted: same ACK'],
    [answer(invite, { status: 200, toTag: 'd2' }), 'accepted confirmed d2 fresh', 'forked 2xx d2: second dialog'],
    [answer(invite, { status: 200, toTag: null }), 'ignored', '2xx without To-tag'],
    [answer(invite, { status: 200, toTag: 'd3', contact: null }), 'ignored', '2xx without Contact'],
    [answer(invite, { status: 486, toTag: 'd4' }), 'rejected', 'non-2xx'],
  ];
  const acks = new Map<string, string>();
  for (const [text, want, name] of steps) {
    const o = u.receive(res(text));
    let got: string = o.kind;
    if (o.kind === 'provisional') got += o.dialog ? ` ${o.dialog.state} ${o.dialog.remoteTag}` : ' -';
    if (o.kind === 'accepted') {
      got += ` ${o.dialog.state} ${o.dialog.remoteTag} ${o.fresh ? 'fresh' : 'again'}`;
      const m = o.ack.msg;
      t.equal(m.get('CSeq'), '3 ACK', `${name}: ACK has the INVITE's number`);
      t.not(m.get('Via'), invite.get('Via'), `${name}: ACK of a 2xx has a new branch`);
      if (!o.fresh) t.equal(o.ack.text, acks.get(o.dialog.remoteTag), `${name}: the same ACK`);
      acks.set(o.dialog.remoteTag, o.ack.text);
    }
    t.equal(got, want, name);
  }
  t.same(u.dialogs.map((d) => d.remoteTag), ['d1', 'd2']);
});

t.test('§14.2 re-INVITE verdicts and the §14.1 back-off', async (t) => {
  t.same(reInviteVerdict({ ours: false, theirs: false }), null);
  t.same(reInviteVerdict({ ours: true, theirs: false }), { status: 491 });
  t.same(reInviteVerdict({ ours: false, theirs: true }), { status: 500, retryAfter: 5 });
  t.same(reInviteVerdict({ ours: true, theirs: true }), { status: 500, retryAfter: 5 });
  const rows: [boolean, number, number][] = [
    [true, 0, 2100], [true, 0.999999, 4000], [true, 0.5, 3050],
    [false, 0, 0], [false, 0.999999, 2000], [false, 0.5, 1000], [false, 1.5, 2000],
  ];
  for (const [owner, r, want] of rows) t.equal(glareBackoffMs(owner, () => r), want, `owner=${owner} random=${r}`);
  for (let i = 0; i < 200; i++) {
    const a = glareBackoffMs(true);
    const b = glareBackoffMs(false);
    if (a < 2100 || a > 4000 || a % 10 !== 0 || b < 0 || b > 2000 || b % 10 !== 0) t.fail(`out of range: ${a} ${b}`);
  }
});
