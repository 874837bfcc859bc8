/**
 * How the PF reads XDM documents: embedded (cache dropped on change, bad documents keep
 * the last good one) and external over XCAP (ETag revalidation, timeout, outage).
 */
import t from 'tap';
import http from 'node:http';
import { open } from 'lmdb';
import { createApp } from '../../../plugin/app.js';
import { ServiceMetrics } from '../../../plugin/metrics/metrics.js';
import { XcapStore, etagOf, type StoredDocument } from '../../../plugin/xdm/store.js';
import { XcapClient } from '../../../plugin/xdm/client.js';
import { EmbeddedXdmSource, RemoteXdmSource, XdmUnavailableError } from '../../../plugin/xdm/source.js';
import { quietLog, tempDir, testConfig, OPERATOR, TEST_OPERATOR_TOKEN, type Teardown } from './fixtures/helpers.js';

const BOB = 'sip:bob@example.net';
const list = (...uris: string[]) =>
  `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts">${uris
    .map((u) => `<entry uri="${u}"/>`)
    .join('')}</list></resource-lists>`;

function opts(metrics = new ServiceMetrics()) {
  return { document: 'index', blacklistList: 'oma_blockedcontacts', maxBytes: 65536, log: quietLog, metrics };
}

async function embedded(t: Teardown) {
  const root = open({ path: tempDir(t), maxDbs: 2 });
  const store = new XcapStore(root.openDB<StoredDocument | string, string>({ name: 'xcap' }), 65536);
  t.teardown(() => root.close());
  return store;
}

t.test('embedded: parsed once per ETag, a change takes effect at once', async (t) => {
  const store = await embedded(t);
  const metrics = new ServiceMetrics();
  const src = new EmbeddedXdmSource(store, opts(metrics));
  t.same(src.load(BOB, 0), { blacklist: null, ruleset: null });
  await store.put('resource-lists', BOB, 'index', list('sip:spam@example.net'), 0);
  const a = src.load(BOB, 1).blacklist;
  t.ok(a?.keys.has('sip:spam@example.net'));
  t.equal(src.load(BOB, 2).blacklist, a, 'same parsed object: no re-parse');
  t.equal(metrics.xdmLoads.get({ auid: 'resource-lists', outcome: 'parsed' }), 1);
  await store.put('resource-lists', BOB, 'index', list('tel:+15550000002'), 3);
  t.ok(src.load(BOB, 4).blacklist?.keys.has('tel:+15550000002'));
  await store.delete('resource-lists', BOB, 'index');
  t.equal(src.load(BOB, 5).blacklist, null);
});

