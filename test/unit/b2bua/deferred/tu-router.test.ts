// The TU router (plugin/b2bua/sip/tu-router.ts): which requests go to a claimer and which
// to the B2BUA's calls, as a case table.
import t from 'tap';
import { parseSipMessage, type SipRequest } from '../../../../plugin/sip/message.js';
import { TuRouter } from '../../../../plugin/b2bua/sip/tu-router.js';
import type { ServerTransaction, TransactionUser } from '../../../../plugin/b2bua/sip/layer.js';
import { text } from './driver-world.js';

const req = (method: string, callId: string, toTag: string | null): SipRequest =>
  parseSipMessage(text(`${method} sip:x@y SIP/2.0`, [
    'Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKr', 'From: <sip:a@x>;tag=peer', `To: <sip:b@x>${toTag === null ? '' : `;tag=${toTag}`}`,
    `Call-ID: ${callId}`, `CSeq: 1 ${method}`,
  ])) as SipRequest;

t.test('claimed by Call-ID and our tag, the rest to the primary', async (t) => {
  const got: string[] = [];
  const primary: TransactionUser = {
    request: (r) => void got.push(`primary ${r.method} ${r.get('Call-ID')}`),
    ack: (r) => void got.push(`primary ACK ${r.get('Call-ID')}`),
    cancel: () => void got.push('primary CANCEL'),
  };
  const claimer = {
    claims: (callId: string, tag: string) => callId === 'd1' && tag === 'ours',
    request: (r: SipRequest) => void got.push(`claimer ${r.method} ${r.get('Call-ID')}`),
    ack: (r: SipRequest) => void got.push(`claimer ACK ${r.get('Call-ID')}`),
  };
  const router = new TuRouter(primary, [claimer]);
  const tx = {} as ServerTransaction;
  const rows: [SipRequest, 'request' | 'ack', string][] = [
    [req('BYE', 'd1', 'ours'), 'request', 'claimer BYE d1'],
    [req('NOTIFY', 'd1', 'ours'), 'request', 'claimer NOTIFY d1'],
    [req('ACK', 'd1', 'ours'), 'ack', 'claimer ACK d1'],
    [req('BYE', 'd1', 'theirs'), 'request', 'primary BYE d1'],
    [req('INVITE', 'd1', null), 'request', 'primary INVITE d1'],
    [req('BYE', 'c9', 'ours'), 'request', 'primary BYE c9'],
    [req('ACK', 'c9', 'x'), 'ack', 'primary ACK c9'],
  ];
  for (const [r, how, want] of rows) {
    got.length = 0;
    if (how === 'ack') router.ack(r);
    else router.request(r, tx);
    t.same(got, [want], want);
  }
});
