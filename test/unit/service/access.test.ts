// Who may use the service's HTTP interface (plugin/http/auth.ts, docs/deployment.md "Threat model"),
// over real sockets: the operator's bearer token, identities asserted by a trusted Aggregation
// Proxy (by address: the proxy is 127.0.0.2, a loopback alias the client binds to; by client
// certificate over HTTPS), and what the others get: 401/403 with an XCAP error body, and the
// documents stored before unchanged. The decision itself, access(), through a case table.
import t from 'tap';
import http from 'node:http';
import https from 'node:https';
import { Writable } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import { pino } from 'pino';
import { createApp, type App } from '../../../plugin/app.js';
import { access, firstIdentity, readAuthorization, tokenMatches, type Credentials } from '../../../plugin/http/auth.js';
import { REDACT_PATHS } from '../../../plugin/http/server.js';
import { makeCert } from '../../media/relay/helpers.js';
import { tempDir, testConfig, TEST_OPERATOR_TOKEN, type Teardown } from './fixtures/helpers.js';

const RL = 'application/resource-lists+xml';
const XCAP_ERR = 'application/xcap-error+xml';
const BOB_BL = '/xcap-root/resource-lists/users/sip:bob@example.net/index';
const ALICE_BL = '/xcap-root/resource-lists/users/sip:alice@example.net/index';
const list = (uri: string): string =>
  `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts"><entry uri="${uri}"/></list></resource-lists>`;

interface Res {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

interface Req {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Source address of the request (a loopback alias). */
  readonly from?: string;
}

function request(port: number, r: Req, tls?: { cert: Buffer; key: Buffer; ca: Buffer }): Promise<Res> {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, method: r.method ?? 'GET', path: r.path, headers: r.headers ?? {}, localAddress: r.from ?? '127.0.0.1' };
    const onRes = (res: http.IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    };
    const req = tls ? https.request({ ...opts, cert: tls.cert, key: tls.key, ca: tls.ca, agent: false }, onRes) : http.request(opts, onRes);
    req.on('error', reject);
    req.end(r.body);
  });
}

/** A started service whose log lines are kept in `lines` (redaction as plugin/main.ts sets it). */
async function started(t: Teardown, overrides: Record<string, unknown> = {}): Promise<{ app: App; lines: string[] }> {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _e, cb) => { lines.push(chunk.toString()); cb(); } });
  const log = pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  const app = await createApp(testConfig(tempDir(t), { logLevel: 'debug', xdm: { trustedProxies: ['127.0.0.2'] }, ...overrides }), log);
  t.teardown(() => app.stop());
  await app.start();
  return { app, lines };
}

const OP = { authorization: `Bearer ${TEST_OPERATOR_TOKEN}` };
const WRONG = 'wrong-token-but-well-formed-0000';

t.test('operator routes: no credential 401, a wrong token 401, the right one 200; health and ready open', async (t) => {
  const { app, lines } = await started(t, { host: '0.0.0.0' });
  const port = app.httpPort;
  const none = await request(port, { path: '/users/bob/devices' });
  t.equal(none.status, 401, 'no credential');
  t.equal(none.headers['www-authenticate'], 'Bearer realm="pf"');
  const wrong = await request(port, { path: '/users/bob/devices', headers: { authorization: `Bearer ${WRONG}` } });
  t.equal(wrong.status, 401, 'a wrong token');
  t.equal(wrong.headers['www-authenticate'], 'Bearer realm="pf", error="invalid_token"');
  const basic = await request(port, { path: '/users/bob/devices', headers: { authorization: 'Basic Ym9iOmJvYg==' } });
  t.equal(basic.status, 401, 'another scheme');
  const right = await request(port, { path: '/users/bob/devices', headers: OP });
  t.equal(right.status, 200, 'the right token');
  t.match(JSON.parse(right.body), { aor: 'sip:bob@example.net', devices: [] });
  // an asserted identity opens no operator route, even from the trusted proxy
  const asserted = await request(port, { path: '/users/bob/devices', from: '127.0.0.2', headers: { 'x-3gpp-asserted-identity': '<sip:bob@example.net>' } });
  t.equal(asserted.status, 401);
  for (const path of ['/health', '/ready', '/metrics']) t.equal((await request(port, { path })).status, 200, `${path} open`);
  const log = lines.join('');
  t.notMatch(log, TEST_OPERATOR_TOKEN, 'the token is not logged');
  t.notMatch(log, WRONG, 'nor a wrong one');
  t.match(log, /http request refused/, 'refusals are logged');
});

