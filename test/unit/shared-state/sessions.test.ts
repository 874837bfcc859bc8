// Who is in which session (plugin/sessions/store.ts, CR 8.3.2.1 step 9): one suite on the
// in-memory store and on a three-master Redis Cluster, where the dialogs a node records
// through one service instance are read and ended through another; and the pure steps.
import t, { type Test } from 'tap';
import {
  DIALOG_TTL_MS, LocalSessionStore, SESSION_MAX_BYTES, entryOf, lineField, withDialog, withoutDialog,
  type DialogRecord, type SessionStore,
} from '../../../plugin/sessions/store.js';
import { RedisSessionStore } from '../../../plugin/sessions/redis-store.js';
import { sessionDialogs } from '../../../plugin/sessions/lines.js';
import { connectRedis } from '../../../plugin/shared-state/redis.js';
import { startRedisCluster } from '../../../lab/redis.js';
import { createApp, type App } from '../../../plugin/app.js';
import { inviteText, registerText } from '../../../lab/service-fixtures.js';
import { quietLog, rpcCall as call, tempDir, testConfig } from '../service/fixtures/helpers.js';

const BOB = 'sip:bob@example.net';

interface Pair {
  /** where the dialogs are recorded (node 1's instance) */
  readonly a: SessionStore;
  /** another instance */
  readonly b: SessionStore;
  /** resolves once `store` reads `cid` as `want` says */
  readonly seen: (store: SessionStore, cid: string, want: (entry: string | undefined) => boolean) => Promise<void>;
}

async function suite(t: Test, { a, b, seen }: Pair): Promise<void> {
  const now = 1_000_000;
  // odd Contribution-IDs: a hash tag's braces, colons, non-ASCII
  const cid = 'x{y}z:1@ünï';
  const d1 = { cid, dialog: 'call-1@h;dev-tag-1', ruri: BOB, contact: '<sip:bob@127.0.0.1:6001;transport=tcp>;+sip.instance="<urn:uuid:1>"' };
  const d2 = { cid, dialog: 'call-1@h;dev-tag-2', ruri: BOB, contact: '<sip:bob@127.0.0.1:6002>\r\n ;expires=60' };
  t.equal(a.entry(cid, now), undefined, 'no session yet');
  t.equal(await a.start(d1, now), true, 'a 2xx: recorded');
  t.equal(await a.start(d1, now), false, 'a retransmitted 2xx: nothing new');
  t.equal(await a.start(d2, now), true, 'a second forked 2xx');
  await seen(b, cid, (e) => e?.split('\n').length === 3);
  t.same(sessionDialogs(b.entry(cid, now) ?? ''), [
    { dialog: d1.dialog, ruri: BOB, contact: d1.contact },
    { dialog: d2.dialog, ruri: BOB, contact: '<sip:bob@127.0.0.1:6002> ;expires=60' },
  ], 'the other instance reads both dialogs, folded Contact unfolded');

  // a BYE through the other instance: either tag may be the device's
  t.equal(await b.end('call-1@h', ['caller-tag', 'dev-tag-1'], now + 1), true, "the caller's BYE (device tag in To)");
  t.equal(await b.end('call-1@h', ['dev-tag-1', 'caller-tag'], now + 1), false, 'ended already');
  t.equal(await b.end('nope', ['x'], now + 1), false, 'unknown dialog');
  await seen(a, cid, (e) => e !== undefined && !e.includes('dev-tag-1'));
  t.same(sessionDialogs(a.entry(cid, now + 1) ?? '').map((d) => d.dialog), [d2.dialog], 'the first instance sees it gone');
  t.equal(await a.end('call-1@h', ['dev-tag-2', 'caller-tag'], now + 2), true, "the device's BYE (its tag in From)");
  await seen(b, cid, (e) => e === undefined);
  t.equal(b.entry(cid, now + 2), undefined, 'the session ended with its last dialog');

  // a dialog without BYE ends after DIALOG_TTL_MS
  const d3 = { cid: 'c3', dialog: 'call-3;t', ruri: BOB, contact: '<sip:bob@h>' };
  await a.start(d3, now);
  await seen(b, 'c3', (e) => e !== undefined);
  t.ok(b.entry('c3', now + DIALOG_TTL_MS - 1), 'live until its TTL');
  t.equal(b.entry('c3', now + DIALOG_TTL_MS), undefined, 'gone after it');
  t.equal(await a.start(d3, now + DIALOG_TTL_MS), true, 'the same dialog again after it lapsed: recorded anew');

  // a Contribution-ID reused by many dialogs stops being added to
  const big = { cid: 'big', ruri: BOB, contact: `<sip:bob@${'h'.repeat(400)}>` };
  let n = 0;
  while (await a.start({ ...big, dialog: `call-${n};t` }, now)) n++;
  const bytes = Buffer.byteLength(a.entry('big', now) ?? '');
  t.ok(bytes >= SESSION_MAX_BYTES && bytes < SESSION_MAX_BYTES + 500, `full after ${n} dialogs (${bytes} bytes)`);
}

