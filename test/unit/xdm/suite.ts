// The DocumentStore interface tests (plugin/xdm/store.ts), run against every backend:
// the embedded lmdb store and the Redis store on a Redis Cluster (interface.test.ts).
import type { Test } from 'tap';
import { etagOf, type DocumentStore } from '../../../plugin/xdm/store.js';

export interface Opened {
  readonly store: DocumentStore;
  close(): Promise<void>;
}

/** `open` gives a store on the same backing data each time (a restart, or another instance). */
export type OpenStore = () => Promise<Opened>;

export const MAX_BYTES = 4096;
const RL = 'resource-lists';
const RULES = 'org.openmobilealliance.access-rules';
export const list = (...uris: string[]): string =>
  `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts">${uris
    .map((u) => `<entry uri="${u}"/>`)
    .join('')}</list></resource-lists>`;
const ruleset = '<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"/>';

/** Each subtest uses its own user, so one backing store serves them all. */
export async function documentStoreSuite(t: Test, open: OpenStore): Promise<void> {
  await t.test('put, get, etag, replace, delete', async (t) => {
    const XUI = 'sip:bob@example.net';
    const { store, close } = await open();
    t.teardown(close);
    t.equal(store.get(RL, XUI, 'index'), undefined);
    t.equal(store.etag(RL, XUI, 'index'), undefined);
    const a = await store.put(RL, XUI, 'index', list('sip:a@x'), 10);
    t.same(a, { body: list('sip:a@x'), etag: etagOf(list('sip:a@x')), mime: 'application/resource-lists+xml', updatedAt: 10 });
    t.match(a.etag, /^"[\w-]+"$/, 'a strong, quoted ETag (RFC 9110 §8.8.3)');
    t.same(store.get(RL, XUI, 'index'), a);
    t.equal(store.etag(RL, XUI, 'index'), a.etag);
    const b = await store.put(RL, XUI, 'index', list('sip:b@x'), 20);
    t.not(b.etag, a.etag, 'a new body, a new ETag');
    t.equal(store.etag(RL, XUI, 'index'), b.etag);
    const r = await store.put(RULES, XUI, 'index', ruleset, 30);
    t.equal(r.mime, 'application/auth-policy+xml');
    t.equal(store.etag(RL, XUI, 'index'), b.etag, 'another AUID is another document');
    t.equal(await store.delete(RL, XUI, 'index'), true);
    t.equal(await store.delete(RL, XUI, 'index'), false, 'nothing left to delete');
    t.equal(store.get(RL, XUI, 'index'), undefined);
    t.same(store.get(RULES, XUI, 'index'), r);
  });

  await t.test('a refused PUT leaves the previous document in force', async (t) => {
    const XUI = 'sip:refused@example.net';
    const { store, close } = await open();
    t.teardown(close);
    const good = await store.put(RL, XUI, 'index', list('sip:a@x'), 0);
    const cases: readonly (readonly [string, string, string])[] = [
      ['not well-formed', '<resource-lists', 'XCAP_NOT_WELL_FORMED'],
      ['wrong root for the AUID', ruleset, 'XCAP_SCHEMA'],
      ['a DTD', `<!DOCTYPE x [<!ENTITY e "x">]>${list()}`, 'XCAP_DTD_FORBIDDEN'],
      ['too large', list(...Array.from({ length: 200 }, (_, i) => `sip:u${i}@example.net`)), 'XCAP_TOO_LARGE'],
    ];
    for (const [what, body, code] of cases) {
      await t.rejects(store.put(RL, XUI, 'index', body, 1), { name: 'XcapRejectError', code }, what);
      t.same(store.get(RL, XUI, 'index'), good, `${what}: previous kept`);
    }
    await t.rejects(store.put('no-such-auid', XUI, 'index', list(), 1), /unknown auid/);
  });

  await t.test('a restart loses nothing: reopen the store', async (t) => {
    const XUI = 'sip:restart@example.net';
    const first = await open();
    const d = await first.store.put(RL, XUI, 'index', list('tel:+15550000001'), 5);
    await first.close();
    const second = await open();
    t.teardown(second.close);
    t.same(second.store.get(RL, XUI, 'index'), d);
    t.equal(second.store.etag(RL, XUI, 'index'), d.etag);
  });

  await t.test('users and document names with odd characters are kept apart', async (t) => {
    const { store, close } = await open();
    t.teardown(close);
    const names: readonly (readonly [string, string])[] = [
      ['sip:{odd}@example.net', 'index'], ['sip:odd}@example.net', 'index'], ['sip:a:b@example.net', 'index'],
      ['sip:a:b@example.net', 'a:b'], ['sip:ünï©ødé@example.net', 'índex'], ['tel:+1-555-0100', 'index'],
      ['sip:%7B@example.net', 'x y'], ['sip:*@example.net', '*'],
    ];
    for (const [i, [xui, doc]] of names.entries()) await store.put(RL, xui, doc, list(`sip:n${i}@x`), 0);
    for (const [i, [xui, doc]] of names.entries()) t.equal(store.get(RL, xui, doc)?.body, list(`sip:n${i}@x`), `${xui} ${doc}`);
    const again = await open();
    t.teardown(again.close);
    for (const [i, [xui, doc]] of names.entries()) t.equal(again.store.get(RL, xui, doc)?.body, list(`sip:n${i}@x`), `reopened: ${xui} ${doc}`);
  });
}