/** A stand-in external XDMS whose answers the test scripts (to serve what our store refuses). */
async function scriptedXdms(t: Teardown) {
  const state = { body: list('sip:spam@example.net'), status: 200, hang: false, requests: [] as string[] };
  const server = http.createServer((req, res) => {
    state.requests.push(`${req.method} ${req.url} ${req.headers['if-none-match'] ?? '-'}`);
    if (state.hang) return; // never answers: the client's timeout must fire
    if (!req.url?.startsWith('/xcap-root/resource-lists/')) return res.writeHead(404).end();
    const etag = etagOf(state.body);
    if (state.status !== 200) return res.writeHead(state.status).end();
    if (req.headers['if-none-match'] === etag) return res.writeHead(304, { etag }).end();
    res.writeHead(200, { etag, 'content-type': 'application/resource-lists+xml' }).end(state.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { state, root: `http://127.0.0.1:${port}/xcap-root` };
}

t.test('external: background revalidation, bad documents keep the last good, outages', async (t) => {
  const x = await scriptedXdms(t);
  // generous: the machine may be loaded; only the hanging-server case waits it out
  const client = new XcapClient({ root: x.root, timeoutMs: 1500, maxBytes: 4096 });
  const metrics = new ServiceMetrics();
  const src = new RemoteXdmSource(client, 1000, opts(metrics));
  /** Load at `now` (a stale copy answers at once), wait for the revalidation, load again. */
  const loadSettled = async (now: number) => {
    const stale = await src.load(BOB, now);
    await src.settled();
    return { stale, fresh: await src.load(BOB, now) };
  };

  const first = await src.load(BOB, 0);
  t.ok(first.blacklist?.keys.has('sip:spam@example.net'), 'a first load waits for the fetch');
  t.match(x.state.requests[0], /^GET \/xcap-root\/resource-lists\/users\/sip%3Abob%40example\.net\/index -$/);
  const n = x.state.requests.length;
  await src.load(BOB, 500);
  t.equal(x.state.requests.length, n, 'within the TTL nothing is fetched');
  const again = await loadSettled(1000);
  t.equal(again.fresh.blacklist, first.blacklist, '304: same parsed object');
  const reval = x.state.requests.slice(n).filter((r) => r.includes('/resource-lists/'));
  t.equal(reval.length, 1);
  t.match(reval[0], / "[^"]+"$/, 'revalidated with If-None-Match');

  // a broken document: the last good one stays
  x.state.body = '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list>';
  t.equal((await loadSettled(2000)).fresh.blacklist, first.blacklist);
  // a DTD with an entity: the same
  x.state.body = '<!DOCTYPE r [<!ENTITY x "y">]><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>';
  t.equal((await loadSettled(3000)).fresh.blacklist, first.blacklist);
  // oversized
  x.state.body = list(...Array.from({ length: 200 }, (_, i) => `sip:u${i}@example.net`));
  t.equal((await loadSettled(4000)).fresh.blacklist, first.blacklist);
  t.equal(metrics.xdmLoads.get({ auid: 'resource-lists', outcome: 'rejected' }), 2, 'parse rejections counted');
  // a good new one replaces it; the stale copy answered meanwhile
  x.state.body = list('sip:other@example.net');
  const replaced = await loadSettled(5000);
  t.equal(replaced.stale.blacklist, first.blacklist);
  t.ok(replaced.fresh.blacklist?.keys.has('sip:other@example.net'));
  const other = replaced.fresh.blacklist;

  // server errors and a hanging server: the cached document stays, retried after a TTL
  x.state.status = 503;
  t.equal((await loadSettled(6000)).fresh.blacklist, other);
  const before = x.state.requests.length;
  await src.load(BOB, 6500);
  t.equal(x.state.requests.length, before, 'no retry on every request during an outage');
  x.state.status = 200;
  x.state.hang = true;
  t.equal((await loadSettled(7000)).fresh.blacklist, other, 'timeout: cached copy');

  // no cached copy and no server answer: dependency failure
  const fresh = new RemoteXdmSource(client, 1000, opts());
  await t.rejects(fresh.load('sip:carol@example.net', 0), XdmUnavailableError);
});

t.test('external: 404 means no document', async (t) => {
  const x = await scriptedXdms(t);
  x.state.status = 404;
  const src = new RemoteXdmSource(new XcapClient({ root: x.root, timeoutMs: 500, maxBytes: 4096 }), 0, opts());
  t.same(await src.load(BOB, 0), { blacklist: null, ruleset: null });
});

t.test('a second service reads the first one\'s XCAP store over HTTP', async (t) => {
  const a = await createApp(testConfig(tempDir(t)), quietLog);
  t.teardown(() => a.stop());
  await a.start();
  const b = await createApp(
    testConfig(tempDir(t), { xdm: { url: `http://127.0.0.1:${a.httpPort}/xcap-root`, cacheTtlMs: 0, token: TEST_OPERATOR_TOKEN } }),
    quietLog,
  );
  t.teardown(() => b.stop());
  const put = await a.http.inject({
    method: 'PUT',
    url: `/xcap-root/resource-lists/users/${BOB}/index`,
    headers: { ...OPERATOR, 'content-type': 'application/resource-lists+xml' },
    payload: list('sip:alice@example.net'),
  });
  t.equal(put.statusCode, 201);
  const docs = await (b.xdm as RemoteXdmSource).load(BOB, 0);
  t.ok(docs.blacklist?.keys.has('sip:alice@example.net'));
  t.equal(docs.ruleset, null);
});
