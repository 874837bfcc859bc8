import t from 'tap';
import { createApp, type App } from '../../../plugin/app.js';
import { quietLog, tempDir, testConfig, OPERATOR, type Teardown } from './fixtures/helpers.js';

const RL = 'application/resource-lists+xml';
const AR = 'application/auth-policy+xml';
const BL_URL = '/xcap-root/resource-lists/users/sip:bob@example.net/index';
const RULES_URL = '/xcap-root/org.openmobilealliance.access-rules/users/sip:bob@example.net/index';

const blacklist = (uris: string[]): string =>
  `<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="oma_blockedcontacts">${uris.map((u) => `<entry uri="${u}"/>`).join('')}</list>
</resource-lists>`;

const ruleset = `<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" xmlns:oxe="urn:oma:xml:xdm:extensions">
  <cp:rule id="dnd"><cp:conditions/><cp:actions><oxe:allow-do-not-disturb>true</oxe:allow-do-not-disturb></cp:actions></cp:rule>
</cp:ruleset>`;

async function makeApp(t: Teardown, dir = tempDir(t), overrides: Record<string, unknown> = {}): Promise<App> {
  const app = await createApp(testConfig(dir, overrides), quietLog);
  t.teardown(() => app.stop());
  return app;
}

t.test('PUT creates, GET returns it with a strong ETag and the AUID MIME type', async (t) => {
  const app = await makeApp(t);
  const body = blacklist(['sip:spam@example.net', 'sip:%C3%A9l%C3%A9onore@example.net', 'sip:zoë@example.net']);
  const put = await app.http.inject({ method: 'PUT', url: BL_URL, headers: { ...OPERATOR, 'content-type': RL }, payload: body });
  t.equal(put.statusCode, 201);
  const etag = put.headers.etag as string;
  t.match(etag, /^"[^"]+"$/);

  const get = await app.http.inject({ headers: OPERATOR, method: 'GET', url: BL_URL });
  t.equal(get.statusCode, 200);
  t.equal(get.headers['content-type'], RL);
  t.equal(get.headers.etag, etag);
  t.equal(get.body, body);

  // percent-encoded XUI and another host of the same user (identity "user") are the same document
  const enc = await app.http.inject({ headers: OPERATOR,
    method: 'GET',
    url: '/xcap-root/resource-lists/users/sip%3Abob%40other.example/index',
  });
  t.equal(enc.statusCode, 200);
  t.equal(enc.body, body);

  const rules = await app.http.inject({
    method: 'PUT',
    url: RULES_URL,
    headers: { ...OPERATOR, 'content-type': `${AR}; charset=UTF-8` },
    payload: ruleset,
  });
  t.equal(rules.statusCode, 201);
  const getRules = await app.http.inject({ headers: OPERATOR, method: 'GET', url: RULES_URL });
  t.equal(getRules.headers['content-type'], AR);
});

t.test('conditional requests', async (t) => {
  const app = await makeApp(t);
  const v1 = blacklist(['sip:a@example.net']);
  const v2 = blacklist(['sip:b@example.net']);
  const put = (payload: string, headers: Record<string, string> = {}) =>
    app.http.inject({ method: 'PUT', url: BL_URL, headers: { ...OPERATOR, 'content-type': RL, ...headers }, payload });

  // If-Match on a missing document: 412; If-None-Match: * creates
  t.equal((await put(v1, { 'if-match': '*' })).statusCode, 412);
  const created = await put(v1, { 'if-none-match': '*' });
  t.equal(created.statusCode, 201);
  const e1 = created.headers.etag as string;
  t.equal((await put(v1, { 'if-none-match': '*' })).statusCode, 412);

  t.equal((await app.http.inject({ method: 'GET', url: BL_URL, headers: { ...OPERATOR, 'if-none-match': e1 } })).statusCode, 304);
  t.equal((await app.http.inject({ method: 'GET', url: BL_URL, headers: { ...OPERATOR, 'if-none-match': '"other"' } })).statusCode, 200);
  t.equal((await app.http.inject({ method: 'GET', url: BL_URL, headers: { ...OPERATOR, 'if-match': '"other"' } })).statusCode, 412);

  t.equal((await put(v2, { 'if-match': '"stale"' })).statusCode, 412);
  const replaced = await put(v2, { 'if-match': `"x", ${e1}` });
  t.equal(replaced.statusCode, 200);
  const e2 = replaced.headers.etag as string;
  t.not(e2, e1);
  // a weak tag never satisfies If-Match (RFC 9110 §13.1.1)
  t.equal((await put(v1, { 'if-match': `W/${e2}` })).statusCode, 412);

  const delStale = await app.http.inject({ method: 'DELETE', url: BL_URL, headers: { ...OPERATOR, 'if-match': e1 } });
  t.equal(delStale.statusCode, 412);
  const del = await app.http.inject({ method: 'DELETE', url: BL_URL, headers: { ...OPERATOR, 'if-match': e2 } });
  t.equal(del.statusCode, 200);
  t.equal((await app.http.inject({ headers: OPERATOR, method: 'GET', url: BL_URL })).statusCode, 404);
  t.equal((await app.http.inject({ headers: OPERATOR, method: 'DELETE', url: BL_URL })).statusCode, 404);
});

