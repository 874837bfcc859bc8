/**
 * The "stall" of pf.invite time-outs (docs/reliability.md "The stall: janssonrpcc's
 * request table"), in small form on real Kamailio. janssonrpcc (Kamailio 5.6) keeps its
 * pending requests in a table of 500 buckets keyed by id % 500, ids counting up by one.
 * When the first request of a bucket is answered, it empties the whole bucket
 * (janssonrpc_request.c pop_request) instead of unlinking that one request: a later
 * request chained behind it is forgotten. Its answer then finds no request ("unrecognized
 * id", dropped without a log line), and its transaction waits out PF_RPC_TIMEOUT and takes
 * the fail-safe, though the service answered at once.
 *
 * Here a JSON-RPC server in this file stands for the service. It holds back its answer to
 * one request (id N), answers the next 499 at once, and answers request N+500, which
 * shares N's bucket, right after N. lab.cfg sends OPTIONS to a user through core.fork, so
 * each OPTIONS is one request; the server's answer is 480 (no device).
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { Kamailio, runDir } from '../../lab/lab.js';
import { freePort, until } from '../../lab/proc.js';
import { sipUdpRequest, token } from '../../lab/sip.js';

const dir = runDir('it-rpc-stall');
// long enough for the 499 requests in between to pass while request N is held, on a loaded machine
const RPC_TIMEOUT_MS = 5000;
/** janssonrpcc's JSONRPC_DEFAULT_HTABLE_SIZE (janssonrpc_request.h). */
const BUCKETS = 500;

interface Rpc {
  id: number;
  method: string;
}

/** Netstrings in, JSON-RPC requests out; `answer` writes one answer for a request. */
const sockets: Socket[] = [];
let held: { req: Rpc; sock: Socket } | null = null;
let firstId = -1;
const answeredAt = new Map<number, number>();
const answer = (sock: Socket, id: number): void => {
  const body = JSON.stringify({ jsonrpc: '2.0', id, result: { code: 480, reason: 'Temporarily Unavailable' } });
  sock.write(`${Buffer.byteLength(body)}:${body},`);
  answeredAt.set(id, Date.now());
};
const server = createServer((sock) => {
  sockets.push(sock);
  let buf = Buffer.alloc(0);
  sock.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const colon = buf.indexOf(':');
      if (colon < 0) return;
      const len = Number(buf.subarray(0, colon).toString());
      if (buf.length < colon + 1 + len + 1) return;
      const req = JSON.parse(buf.subarray(colon + 1, colon + 1 + len).toString()) as Rpc;
      buf = buf.subarray(colon + 1 + len + 1);
      if (firstId < 0) {
        // the first request: held back
        firstId = req.id;
        held = { req, sock };
      } else if (req.id === firstId + BUCKETS && held) {
        // same bucket as the held one, chained behind it: answer the held one first, then this
        answer(held.sock, held.req.id);
        answer(sock, req.id);
        held = null;
      } else {
        answer(sock, req.id);
      }
    }
  });
});
const rpcPort = await freePort();
await new Promise<void>((resolve) => server.listen(rpcPort, '127.0.0.1', resolve));
const kamailio = await Kamailio.start({ dir, rpc: [{ port: rpcPort }], rpcTimeoutMs: RPC_TIMEOUT_MS });
t.teardown(async () => {
  await kamailio.stop();
  for (const s of sockets) s.destroy();
  server.close();
});

/** An OPTIONS to `user` (lab.cfg: core.fork, one janssonrpcc request); its final status and when. */
async function options(user: string): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  const r = await sipUdpRequest(
    kamailio.sipPort,
    (lp) =>
      [
        `OPTIONS sip:${user}@example.net SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bK${token()};rport`,
        'Max-Forwards: 70',
        `From: <sip:prober@example.net>;tag=${token(4)}`,
        `To: <sip:${user}@example.net>`,
        `Call-ID: ${token()}`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    RPC_TIMEOUT_MS + 3000,
  );
  return { status: r.final.status, ms: Date.now() - started };
}

t.test('a request chained behind an earlier one in its bucket is forgotten when that one is answered', async (t) => {
  // request N, held by the server: answered only when N+500 comes
  const first = options('held');
  // its request reached the server before any other is sent (Kamailio's workers would
  // otherwise number two requests in either order)
  await until(async () => (firstId >= 0 ? true : undefined), 5000, 'the first request at the server');
  // N+1 .. N+499: answered at once (a different bucket each), 50 at a time
  for (let i = 1; i < BUCKETS; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, BUCKETS - i) }, (_, j) => options(`u${i + j}`)));
    const bad = batch.find((r) => r.status !== 480);
    if (bad) throw new Error(`an OPTIONS in ${i}..${i + 49}: ${bad.status}`);
  }
  // N+500 lands in N's bucket, behind N; the server answers N, then N+500, at once
  const chained = await options('chained');
  const r1 = await first;
  t.equal(r1.status, 480, 'request N: its answer applied');
  t.equal(answeredAt.size, BUCKETS + 1, 'the server answered every request');
  t.equal(chained.status, 503, 'request N+500: fail-safe, its answer dropped (core.fork failed -> 503)');
  t.ok(chained.ms >= RPC_TIMEOUT_MS - 50, `it waited out the RPC timeout (${chained.ms} ms, timeout ${RPC_TIMEOUT_MS} ms)`);
  t.match(kamailio.proc.output, /core: core\.fork failed \(internal -100\)/, 'janssonrpcc reported a time-out (-100)');
  // the table is sound again afterwards: the next request is answered
  const after = await options('after');
  t.equal(after.status, 480, 'the next request is answered normally');
});
