// The deferred store on Redis (media/deferred/redis.ts; docs/deferred.md "On Redis"): the
// interface suite (suite.ts) on a 3-master Redis Cluster, then on one Redis: ids with odd
// characters, the engine TTL, an engine that refuses writes (OOM, READONLY replica), one
// that answers slowly, and replica acknowledgement (WAIT); a SEND the engine refuses gets an
// MSRP error and nothing is stored behind it.
import t, { type Test } from 'tap';
import { connectEngine, keyPart, type RedisEngine } from '../../../lib/redis-engine.js';
import { until } from '../../../lab/proc.js';
import { startRedis, startRedisCluster, type RedisNode } from '../../../lab/redis.js';
import { RedisDeferredStore, type RedisDeferredStoreOptions } from '../../../media/deferred/redis.js';
import { buildCpim, MsrpPeer } from '../../../media/client/peer.js';
import { deferredSuite, idOf, item, SUITE_BOUNDS } from './suite.js';
import { listenWithEvents, sdpFor } from '../relay/helpers.js';

async function engineFor(t: Test, urls: readonly string[], cluster: boolean, timeoutMs = 2000): Promise<RedisEngine> {
  const engine = await connectEngine({ urls, cluster, timeoutMs });
  t.teardown(() => engine.close());
  return engine;
}

const store = (engine: RedisEngine, o: Partial<RedisDeferredStoreOptions> = {}): RedisDeferredStore =>
  new RedisDeferredStore({ engine, bounds: SUITE_BOUNDS, ...o });