t.test('bad documents are refused and the previous one stays', async (t) => {
  const app = await makeApp(t, undefined, { xdm: { maxDocumentBytes: 4096 } });
  const good = blacklist(['sip:spam@example.net']);
  const put = (payload: string, ctype = RL) =>
    app.http.inject({ method: 'PUT', url: BL_URL, headers: { ...OPERATOR, 'content-type': ctype }, payload });
  t.equal((await put(good)).statusCode, 201);

  const cases: ReadonlyArray<readonly [string, string, number, RegExp | null]> = [
    ['not well-formed', '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list>', 409, /<not-well-formed\/>/],
    ['not XML', 'hello', 409, /<not-well-formed\/>/],
    ['empty', '', 409, /<not-well-formed\/>/],
    [
      'DTD',
      '<?xml version="1.0"?><!DOCTYPE r [<!ELEMENT r ANY>]><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>',
      409,
      /<constraint-failure phrase="[^"]*DTD/,
    ],
    [
      'external entity',
      '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">&x;</resource-lists>',
      409,
      /constraint-failure/,
    ],
    [
      'undeclared entity reference',
      '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="&x;"/></resource-lists>',
      409,
      /xcap-error/,
    ],
    ['wrong root', '<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"/>', 409, /<schema-validation-error\/>/],
    ['no namespace', '<resource-lists/>', 409, /<schema-validation-error\/>/],
    ['oversized', blacklist(Array.from({ length: 200 }, (_, i) => `sip:u${i}@example.net`)), 413, null],
    // under the limit in characters, over it in UTF-8 bytes
    ['oversized in bytes', blacklist([`sip:${'é'.repeat(2000)}@example.net`]), 413, null],
  ];
  for (const [name, body, code, re] of cases) {
    const res = await put(body);
    t.equal(res.statusCode, code, name);
    if (re) {
      t.equal(res.headers['content-type'], 'application/xcap-error+xml', `${name}: error MIME`);
      t.match(res.body, re, `${name}: error body`);
    }
  }
  // wrong MIME for the AUID, and a MIME no AUID uses
  t.equal((await put(good, AR)).statusCode, 415);
  t.equal((await put(good, 'application/xml')).statusCode, 415);

  const get = await app.http.inject({ headers: OPERATOR, method: 'GET', url: BL_URL });
  t.equal(get.body, good, 'the previous document is still served');
});

t.test('only the two AUIDs and whole documents are served', async (t) => {
  const app = await makeApp(t);
  const caps = await app.http.inject({ headers: OPERATOR, url: '/xcap-root/xcap-caps/global/index' });
  t.equal(caps.statusCode, 200);
  t.equal(caps.headers['content-type'], 'application/xcap-caps+xml');
  t.match(caps.body, /<auid>resource-lists<\/auid><auid>org\.openmobilealliance\.access-rules<\/auid>/);
  for (const url of [
    '/xcap-root/pres-rules/users/sip:bob@example.net/index',
    '/xcap-root/resource-lists/global/index',
    '/xcap-root/resource-lists/users/sip:bob@example.net/index/~~/resource-lists/list',
    '/xcap-root/resource-lists/users/not-a-uri/index',
  ]) {
    const res = await app.http.inject({ headers: OPERATOR, method: 'GET', url });
    t.equal(res.statusCode, 404, url);
  }
});

t.test('documents survive a restart', async (t) => {
  const dir = tempDir(t);
  const first = await createApp(testConfig(dir), quietLog);
  const body = blacklist(['tel:+15550000002']);
  const put = await first.http.inject({ method: 'PUT', url: BL_URL, headers: { ...OPERATOR, 'content-type': RL }, payload: body });
  await first.stop();
  const second = await makeApp(t, dir);
  const get = await second.http.inject({ headers: OPERATOR, method: 'GET', url: BL_URL });
  t.equal(get.body, body);
  t.equal(get.headers.etag, put.headers.etag);
});

t.test('the XCAP routes are an encapsulated plugin: their body parsers stay inside', async (t) => {
  const app = await makeApp(t);
  // A sibling route on the root instance does not get the XCAP MIME types' parser.
  app.http.post('/sibling', async () => ({ ok: true }));
  const res = await app.http.inject({ method: 'POST', url: '/sibling', headers: { 'content-type': RL }, payload: '<x/>' });
  t.equal(res.statusCode, 415);
  const json = await app.http.inject({ method: 'POST', url: '/sibling', payload: { a: 1 } });
  t.equal(json.statusCode, 200);
});