t.test('pure steps', async (t) => {
  const r = (dialog: string, until: number): DialogRecord => ({ dialog, ruri: BOB, contact: '<sip:b@h>', until });
  const cases: Array<[string, DialogRecord[] | null, DialogRecord[] | null]> = [
    ['withDialog: new', withDialog([], { cid: 'c', dialog: 'd', ruri: BOB, contact: '<sip:b@h>' }, 0), [r('d', DIALOG_TTL_MS)]],
    ['withDialog: live already', withDialog([r('d', 10)], { cid: 'c', dialog: 'd', ruri: BOB, contact: 'x' }, 5), null],
    ['withDialog: drops expired', withDialog([r('old', 5)], { cid: 'c', dialog: 'd', ruri: BOB, contact: '<sip:b@h>' }, 5), [r('d', 5 + DIALOG_TTL_MS)]],
    ['withoutDialog: ends it', withoutDialog([r('a', 10), r('b', 10)], 'a', 0), [r('b', 10)]],
    ['withoutDialog: unknown', withoutDialog([r('a', 10)], 'b', 0), null],
    ['withoutDialog: expired already', withoutDialog([r('a', 10)], 'a', 10), null],
  ];
  for (const [name, got, want] of cases) t.same(got, want, name);
  t.equal(entryOf([r('a', 10), r('b', 5)], 5), 'a\tsip:bob@example.net\t<sip:b@h>\n', 'entryOf: live lines only');
  t.equal(entryOf([r('a', 5)], 5), undefined);
  const fields: Array<[string, string]> = [['<sip:b@h>\r\n ;a=1', '<sip:b@h> ;a=1'], ['a\tb\nc', 'a b c'], [' x ', 'x']];
  for (const [raw, want] of fields) t.equal(lineField(raw), want, `lineField ${JSON.stringify(raw)}`);
});

t.test('in memory (one host)', async (t) => {
  const store = new LocalSessionStore();
  await suite(t, { a: store, b: store, seen: () => Promise.resolve() });
  await maxDialogs(t, new LocalSessionStore(2));
});

/** A store that keeps 2 dialogs at most: the third is not kept; one ended, room again. */
async function maxDialogs(t: Test, store: SessionStore): Promise<void> {
  const d = (n: number) => ({ cid: `max-${n}`, dialog: `m${n};t`, ruri: BOB, contact: '<sip:bob@h>' });
  t.equal(await store.start(d(1), 0), true);
  t.equal(await store.start(d(2), 0), true);
  t.equal(await store.start(d(3), 0), false, 'past the bound: not kept');
  t.equal(store.entry('max-3', 0), undefined);
  t.equal(await store.end('m1', ['t'], 0), true);
  t.equal(await store.start(d(3), 0), true, 'room again after a BYE');
  t.equal(await store.start(d(4), DIALOG_TTL_MS), true, 'room again once dialogs ended without BYE');
}