t.test('cluster of 3 masters: the interface suite', async t => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  const engine = await engineFor(t, cluster.urls, true);
  await deferredSuite(t, () => store(engine, { prefix: 'suite' }));
  // the keys of one id in one slot, different ids spread over the masters
  const slots = await Promise.all(['a', 'b', 'c', 'd'].map(async id => {
    const ks = store(engine).keys(id);
    const s = await Promise.all(ks.map(k => cluster.nodes[0]!.cli('cluster', 'keyslot', k)));
    t.equal(new Set(s).size, 1, `one slot for ${id}'s keys`);
    return s[0];
  }));
  t.ok(new Set(slots).size > 1, 'ids in several slots');

  await t.test('through the relay: stored before the 200, delivered in order, marked done', async t => {
    const s = store(engine, { prefix: 'relay' });
    const r = await listenWithEvents({ deferred: { store: s } });
    t.teardown(() => r.relay.close());
    const origin = await MsrpPeer.connect({ host: '127.0.0.1', port: r.port, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
    t.teardown(() => origin.close());
    const o = r.relay.offer({ 'call-id': 'cl-1', sdp: sdpFor(origin.localUri), 'served-user': 'sip:bob@example.net' });
    if (o.result !== 'ok') throw new Error(o['error-reason']);
    origin.remotePath = o['relay-uri'];
    t.equal(await origin.bind(), 200);
    const id = idOf(0xc1);
    t.same(r.relay.defer({ 'call-id': 'cl-1', 'deferred-id': id, 'served-user': 'sip:bob@example.net', 'expires-at': Date.now() + 60_000 }), { result: 'ok' });
    const msgs = [1, 2, 3].map(i => buildCpim({ from: 'sip:alice@example.net', to: 'sip:bob@example.net', body: `c${i}`, imdnMessageId: `c${i}` }));
    for (const m of msgs) t.same((await origin.sendMessage(m)).statuses, [200]);
    t.equal((await s.pending(id, 'messages')).length, 3, 'on the engine');
    const d = await r.relay.deliver({ 'call-id': 'cl-dlv', 'deferred-id': id, what: 'messages' });
    if (d.result !== 'ok') throw new Error(d['error-reason']);
    const dev = await MsrpPeer.connect({ host: '127.0.0.1', port: r.port, remotePath: d['device-relay-uri'] });
    t.teardown(() => dev.close());
    const a = r.relay.answer({ 'call-id': 'cl-dlv', leg: 'peer', sdp: sdpFor(dev.localUri) });
    if (a.result !== 'ok') throw new Error(a['error-reason']);
    t.equal(await dev.bind(), 200);
    t.match(await r.waitEvent(e => e.event === 'delivered' && e['call-id'] === 'cl-dlv'), { sent: 3, remaining: 0 });
    t.ok(dev.messages.every((m, i) => m.body.equals(msgs[i]!)), 'byte for byte, in order');
    t.same(await s.pending(id, 'messages'), [], 'marked done on the engine');
  });
});

t.test('one Redis', async t => {
  const redis: RedisNode = await startRedis(`${t.testdir()}/redis`);
  t.teardown(() => redis.stop());
  const urls = [redis.url];

  await t.test('ids with odd characters: encoded, kept apart, read back', async t => {
    const s = store(await engineFor(t, urls, false), { prefix: 'odd' });
    const ids = ['a}b{c', '{x}', 'sp ace\r\n', 'ünï✓', '*?[]', 'a:b:r', ''];
    for (const [i, id] of ids.entries()) {
      await s.putRecord(id, { callId: `c${i}`, servedUser: 'sip:bob@example.net', expiresAt: Date.now() + 60_000 });
      t.ok((await s.append(id, 'messages', item(`m${i}`))).ok, JSON.stringify(id));
    }
    for (const [i, id] of ids.entries()) {
      t.equal((await s.record(id))?.callId, `c${i}`);
      t.equal((await s.pending(id, 'messages')).length, 1, `one item under ${JSON.stringify(id)}`);
    }
    t.ok(s.keys('a}b{c').every(k => k.includes(`{${keyPart('a}b{c')}}`)), 'the hash tag is the encoded id');
    t.throws(() => store({} as RedisEngine, { prefix: 'p{x}' }), /braces/);
    for (const id of ids) await s.discard(id);
    t.same(await s.totals(), { items: 0, bytes: 0 });
  });

  await t.test('engine TTL: the latest expiry plus the grace, never lowered', async t => {
    const s = store(await engineFor(t, urls, false), { prefix: 'ttl', ttlGraceMs: 60_000 });
    const now = Date.now();
    await s.putRecord('t1', { callId: 'c', servedUser: 'sip:bob@example.net', expiresAt: now + 10_000 });
    await s.append('t1', 'messages', item('late', { expiresAt: now + 30_000 }));
    await s.append('t1', 'messages', item('early', { expiresAt: now + 5_000 }));
    // the notifications key does not exist (nothing stored there)
    for (const k of s.keys('t1').filter(k => !k.endsWith(':n'))) {
      const at = Number(await redis.cli('pexpiretime', k));
      t.equal(at, now + 30_000 + 60_000, `${k.split(':').pop()} expires at the latest item's expiry plus grace`);
    }
  });

  await t.test('two relays sweeping at once: each expired message gives one notice', async t => {
    const a = store(await engineFor(t, urls, false), { prefix: 'two' });
    const b = store(await engineFor(t, urls, false), { prefix: 'two' });
    const now = Date.now();
    const ids = [idOf(0x51), idOf(0x52), idOf(0x53)];
    for (const id of ids) {
      await a.putRecord(id, { callId: `call-${id}`, servedUser: 'sip:bob@example.net', expiresAt: now - 1 });
      for (let i = 0; i < 5; i++) await a.append(id, 'messages', item(`e${i}`, { expiresAt: now - 10 + i, negativeDelivery: true }));
    }
    const notices: string[] = [];
    const notice = (m: { imdnMessageId?: string }) => {
      notices.push(m.imdnMessageId ?? '');
      return item(`failed ${m.imdnMessageId}`, { expiresAt: now + 60_000 });
    };
    const [ra, rb] = await Promise.all([a.expire(now, notice), b.expire(now, notice)]);
    const expired = [...ra, ...rb].reduce((n, x) => n + x.expired, 0);
    t.equal(expired, 15, 'every message expired once between the two sweeps');
    for (const id of ids) {
      t.equal((await a.pending(id, 'notifications')).length, 5, 'five notices stored, not ten');
      t.same(await a.pending(id, 'messages'), []);
    }
    t.same(await a.totals(), { items: 15, bytes: (await Promise.all(ids.map(id => a.pending(id, 'notifications'))))
      .flat().reduce((n, x) => n + x.payload.length, 0) }, 'totals: the notices only');
    for (const id of ids) await a.discard(id);
  });

  await t.test('an engine that refuses writes (OOM): the SEND gets 500, nothing stored behind it', async t => {
    const engine = await engineFor(t, urls, false);
    const s = store(engine, { prefix: 'oom' });
    const r = await listenWithEvents({ deferred: { store: s } });
    t.teardown(() => r.relay.close());
    const origin = await MsrpPeer.connect({ host: '127.0.0.1', port: r.port, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
    t.teardown(() => origin.close());
    const o = r.relay.offer({ 'call-id': 'oom-1', sdp: sdpFor(origin.localUri), 'served-user': 'sip:bob@example.net' });
    if (o.result !== 'ok') throw new Error(o['error-reason']);
    origin.remotePath = o['relay-uri'];
    t.equal(await origin.bind(), 200);
    const id = idOf(0xdead);
    t.same(r.relay.defer({ 'call-id': 'oom-1', 'deferred-id': id, 'served-user': 'sip:bob@example.net', 'expires-at': Date.now() + 60_000 }), { result: 'ok' });
    const cpim = (body: string): Buffer => buildCpim({ from: 'sip:alice@example.net', to: 'sip:bob@example.net', body, imdnMessageId: body });
    t.same((await origin.sendMessage(cpim('before'))).statuses, [200]);
    const before = await s.totals();
    await redis.cli('config', 'set', 'maxmemory-policy', 'noeviction');
    await redis.cli('config', 'set', 'maxmemory', '1');
    t.teardown(() => redis.cli('config', 'set', 'maxmemory', '0'));
    t.same((await origin.sendMessage(cpim('refused'))).statuses, [500], 'MSRP 500, not 200');
    await t.rejects(s.append(id, 'messages', item('direct')), { name: 'EngineError', message: /OOM/ });
    await redis.cli('config', 'set', 'maxmemory', '0');
    t.same((await origin.sendMessage(cpim('after'))).statuses, [200]);
    const p = await s.pending(id, 'messages');
    t.same(p.map(i => i.imdnMessageId), ['before', 'after'], 'what got 200 is there, in order; the refused one is not');
    t.equal((await s.totals()).items, before.items + 1, 'the refused appends gave their reservation back');
  });

  await t.test('a READONLY replica refuses writes: a clear error, nothing changed', async t => {
    const primary = await startRedis(`${t.testdir()}/primary`);
    t.teardown(() => primary.stop());
    const replica = await startRedis(`${t.testdir()}/replica`);
    t.teardown(() => replica.stop());
    await replica.cli('replicaof', '127.0.0.1', String(primary.port));
    const s = store(await engineFor(t, [replica.url], false), { prefix: 'ro' });
    await t.rejects(s.append('ro-1', 'messages', item('x')), { name: 'EngineError', message: /READONLY/ });
    await t.rejects(s.putRecord('ro-1', { callId: 'c', servedUser: 'u', expiresAt: Date.now() + 1000 }), { name: 'EngineError', message: /READONLY/ });
    t.same(await s.pending('ro-1', 'messages'), [], 'reads go on');
  });

  await t.test('a slow engine: the append fails within its bound', async t => {
    const s = store(await engineFor(t, urls, false, 200), { prefix: 'slow' });
    t.ok((await s.append('slow-1', 'messages', item('fast'))).ok);
    await redis.cli('client', 'pause', '1000', 'WRITE');
    t.teardown(() => redis.cli('client', 'unpause'));
    const started = performance.now();
    await t.rejects(s.append('slow-1', 'messages', item('slow')), { name: 'EngineError', message: /timed out after 200 ms/, timedOut: true });
    t.ok(performance.now() - started < 900, 'within the bound, not the pause');
    await redis.cli('client', 'unpause');
  });

  await t.test('replica acknowledgement: WAIT for more replicas than there are fails the write', async t => {
    const s = store(await engineFor(t, urls, false), { prefix: 'wait', replicas: 1, waitMs: 100 });
    await t.rejects(s.append('w-1', 'messages', item('x')), { name: 'EngineError', message: /0 of 1 replicas acknowledged within 100 ms/ });
  });
});

t.test('cluster with a replica per master: WAIT 1 acknowledged', async t => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`, 3, 1);
  t.teardown(() => cluster.stop());
  // each master's replica has finished its first sync
  for (const m of cluster.nodes.slice(0, 3)) {
    await until(async () => (/slave0:.*state=online/.test(await m.cli('info', 'replication')) ? true : undefined), 15_000, 'the replicas online', 50);
  }
  const s = store(await engineFor(t, cluster.urls, true), { prefix: 'rep', replicas: 1, waitMs: 2000 });
  for (const id of ['r1', 'r2', 'r3', 'r4']) {
    t.ok((await s.append(id, 'messages', item(id))).ok, `${id} on its master and one replica`);
    t.equal(await s.markDone(id, 'messages', 1), true);
  }
});
