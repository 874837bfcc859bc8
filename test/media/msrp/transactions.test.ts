// Responses (§7.2), REPORTs (§7.1.2) and chunk reassembly (§5.1), as pure functions.
import { Buffer } from 'node:buffer';
import t from 'tap';
import { getHeader } from '../../../media/msrp/headers.js';
import { parseFrames } from '../../../media/msrp/parser.js';
import { serializeFrame } from '../../../media/msrp/serializer.js';
import { failureReportFor, MessageAssembler, responseFor, successReportFor } from '../../../media/msrp/transactions.js';
import type { RequestHead } from '../../../media/msrp/types.js';
import { loadFixtures } from '../../fixtures/msrp/helpers.js';

const TO = 'msrp://relay.example.net:2855;tcp msrp://bob.example.com:8888/9di4eae923wzd;tcp';
const FROM = 'msrp://relay2.example.net:2855;tcp msrp://alice.example.com:7777/iau39soe2843z;tcp';

function send(extra: string, method = 'SEND'): RequestHead {
  const f = parseFrames(Buffer.from(`MSRP tx123456 ${method}\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\nMessage-ID: m1\r\nByte-Range: 1-5/5\r\n${extra}Content-Type: text/plain\r\n\r\nhello\r\n-------tx123456$\r\n`))[0]!;
  if (f.head.kind !== 'request') throw new Error('fixture');
  return f.head;
}

t.test('responseFor: hop-by-hop paths and Failure-Report', async (t) => {
  const cases: Array<{ name: string; extra: string; status: number; method?: string; sent: boolean }> = [
    { name: 'default (yes) 200', extra: '', status: 200, sent: true },
    { name: 'yes 200', extra: 'Failure-Report: yes\r\n', status: 200, sent: true },
    { name: 'no: never a response, even 200', extra: 'Failure-Report: no\r\n', status: 200, sent: false },
    { name: 'no: never a response, even an error', extra: 'Failure-Report: no\r\n', status: 413, sent: false },
    { name: 'partial: no 200', extra: 'Failure-Report: partial\r\n', status: 200, sent: false },
    { name: 'partial: errors still go back', extra: 'Failure-Report: partial\r\n', status: 415, sent: true },
    { name: 'REPORT is never answered', extra: '', status: 200, method: 'REPORT', sent: false },
    { name: 'unknown method gets 501', extra: '', status: 501, method: 'FOO', sent: true },
  ];
  for (const c of cases) {
    const r = responseFor(send(c.extra, c.method), c.status);
    t.equal(r !== null, c.sent, c.name);
    if (r) {
      t.equal(r.head.kind === 'response' && r.head.status, c.status);
      t.equal(r.head.transactionId, 'tx123456', 'same transaction id');
      // RFC 4975 §7.2: To-Path = first From-Path URI (previous hop), From-Path = first To-Path URI (us).
      t.equal(getHeader(r.head, 'To-Path'), 'msrp://relay2.example.net:2855;tcp');
      t.equal(getHeader(r.head, 'From-Path'), 'msrp://relay.example.net:2855;tcp');
      t.ok(serializeFrame(r).toString().startsWith(`MSRP tx123456 ${c.status} `));
    }
  }
  t.equal(responseFor({ transactionId: 'abcd1234', method: 'SEND', headers: [] }, 400), null, 'cannot address without paths');
});

t.test('success and failure REPORTs', async (t) => {
  t.equal(successReportFor(send('')), null, 'Success-Report defaults to no');
  const ok = successReportFor(send('Success-Report: yes\r\n'))!;
  t.equal(ok.head.kind === 'request' && ok.head.method, 'REPORT');
  t.equal(getHeader(ok.head, 'To-Path'), FROM, 'REPORT goes back along the whole From-Path');
  t.equal(getHeader(ok.head, 'From-Path'), 'msrp://bob.example.com:8888/9di4eae923wzd;tcp', 'from the endpoint itself');
  t.equal(getHeader(ok.head, 'Status'), '000 200 OK');
  t.equal(getHeader(ok.head, 'Byte-Range'), '1-5/5');
  t.equal(getHeader(ok.head, 'Message-ID'), 'm1');
  t.not(ok.head.transactionId, 'tx123456', 'REPORT is a new transaction');
  const fail = failureReportFor(send('Failure-Report: partial\r\n'), 413)!;
  t.equal(getHeader(fail.head, 'Status'), '000 413 Message Too Large');
  t.equal(failureReportFor(send('Failure-Report: no\r\n'), 413), null);
  t.equal(failureReportFor(send(''), 200), null);
});

t.test('MessageAssembler: interrupted message interleaved with another', async (t) => {
  const raw = loadFixtures().find((f) => f.name === 'send-interrupted')!.raw;
  const a = new MessageAssembler();
  const out = parseFrames(raw).map((f) => a.add(f.head as RequestHead, f.body, f.flag));
  t.same(out.map((r) => r.status), ['partial', 'complete', 'complete']);
  const big = out[2]!;
  t.equal(big.status === 'complete' && big.message.body.toString(), 'first half of a long message and here is the second half');
  t.equal(big.status === 'complete' && big.message.chunks, 2);
  t.equal(a.openMessages, 0);
});

t.test('MessageAssembler: abort, empty, limits', async (t) => {
  const fx = loadFixtures();
  const a = new MessageAssembler({ maxMessageSize: 100 });
  const big = parseFrames(fx.find((f) => f.name === 'send-binary-256')!.raw)[0]!;
  t.same(a.add(big.head as RequestHead, big.body, big.flag), { status: 'too-large', messageId: 'bin-1' }, '514 bytes > 100');
  t.equal(a.openMessages, 0, 'nothing kept');
  const abort = parseFrames(fx.find((f) => f.name === 'send-abort')!.raw)[0]!;
  const b = new MessageAssembler();
  t.same(b.add(abort.head as RequestHead, abort.body, abort.flag), { status: 'aborted', messageId: 'aborted-1' });
  const bind = parseFrames(fx.find((f) => f.name === 'send-empty-bind')!.raw)[0]!;
  t.same(b.add(bind.head as RequestHead, bind.body, bind.flag), { status: 'empty' });
  const bin = parseFrames(fx.find((f) => f.name === 'send-binary-256')!.raw)[0]!;
  const r = b.add(bin.head as RequestHead, bin.body, bin.flag);
  t.ok(r.status === 'complete' && r.message.body.equals(bin.body), 'binary kept');
});