t.test('redis cluster: two instances', async (t) => {
  const cluster = await startRedisCluster(`${t.testdir()}/redis`);
  t.teardown(() => cluster.stop());
  const open = async (): Promise<RedisSessionStore> => {
    const engine = await connectRedis({ urls: cluster.urls, cluster: true, timeoutMs: 2000 });
    const store = await RedisSessionStore.open(engine, { prefix: 'st' });
    t.teardown(async () => {
      await store.close();
      await engine.close();
    });
    return store;
  };
  const a = await open();
  const b = await open();
  const seen = (store: SessionStore, cid: string, want: (e: string | undefined) => boolean): Promise<void> =>
    new Promise((resolve) => {
      const s = store as RedisSessionStore;
      const probe = (): boolean => want(s.entry(cid, 1_000_000));
      if (probe()) return resolve();
      const off = s.onChange((c) => {
        if (c !== cid || !probe()) return;
        off();
        resolve();
      });
    });
  await suite(t, { a, b, seen });

  await t.test('a bound on the dialogs kept', async (t) => {
    const engine = await connectRedis({ urls: cluster.urls, cluster: true, timeoutMs: 2000 });
    const store = await RedisSessionStore.open(engine, { prefix: 'max', maxDialogs: 2 });
    t.teardown(async () => {
      await store.close();
      await engine.close();
    });
    await maxDialogs(t, store);
  });

  await t.test('a third instance started later loads every session', async (t) => {
    const c = await open();
    t.ok(c.entry('big', 1_000_000), 'loaded at start');
  });

  await t.test('service: a dialog recorded through instance 1 decides a Session-Replaces INVITE through instance 2', async (t) => {
    const instance = async (): Promise<App> => {
      const app = await createApp(
        testConfig(tempDir(t), { sharedState: { engine: 'redis', redis: { urls: cluster.urls, cluster: true, prefix: 'svc', timeoutMs: 2000 } } }),
        quietLog,
      );
      t.teardown(() => app.stop());
      await app.start();
      return app;
    };
    await replacesThroughTwo(t, await instance(), await instance(), (app) => app.sessions as RedisSessionStore);
  });
});

t.test('service, one host (lmdb): the dialogs recorded with pf.dialog.start', async (t) => {
  const app = await createApp(testConfig(tempDir(t)), quietLog);
  t.teardown(() => app.stop());
  await app.start();
  await replacesThroughTwo(t, app, app, () => null);
});

const DEV1 = '<urn:uuid:00000000-0000-0000-0000-000000000001>';
const DEV2 = '<urn:uuid:00000000-0000-0000-0000-000000000002>';

/** pf.dialog.start through `one`, the Session-Replaces INVITE and pf.dialog.end through `two`. */
async function replacesThroughTwo(t: Test, one: App, two: App, storeOf: (app: App) => RedisSessionStore | null): Promise<void> {
  await call(one.rpcPort, 'pf.register', { v: 1, msg: registerText({ port: 6001 }), src: 'tcp:127.0.0.1:40001' });
  await call(one.rpcPort, 'pf.register', { v: 1, msg: registerText({ port: 6002, instance: '00000000-0000-0000-0000-000000000002' }), src: 'tcp:127.0.0.1:40002' });
  const cid = 'abcdef-1234';
  const waitFor = (want: (e: string | undefined) => boolean): Promise<void> => {
    const s = storeOf(two);
    if (!s || want(s.entry(cid, Date.now()))) return Promise.resolve();
    return new Promise((resolve) => {
      const off = s.onChange(() => {
        if (!want(s.entry(cid, Date.now()))) return;
        off();
        resolve();
      });
    });
  };
  const replaces = async (): Promise<{ stage: string; hdrs?: string }> =>
    (await call(two.rpcPort, 'pf.invite', {
      v: 1, msg: inviteText({ contributionId: 'group-2', extra: [`Session-Replaces: ${cid}`] }), src: 'udp:127.0.0.1:5070',
    })).result as { stage: string; hdrs?: string };
  t.match(await replaces(), { stage: 'proxy' }, 'unknown session: normal selection');

  const seen = waitFor((e) => e !== undefined);
  const started = await call(one.rpcPort, 'pf.dialog.start', {
    v: 1, cid, dialog: 'call-9@h;devtag', ruri: 'sip:bob@example.net', contact: `<sip:x@127.0.0.1:7000>;+sip.instance="${DEV1}"`,
  });
  t.same(started.result, { recorded: true });
  await seen;
  const decided = await replaces();
  t.match(decided, { stage: 'session-replaces' }, "the session's device, recorded through the other instance");
  t.match(decided.hdrs, `Reject-Contact: *;+sip.instance="${DEV2}"`, 'the other device is left out');

  const gone = waitFor((e) => e === undefined);
  t.same((await call(two.rpcPort, 'pf.dialog.end', { v: 1, callId: 'call-9@h', toTag: 'callertag', fromTag: 'devtag' })).result, { ended: true });
  await gone;
  t.match(await replaces(), { stage: 'proxy' }, 'after the BYE: unknown again');
  const bad = await call(one.rpcPort, 'pf.dialog.start', { v: 1, cid, dialog: '', ruri: 'x', contact: 'y' });
  t.match(bad.error, { code: -32602 }, 'params checked');
}
