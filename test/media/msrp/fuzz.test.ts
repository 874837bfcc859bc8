// Short fuzz run for CI (npm run fuzz:msrp runs >= 100,000 cases).
import t from 'tap';
import { mutatedInputs, runFuzz } from '../../../bench/fuzz-msrp-core.js';
import { MsrpEndpoint } from '../../../media/msrp/endpoint.js';
import { FIXTURE_DIR, rawClient, sendFrame } from '../../fixtures/msrp/helpers.js';

t.test('3,000 mutated frames: only coded errors, split-invariant, round trip, bounded time', async (t) => {
  const seed = 20260101;
  const s = runFuzz({ cases: 3000, seed, perCaseMs: 500, fixtureDir: FIXTURE_DIR });
  t.equal(s.cases, 3000);
  t.same(s.failures, [], `seed ${seed}: no failures`);
  t.ok(s.parsedOk > 100, `${s.parsedOk} mutated inputs still parsed`);
  t.ok(Object.keys(s.errorsByCode).length >= 5, `error codes seen: ${Object.keys(s.errorsByCode).join(' ')}`);
  t.ok(s.heapPeak - s.heapBefore < 64 * 1024 * 1024, 'heap bounded');
});

t.test('300 mutated byte streams against a live endpoint: it answers or closes, never crashes', async (t) => {
  const ep = new MsrpEndpoint({ connection: { headerTimeoutMs: 2000 } });
  const port = await ep.listen();
  t.teardown(() => ep.close());
  const sink = { frameStart: () => undefined, body: () => undefined, frameEnd: () => undefined };
  for (const sid of ['9di4eae923wzd', 'iau39soe2843z']) ep.addSession(sid, sink);
  let protocolErrors = 0;
  ep.on('protocolError', () => protocolErrors++);
  let answered = 0;
  for (const input of mutatedInputs(777, 300, FIXTURE_DIR)) {
    const c = await rawClient(port);
    c.send(input);
    c.socket.end();
    await c.closed(5000);
    for (const f of c.frames) {
      if (f.head.kind !== 'response') t.fail('endpoint sent a request');
      answered++;
    }
  }
  t.ok(answered > 50, `${answered} responses, ${protocolErrors} protocol errors`);
  t.ok(protocolErrors > 50);
  // still serving
  const c = await rawClient(port);
  t.teardown(() => c.socket.destroy());
  c.send(sendFrame('live0001', '9di4eae923wzd', port));
  const f = await c.nextFrame();
  t.equal(f.head.kind === 'response' && f.head.status, 200);
});
