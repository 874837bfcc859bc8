/**
 * The evapi dialog-event client against a real TCP server standing in for Kamailio's
 * evapi (netstring frames, as with netstring_format 1): valid events, bad frames,
 * reconnects.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { EvapiDialogClient, type DialogEvent } from '../../../plugin/sessions/evapi.js';
import { parseEndpoint } from '../../../plugin/sessions/endpoint.js';
import { encodeNetstring } from '../../../plugin/rpc/netstring.js';
import { parseConfig, loadConfig } from '../../../plugin/config/load.js';

const log = pino({ level: 'silent' });

/** A fake evapi endpoint: hands out each accepted connection in order. */
async function fakeEvapi(): Promise<{ port: number; next(): Promise<net.Socket>; close(): Promise<void> }> {
  const waiting: ((s: net.Socket) => void)[] = [];
  const ready: net.Socket[] = [];
  const all = new Set<net.Socket>();
  const server = net.createServer((s) => {
    all.add(s);
    const w = waiting.shift();
    if (w) w(s);
    else ready.push(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    next: () => {
      const s = ready.shift();
      if (s) return Promise.resolve(s);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no connection within 5 s')), 5000);
        waiting.push((sock) => {
          clearTimeout(timer);
          resolve(sock);
        });
      });
    },
    close: async () => {
      for (const s of all) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

interface Seen {
  events: DialogEvent[];
  invalid: string[];
  wait(n: number, what: 'events' | 'invalid'): Promise<void>;
}

function recorder(): Seen & { onEvent(e: DialogEvent): void; onInvalid(r: string): void } {
  const waiters: (() => void)[] = [];
  const seen = {
    events: [] as DialogEvent[],
    invalid: [] as string[],
    onEvent(e: DialogEvent) {
      seen.events.push(e);
      waiters.splice(0).forEach((w) => w());
    },
    onInvalid(r: string) {
      seen.invalid.push(r);
      waiters.splice(0).forEach((w) => w());
    },
    async wait(n: number, what: 'events' | 'invalid') {
      const deadline = Date.now() + 5000;
      while (seen[what].length < n) {
        if (Date.now() > deadline) throw new Error(`${what}: ${String(seen[what].length)} of ${String(n)}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 200);
        });
      }
    },
  };
  return seen;
}

const confirmed = {
  v: 1,
  event: 'confirmed',
  callId: 'c1@h',
  fromTag: 'f1',
  toTag: 't1',
  ruri: 'sip:bob@example.net',
  contributionId: 'cid-1',
  contact: '<sip:bob@127.0.0.1:6001>;+sip.instance="<urn:uuid:1>"',
};

/** A started client on a fake evapi endpoint, both stopped at the end of `t`. */
async function started(t: Test, maxFrameBytes: number): Promise<{ srv: Awaited<ReturnType<typeof fakeEvapi>>; seen: ReturnType<typeof recorder>; client: EvapiDialogClient }> {
  const srv = await fakeEvapi();
  const seen = recorder();
  const client = new EvapiDialogClient({ endpoints: [{ host: '127.0.0.1', port: srv.port }], maxFrameBytes, log, ...seen });
  t.teardown(async () => {
    client.stop();
    await srv.close();
  });
  client.start();
  return { srv, seen, client };
}

t.test('valid frames become events; bad ones are counted and dropped', async (t) => {
  const { srv, seen, client } = await started(t, 4096);
  const s = await srv.next();
  await t.resolves(async () => {
    while (client.connected !== 1) await new Promise((r) => setTimeout(r, 10));
  });
  // two events in one write, one split across writes byte by byte
  s.write(Buffer.concat([encodeNetstring(JSON.stringify(confirmed)), encodeNetstring(JSON.stringify({ v: 1, event: 'terminated', callId: 'c1@h', fromTag: 'f1', toTag: 't1' }))]));
  const split = encodeNetstring(JSON.stringify({ ...confirmed, callId: 'c2@h' }));
  for (const b of split) s.write(Buffer.from([b]));
  await seen.wait(3, 'events');
  t.same(
    seen.events.map((e) => [e.event, e.callId]),
    [
      ['confirmed', 'c1@h'],
      ['terminated', 'c1@h'],
      ['confirmed', 'c2@h'],
    ],
  );
  // not JSON, JSON of the wrong shape, a wrong v, an unknown event
  s.write(encodeNetstring('{not json'));
  s.write(encodeNetstring(JSON.stringify([1, 2])));
  s.write(encodeNetstring(JSON.stringify({ ...confirmed, v: 2 })));
  s.write(encodeNetstring(JSON.stringify({ ...confirmed, event: 'early' })));
  s.write(encodeNetstring(Buffer.from([0xff, 0xfe, 0x7b])));
  await seen.wait(5, 'invalid');
  t.same(seen.invalid, ['json', 'schema', 'schema', 'schema', 'json']);
  t.equal(seen.events.length, 3, 'none of them became an event');
  t.equal(client.connected, 1, 'bad payloads keep the connection');
});

t.test('a framing error or an oversize frame drops the connection, which comes back', async (t) => {
  const { srv, seen } = await started(t, 1024);
  const first = await srv.next();
  first.write('12x:garbage,');
  const second = await srv.next();
  t.same(seen.invalid, ['framing'], 'the bad netstring is counted');
  second.write(`5000:${'x'.repeat(10)}`);
  const third = await srv.next();
  t.same(seen.invalid, ['framing', 'framing'], 'the oversize frame is refused before its body arrives');
  third.write(encodeNetstring(JSON.stringify(confirmed)));
  await seen.wait(1, 'events');
  t.equal(seen.events[0]?.callId, 'c1@h', 'events flow on the new connection');
});

t.test('Kamailio down at start, then up: the client keeps trying', async (t) => {
  // a port with nothing listening: take one, close it, connect there
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const addr = probe.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  probe.close();
  await once(probe, 'close');
  const seen = recorder();
  const client = new EvapiDialogClient({ endpoints: [{ host: '127.0.0.1', port }], maxFrameBytes: 1024, log, ...seen });
  client.start();
  t.teardown(() => client.stop());
  await new Promise((r) => setTimeout(r, 250));
  t.equal(client.connected, 0);
  const server = net.createServer((s) => s.write(encodeNetstring(JSON.stringify(confirmed))));
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  await seen.wait(1, 'events');
  t.equal(client.connected, 1, 'connected once the endpoint listens');
  client.stop();
});

t.test('endpoints: host:port, [v6]:port; the rest refused', async (t) => {
  t.same(parseEndpoint('127.0.0.1:8448'), { host: '127.0.0.1', port: 8448 });
  t.same(parseEndpoint('kamailio.lab:1'), { host: 'kamailio.lab', port: 1 });
  t.same(parseEndpoint('[::1]:8448'), { host: '::1', port: 8448 });
  for (const bad of ['', '127.0.0.1', ':8448', '127.0.0.1:0', '127.0.0.1:65536', '::1:8448', 'a b:1', '127.0.0.1:84x', '[::1]8448']) {
    t.equal(parseEndpoint(bad), null, JSON.stringify(bad));
  }
});

t.test('config: sessions.evapi checked at startup; PF_EVAPI is a comma list', async (t) => {
  t.same(parseConfig({}).sessions.evapi, []);
  t.throws(() => parseConfig({ sessions: { evapi: ['nope'] } }), /^config: \/sessions\/evapi\/0 must be host:port$/);
  const c = loadConfig({ env: { PF_EVAPI: '127.0.0.1:8448, [::1]:9000' } });
  t.same(c.sessions.evapi, ['127.0.0.1:8448', '[::1]:9000']);
  t.throws(() => loadConfig({ env: { PF_EVAPI: '127.0.0.1:8448,x' } }), /\/sessions\/evapi\/1/);
});