t.test('metrics for the operator only, when configured', async (t) => {
  const { app } = await started(t, { http: { operatorToken: TEST_OPERATOR_TOKEN, metrics: 'operator' } });
  t.equal((await request(app.httpPort, { path: '/metrics' })).status, 401);
  t.equal((await request(app.httpPort, { path: '/metrics', headers: OP })).status, 200);
  t.equal((await request(app.httpPort, { path: '/health' })).status, 200);
});

t.test('no operator token configured: nobody is the operator', async (t) => {
  const { app } = await started(t, { http: {} });
  t.equal((await request(app.httpPort, { path: '/users/bob/devices', headers: { authorization: 'Bearer ' } })).status, 401);
  t.equal((await request(app.httpPort, { path: '/users/bob/devices', headers: OP })).status, 401);
});

t.test('XCAP: asserted identities from the trusted proxy only, each user their own documents', async (t) => {
  const { app, lines } = await started(t, { host: '0.0.0.0' });
  const port = app.httpPort;
  const put = (path: string, body: string, headers: Record<string, string>, from?: string): Promise<Res> =>
    request(port, { method: 'PUT', path, body, headers: { 'content-type': RL, ...headers }, ...(from ? { from } : {}) });
  const bobGet = (): Promise<Res> => request(port, { path: BOB_BL, headers: OP });

  t.equal((await put(BOB_BL, list('sip:spam@example.net'), OP)).status, 201, 'the operator writes any user');
  const before = (await bobGet()).body;

  const noCred = await put(BOB_BL, list('sip:x@example.net'), {});
  t.equal(noCred.status, 401, 'no credential');
  t.equal(noCred.headers['content-type'], XCAP_ERR);
  t.match(noCred.body, /<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error"><constraint-failure phrase="credentials required"\/>/);
  t.match(noCred.headers['www-authenticate'], /^Bearer/);

  // spoofed: the right header, but not from the proxy (127.0.0.1 is not trusted here)
  const spoofed = await put(BOB_BL, list('sip:alice@example.net'), { 'x-3gpp-asserted-identity': '<sip:bob@example.net>' });
  t.equal(spoofed.status, 403, 'a spoofed asserted identity from an untrusted address');
  t.equal(spoofed.headers['content-type'], XCAP_ERR);
  t.match(spoofed.body, /not a trusted proxy/);

  // alice through the proxy writes bob's blacklist: refused
  const other = await put(BOB_BL, list('sip:bob-friend@example.net'), { 'x-3gpp-asserted-identity': '"Alice" <sip:alice@example.net>' }, '127.0.0.2');
  t.equal(other.status, 403, "a user writing another user's blacklist");
  t.equal(other.headers['content-type'], XCAP_ERR);
  t.match(other.body, /another user/);
  const del = await request(port, { method: 'DELETE', path: BOB_BL, from: '127.0.0.2', headers: { 'x-xcap-asserted-identity': 'sip:alice@example.net' } });
  t.equal(del.status, 403, "nor delete it");
  const read = await request(port, { path: BOB_BL, from: '127.0.0.2', headers: { 'x-3gpp-asserted-identity': '<sip:alice@example.net>' } });
  t.equal(read.status, 403, "nor read it");
  t.equal((await bobGet()).body, before, "bob's blacklist is unchanged");

  // each user their own, through the proxy; either header name
  t.equal((await put(ALICE_BL, list('sip:spam@example.net'), { 'x-3gpp-asserted-identity': '<sip:alice@example.net>' }, '127.0.0.2')).status, 201);
  const own = await request(port, { path: BOB_BL, from: '127.0.0.2', headers: { 'x-xcap-asserted-identity': '"sip:bob@example.net"' } });
  t.equal(own.status, 200, 'bob reads his own');
  t.equal(own.body, before);
  const caps = await request(port, { path: '/xcap-root/xcap-caps/global/index', from: '127.0.0.2', headers: { 'x-3gpp-asserted-identity': '<sip:bob@example.net>' } });
  t.equal(caps.status, 200, 'any user reads the capabilities');
  t.equal((await request(port, { path: '/xcap-root/xcap-caps/global/index' })).status, 401, 'nobody else');
  t.equal((await put(BOB_BL, list('x'), { authorization: `Bearer ${WRONG}` })).status, 401, 'a wrong token on XCAP');
  t.notMatch(lines.join(''), TEST_OPERATOR_TOKEN);
});

t.test('HTTPS: an Aggregation Proxy trusted by its client certificate', async (t) => {
  const dir = tempDir(t);
  const server = makeCert(dir, 'pf');
  const proxy = makeCert(dir, 'proxy');
  const stranger = makeCert(dir, 'stranger');
  const { app } = await started(t, {
    http: { operatorToken: TEST_OPERATOR_TOKEN, tls: { cert: server.certFile, key: server.keyFile } },
    xdm: { trustedProxyCertificates: [new X509Certificate(proxy.cert).fingerprint256.toLowerCase()] },
  });
  const as = (who: { cert: Buffer; key: Buffer }, identity: string): Promise<Res> =>
    request(app.httpPort, { path: BOB_BL, headers: { 'x-3gpp-asserted-identity': identity } }, { ...who, ca: server.cert });
  t.equal((await request(app.httpPort, { method: 'PUT', path: BOB_BL, body: list('sip:a@example.net'), headers: { ...OP, 'content-type': RL } }, { ...stranger, ca: server.cert })).status, 201, 'the operator over HTTPS');
  t.equal((await as(proxy, '<sip:bob@example.net>')).status, 200, 'the trusted certificate asserts bob');
  t.equal((await as(stranger, '<sip:bob@example.net>')).status, 403, 'another certificate does not');
});

t.test('access(): the decision', async (t) => {
  const key = (id: string): string | null => (/^sip:[a-z]+@example\.net$/.test(id) ? id : null);
  type Target = { readonly xui: string | null; readonly anyUser: boolean };
  const bob: Target = { xui: 'sip:bob@example.net', anyUser: false };
  const c = (o: Partial<Credentials>): Credentials => ({ authorization: { kind: 'none' }, asserted: null, trustedPeer: false, ...o });
  const bearer = (token: string): Credentials['authorization'] => ({ kind: 'bearer', token });
  const cases: ReadonlyArray<readonly [string, Credentials, Target | null, string]> = [
    ['nothing', c({}), bob, '401'],
    ['nothing, operator route', c({}), null, '401'],
    ['operator token', c({ authorization: bearer(TEST_OPERATOR_TOKEN) }), null, 'operator'],
    ['operator token on XCAP', c({ authorization: bearer(TEST_OPERATOR_TOKEN) }), bob, 'operator'],
    ['wrong token', c({ authorization: bearer('x'.repeat(30)) }), bob, '401'],
    ['wrong token wins over an identity', c({ authorization: bearer('x'.repeat(30)), asserted: 'sip:bob@example.net', trustedPeer: true }), bob, '401'],
    ['other scheme', c({ authorization: { kind: 'other' } }), null, '401'],
    ['own documents via the proxy', c({ asserted: 'sip:bob@example.net', trustedPeer: true }), bob, 'user'],
    ['own documents, untrusted peer', c({ asserted: 'sip:bob@example.net' }), bob, '403'],
    ["another's documents", c({ asserted: 'sip:alice@example.net', trustedPeer: true }), bob, '403'],
    ['not a user', c({ asserted: 'tel:+1', trustedPeer: true }), bob, '403'],
    ['invalid XUI', c({ asserted: 'sip:bob@example.net', trustedPeer: true }), { xui: null, anyUser: false }, '403'],
    ['capabilities', c({ asserted: 'sip:bob@example.net', trustedPeer: true }), { xui: null, anyUser: true }, 'user'],
    ['identity on an operator route', c({ asserted: 'sip:bob@example.net', trustedPeer: true }), null, '401'],
  ];
  for (const [name, cred, target, want] of cases) {
    const a = access(cred, TEST_OPERATOR_TOKEN, target, key);
    t.equal(a.ok ? a.who : String(a.status), want, name);
  }
  t.notOk(tokenMatches('', ''), 'an empty configured token matches nothing');
  t.ok(tokenMatches(TEST_OPERATOR_TOKEN, TEST_OPERATOR_TOKEN));
  t.same(readAuthorization('Bearer abc.DEF-1'), { kind: 'bearer', token: 'abc.DEF-1' });
  t.same(readAuthorization('bearer  abc'), { kind: 'bearer', token: 'abc' });
  t.same(readAuthorization('Bearer'), { kind: 'other' });
  t.same(readAuthorization(undefined), { kind: 'none' });
  for (const [h, want] of [
    ['<sip:bob@example.net>', 'sip:bob@example.net'],
    ['"Bob" <sip:bob@example.net>, <tel:+15550001>', 'sip:bob@example.net'],
    ['"sip:bob@example.net"', 'sip:bob@example.net'],
    ['sip:bob@example.net', 'sip:bob@example.net'],
    ['', null],
  ] as const) t.equal(firstIdentity(h), want, h);
});
