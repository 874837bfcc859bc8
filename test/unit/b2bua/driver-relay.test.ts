/**
 * The B2BUA driver against a relay that fails its `offer`: the caller gets 503, and the
 * B2BUA also asks the relay to delete the session, since a slow relay may create it after
 * the time-out (found by the soak: one leaked relay session per timed-out offer).
 */
import t from 'tap';
import { WireError, WireErrorCode } from '../../../wire/errors.js';
import { CALLER_SDP, DEVICE, KAM_RR, US, driverWorld, flush, ok, responses, statusOf, text, yesRelay } from './driver-world.js';

const cases: [string, () => Promise<never>][] = [
  ['the offer timed out', () => Promise.reject(new WireError(WireErrorCode.Timeout, 'offer: no response within 2000 ms'))],
  ['the connection closed under it', () => Promise.reject(new WireError(WireErrorCode.Closed, 'connection closed'))],
];

for (const [name, offer] of cases) {
  t.test(`${name}: 503 to the caller, and a delete of the session`, async (t) => {
    const deleted: string[] = [];
    const w = driverWorld(yesRelay({ offer, delete: async (p) => (deleted.push(p['call-id']), ok) }));
    const ticket = w.tickets.issue({ callId: 'c1', servedUser: 'sip:bob@example.net', targets: [DEVICE], service: { remove: [], hdrs: '' }, stage: 'step-8' });
    w.layer.receive(text(`INVITE ${US} SIP/2.0`, [
      'Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKo1', `Record-Route: ${KAM_RR}`, 'From: <sip:alice@example.net>;tag=a1', 'To: <sip:bob@example.net>',
      'Call-ID: c1', 'CSeq: 1 INVITE', 'Contact: <sip:alice@127.0.0.1:5555>', 'Max-Forwards: 69', `X-PF-Ticket: ${ticket}`, 'Content-Type: application/sdp',
    ], CALLER_SDP));
    await flush();
    t.equal(statusOf(responses(w, /INVITE$/).at(-1)), 503, 'the caller gets 503');
    t.same(deleted, ['c1'], 'the relay is asked to delete the session');
    t.equal(w.b.counts.calls, 0, 'no call left');
  });
}
