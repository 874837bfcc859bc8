// The subscriber side of RFC 6665 (plugin/b2bua/sip/subscription.ts): the SUBSCRIBE, the
// dialog from its 2xx or from a NOTIFY, the readers; case tables.
import t from 'tap';
import { parseSipMessage, type SipRequest, type SipResponse } from '../../../../plugin/sip/message.js';
import {
  dialogFromNotify, dialogFromSubscribe2xx, expiresOf, initialSubscribe, refreshInMs, subscribeInDialog, subscriptionState,
} from '../../../../plugin/b2bua/sip/subscription.js';
import { text } from './driver-world.js';

const sub = initialSubscribe({
  sentBy: '127.0.0.1:5070', target: 'sip:conf@focus.example.net', subscriber: 'sip:bob@example.net', callId: 'c1', localTag: 'L',
  contact: 'sip:pf-b2bua@127.0.0.1:5070;transport=tcp', outboundProxy: 'sip:127.0.0.1:5060;transport=tcp;lr', event: 'conference',
  accept: 'application/conference-info+xml', expires: 600, headers: [['X-PF-Leg', 'secret;direct']],
}).msg;

t.test('the initial SUBSCRIBE', async (t) => {
  t.equal(sub.method, 'SUBSCRIBE');
  t.equal(sub.ruri, 'sip:conf@focus.example.net');
  t.equal(sub.get('From'), '<sip:bob@example.net>;tag=L');
  t.equal(sub.get('To'), '<sip:conf@focus.example.net>');
  t.equal(sub.get('CSeq'), '1 SUBSCRIBE');
  t.equal(sub.get('Route'), '<sip:127.0.0.1:5060;transport=tcp;lr>');
  t.equal(sub.get('Event'), 'conference');
  t.equal(sub.get('Expires'), '600');
  t.equal(sub.get('X-PF-Leg'), 'secret;direct');
});

const res = (status: number, headers: string[]): SipResponse =>
  parseSipMessage(text(`SIP/2.0 ${status} OK`, [`Via: ${sub.get('Via')}`, `From: ${sub.get('From')}`, `To: ${sub.get('To')};tag=R`, 'Call-ID: c1', 'CSeq: 1 SUBSCRIBE', ...headers])) as SipResponse;
const notify = (headers: string[]): SipRequest =>
  parseSipMessage(text('NOTIFY sip:pf-b2bua@127.0.0.1:5070;transport=tcp SIP/2.0', [
    'Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKn1', 'From: <sip:conf@focus.example.net>;tag=R', `To: ${sub.get('From')}`, 'Call-ID: c1', 'CSeq: 7 NOTIFY', ...headers,
  ])) as SipRequest;

t.test('the dialog from the 2xx, or from a NOTIFY that overtook it', async (t) => {
  const a = dialogFromSubscribe2xx(sub, res(200, ['Contact: <sip:focus@10.0.0.1>', 'Record-Route: <sip:p1;lr>', 'Record-Route: <sip:p2;lr>', 'Expires: 300']));
  t.match(a, { role: 'uac', callId: 'c1', localTag: 'L', remoteTag: 'R', remoteTarget: 'sip:focus@10.0.0.1', localSeq: 1, routeSet: ['<sip:p2;lr>', '<sip:p1;lr>'] });
  const b = dialogFromNotify(sub, notify(['Contact: <sip:focus@10.0.0.1>', 'Record-Route: <sip:p1;lr>', 'Record-Route: <sip:p2;lr>']));
  t.match(b, { remoteTag: 'R', remoteSeq: 7, routeSet: ['<sip:p1;lr>', '<sip:p2;lr>'] }, 'as the recipient of a request: in order');
  t.throws(() => dialogFromSubscribe2xx(sub, res(200, [])), 'no Contact');
  t.throws(() => dialogFromNotify(sub, notify([])), 'no Contact');
  const refresh = subscribeInDialog(a, { sentBy: '127.0.0.1:5070', contact: 'sip:pf@x', event: 'conference', accept: 'application/conference-info+xml', expires: 0 });
  t.equal(refresh.request.msg.get('Expires'), '0');
  t.equal(refresh.request.msg.get('CSeq'), '2 SUBSCRIBE');
  t.equal(refresh.request.msg.ruri, 'sip:focus@10.0.0.1');
  t.equal(refresh.dialog.localSeq, 2);
});

t.test('Subscription-State and Expires', async (t) => {
  const rows: [string | undefined, ReturnType<typeof subscriptionState>][] = [
    ['active;expires=3600', { state: 'active', expires: 3600, reason: null }],
    ['Pending', { state: 'pending', expires: null, reason: null }],
    ['terminated;reason=noresource', { state: 'terminated', expires: null, reason: 'noresource' }],
    ['terminated ; reason=Timeout;retry-after=5', { state: 'terminated', expires: null, reason: 'timeout' }],
    ['active;expires=-1', { state: 'active', expires: null, reason: null }],
    ['dormant', null],
    ['', null],
    [undefined, null],
  ];
  for (const [v, want] of rows) t.same(subscriptionState(v), want, String(v));
  t.equal(expiresOf(res(200, ['Expires: 120'])), 120);
  t.equal(expiresOf(res(200, ['Expires: soon'])), null);
  t.equal(expiresOf(res(200, [])), null);
  t.equal(refreshInMs(600), 480_000, '80%');
  t.equal(refreshInMs(10), 5000, 'at least 5 s before the end');
  t.equal(refreshInMs(2), 0);
});
