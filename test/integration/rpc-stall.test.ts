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
 *
 * The mitigation (pf.cfg PF_RPC_TIMEOUT, the sizing rule: requests/s x timeout < 500): a
 * pending request lives at most one RPC timeout, so when the timeout ends before 500 more
 * requests are sent, no two pending requests share a bucket. The second case holds request
 * N until it times out, then sends the next 500: all are answered.
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Kamailio, runDir } from '../../lab/lab.js';
import { freePort, until } from '../../lab/proc.js';
import { sipUdpRequest, token } from '../../lab/sip.js';

const root = runDir('it-rpc-stall');
/** janssonrpcc's JSONRPC_DEFAULT_HTABLE_SIZE (janssonrpc_request.h). */
const BUCKETS = 500;

interface Rpc {
  id: number;
  method: string;
}

/**
 * A JSON-RPC server over netstrings standing for the service: it answers every request at
 * once with core.fork's 480, except the first one it sees (request N), which it holds.
 * With `releaseWith`, request N+500 makes it answer N first, then N+500.
 */
async function fakeService(releaseWith: boolean): Promise<{ port: number; firstId: () => number; answered: () => number; close: () => void }> {
  const sockets: Socket[] = [];
  let held: { req: Rpc; sock: Socket } | null = null;
  let firstId = -1;
  let answered = 0;
  const answer = (sock: Socket, id: number): void => {
    const body = JSON.stringify({ jsonrpc: '2.0', id, result: { code: 480, reason: 'Temporarily Unavailable' } });
    sock.write(`${Buffer.byteLength(body)}:${body},`);
    answered++;
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
          firstId = req.id;
          held = { req, sock };
        } else if (releaseWith && req.id === firstId + BUCKETS && held) {
          // same bucket as the held one, chained behind it: the held one first, then this
          answer(held.sock, held.req.id);
          answer(sock, req.id);
          held = null;
        } else {
          answer(sock, req.id);
        }
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    firstId: () => firstId,
    answered: () => answered,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** An OPTIONS to `user` (lab.cfg: core.fork, one janssonrpcc request); its final status and when. */
async function options(sipPort: number, user: string, timeoutMs: number): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  const r = await sipUdpRequest(
    sipPort,
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
    timeoutMs,
  );
  return { status: r.final.status, ms: Date.now() - started };
}

/** Requests N+1 .. N+499 (a different bucket each), answered at once, 50 at a time. */
async function fill(sipPort: number): Promise<void> {
  for (let i = 1; i < BUCKETS; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, BUCKETS - i) }, (_, j) => options(sipPort, `u${i + j}`, 5000)));
    const bad = batch.find((r) => r.status !== 480);
    if (bad) throw new Error(`an OPTIONS in ${i}..${i + 49}: ${bad.status}`);
  }
}

t.test('a request chained behind an earlier one in its bucket is forgotten when that one is answered', async (t) => {
  // long enough for the 499 requests in between to pass while request N is held, on a loaded machine
  const rpcTimeoutMs = 5000;
  const svc = await fakeService(true);
  const kamailio = await Kamailio.start({ dir: join(root, 'chained'), rpc: [{ port: svc.port }], rpcTimeoutMs });
  t.teardown(async () => {
    await kamailio.stop();
    svc.close();
  });
  // request N, held by the server: answered only when N+500 comes
  const first = options(kamailio.sipPort, 'held', rpcTimeoutMs + 3000);
  // its request reached the server before any other is sent (Kamailio's workers would
  // otherwise number two requests in either order)
  await until(async () => (svc.firstId() >= 0 ? true : undefined), 5000, 'the first request at the server');
  await fill(kamailio.sipPort);
  // N+500 lands in N's bucket, behind N; the server answers N, then N+500, at once
  const chained = await options(kamailio.sipPort, 'chained', rpcTimeoutMs + 3000);
  const r1 = await first;
  t.equal(r1.status, 480, 'request N: its answer applied');
  t.equal(svc.answered(), BUCKETS + 1, 'the server answered every request');
  t.equal(chained.status, 503, 'request N+500: fail-safe, its answer dropped (core.fork failed -> 503)');
  t.ok(chained.ms >= rpcTimeoutMs - 50, `it waited out the RPC timeout (${chained.ms} ms, timeout ${rpcTimeoutMs} ms)`);
  t.match(kamailio.proc.output, /core: core\.fork failed \(internal -100\)/, 'janssonrpcc reported a time-out (-100)');
  // the table is sound again afterwards: the next request is answered
  const after = await options(kamailio.sipPort, 'after', rpcTimeoutMs + 3000);
  t.equal(after.status, 480, 'the next request is answered normally');
});

t.test('the sizing rule: a held request times out before 500 more are sent, and nothing is forgotten', async (t) => {
  const rpcTimeoutMs = 300;
  const svc = await fakeService(false);
  const kamailio = await Kamailio.start({ dir: join(root, 'bounded'), rpc: [{ port: svc.port }], rpcTimeoutMs });
  t.teardown(async () => {
    await kamailio.stop();
    svc.close();
  });
  // request N is never answered: it leaves the table at its timeout
  const r1 = await options(kamailio.sipPort, 'held', rpcTimeoutMs + 3000);
  t.equal(r1.status, 503, 'request N: fail-safe at its timeout');
  await fill(kamailio.sipPort);
  const next = await options(kamailio.sipPort, 'same-bucket', 3000);
  t.equal(next.status, 480, "request N+500, in N's bucket: answered");
  t.ok(next.ms < rpcTimeoutMs, `at once (${next.ms} ms)`);
});
