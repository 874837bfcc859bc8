/**
 * The wired service in-process: the real netstring TCP server with the real methods,
 * lmdb stores, and the HTTP endpoints through inject().
 */
import t from 'tap';
import { createApp, type App } from '../../../plugin/app.js';
import { quietLog, rpcCall as call, tempDir, testConfig, OPERATOR, type Teardown } from './fixtures/helpers.js';
import { inviteText, registerText } from '../../../lab/service-fixtures.js';

let clock = Date.UTC(2026, 0, 1);

async function started(t: Teardown, dir = tempDir(t), overrides: Record<string, unknown> = {}): Promise<App> {
  const app = await createApp(testConfig(dir, overrides), quietLog, { now: () => clock });
  t.teardown(() => app.stop());
  await app.start();
  return app;
}

t.test('readiness follows the RPC listener', async (t) => {
  const app = await createApp(testConfig(tempDir(t)), quietLog);
  t.teardown(() => app.stop());
  const before = await app.http.inject({ url: '/ready' });
  t.equal(before.statusCode, 503);
  t.same(before.json().reasons, ['rpc not listening']);
  t.equal((await app.http.inject({ url: '/health' })).statusCode, 200);
  await app.start();
  t.equal((await app.http.inject({ url: '/ready' })).statusCode, 200);
  const metrics = await app.http.inject({ url: '/metrics' });
  t.equal(metrics.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  t.match(metrics.body, /# TYPE pf_decision_duration_seconds histogram/);
  t.equal((await app.http.inject({ headers: OPERATOR, url: '/users/sip%3Aexample.net/devices' })).statusCode, 404, 'no user part');
  t.equal((await app.http.inject({ url: '/nope' })).statusCode, 404);
  await Promise.all([app.devices.close(), app.xcap.close(), app.rpc.close()]);
  const after = await app.http.inject({ url: '/ready' });
  t.equal(after.statusCode, 503);
  t.same(after.json().reasons, ['device store closed', 'xcap store closed', 'rpc not listening']);
});

t.test('pf.register -> devices listing -> pf.invite -> core.fork -> Session-Replaces with the session lines', async (t) => {
  const app = await started(t);
  const port = app.rpcPort;

  const r1 = await call(port, 'pf.register', { v: 1, msg: registerText({ port: 6001 }), src: 'tcp:127.0.0.1:40001' });
  t.same(r1?.result, { aor: 'sip:bob@example.net', devices: 1 });
  const r2 = await call(port, 'pf.register', {
    v: 1,
    msg: registerText({ port: 6002, instance: '00000000-0000-0000-0000-000000000002' }),
    src: 'tcp:127.0.0.1:40002',
  });
  t.same(r2?.result, { aor: 'sip:bob@example.net', devices: 2 });

  const list = await app.http.inject({ headers: OPERATOR, url: '/users/bob/devices' });
  t.equal(list.statusCode, 200);
  const body = list.json() as { aor: string; devices: Array<{ key: string; pubGruu: string; params: object }> };
  t.equal(body.aor, 'sip:bob@example.net');
  t.same(
    body.devices.map((d) => d.key).sort(),
    ['<urn:uuid:00000000-0000-0000-0000-000000000001>', '<urn:uuid:00000000-0000-0000-0000-000000000002>'],
  );
  t.equal(body.devices[0]?.pubGruu?.startsWith('sip:bob@example.net;gr=urn:uuid:'), true);
  t.match(body.devices[0]?.params, { '+g.oma.sip-im': true });
  // same user by full URI, percent-encoded
  t.equal((await app.http.inject({ headers: OPERATOR, url: '/users/sip%3Abob%40example.net/devices' })).json().devices.length, 2);

  const inv = await call(port, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' });
  t.equal(inv?.error, undefined);
  t.match(inv?.result, { action: 'proxy', stage: 'proxy' });

  const fork = await call(port, 'core.fork', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' });
  t.match(fork?.result, { code: 200, rtjson: { version: '1.0', routing: 'parallel' } });
  t.equal((fork?.result as { rtjson: { routes: unknown[] } }).rtjson.routes.length, 2);

  // nobody registered for carol
  const none = await call(port, 'pf.invite', { v: 1, msg: inviteText({ to: 'carol' }), src: 'udp:127.0.0.1:5070' });
  t.match(none?.result, { action: 'reject', code: 480, stage: 'no-suitable-device' });
  const noFork = await call(port, 'core.fork', { v: 1, msg: inviteText({ to: 'carol' }), src: 'udp:127.0.0.1:5070' });
  t.same(noFork?.result, { code: 480, reason: 'Temporarily Unavailable' });

  // sessions kept by Kamailio (pf.cfg's htable) come with the INVITE: one dialog per line,
  // "<Call-ID>;<device tag> TAB <R-URI> TAB <Contact>"
  const line = (dialogId: string, ruri: string, contact: string): string => `${dialogId}\t${ruri}\t${contact}`;
  const withSessions = async (sessions: string): Promise<unknown> =>
    (
      await call(port, 'pf.invite', {
        v: 1,
        msg: inviteText({ contributionId: 'group-2', extra: ['Session-Replaces: abcdef-1234'] }),
        src: 'udp:127.0.0.1:5070',
        sessions,
      })
    )?.result;
  const dev1 = '<urn:uuid:00000000-0000-0000-0000-000000000001>';
  const dev2 = '<urn:uuid:00000000-0000-0000-0000-000000000002>';
  const onlyDev1 = await withSessions(
    [
      line('c1;b1', 'sip:bob@example.net', `<sip:x@127.0.0.1:7000>;+sip.instance="${dev1}"`),
      'no tabs here',
      JSON.stringify({ v: 1, event: 'confirmed', contact: `<sip:y@127.0.0.1:7001>;+sip.instance="${dev2}"` }),
      line('c2;b2', 'sip:bob@example.net', ''),
      line('c3;b3', 'sip:someone-else@example.net', `<sip:y@127.0.0.1:7001>;+sip.instance="${dev2}"`),
      // a folded Contact (RFC 3261 §7.3.1) is one line; the same device once
      line('c4;b4', 'sip:bob@example.net', `<sip:x@127.0.0.1:7000>\r\n ;+sip.instance="${dev1}"`),
      '',
    ].join('\n'),
  );
  t.match(onlyDev1, { action: 'proxy', stage: 'session-replaces' }, 'the replaced session\'s device, from the lines');
  t.match((onlyDev1 as { hdrs: string }).hdrs, `Reject-Contact: *;+sip.instance="${dev2}"`, 'the other device is left out');
  t.notMatch((onlyDev1 as { hdrs: string }).hdrs, '000000000001>"', 'the connected device is not rejected');
  // no line for this user: normal selection (the tracker is not asked)
  t.match(await withSessions(line('c3;b3', 'sip:someone-else@example.net', `<sip:y@127.0.0.1:7001>;+sip.instance="${dev2}"`)), { action: 'proxy', stage: 'proxy' });
  t.match(await withSessions(''), { action: 'proxy', stage: 'proxy' });
  // the answering Contact without +sip.instance: the registered device by its Contact URI,
  // or by its public GRUU (RFC 5627 §5.1)
  const byUri = await withSessions(line('c5;b5', 'sip:bob@example.net', '<sip:bob@127.0.0.1:6001;transport=tcp>'));
  t.match(byUri, { action: 'proxy', stage: 'session-replaces' }, 'device found by its registered Contact URI');
  t.match((byUri as { hdrs: string }).hdrs, `Reject-Contact: *;+sip.instance="${dev2}"`);
  const byGruu = await withSessions(line('c6;b6', 'sip:bob@example.net', `<sip:bob@example.net;gr=urn:uuid:00000000-0000-0000-0000-000000000002>`));
  t.match(byGruu, { action: 'proxy', stage: 'session-replaces' }, 'device found by its public GRUU');
  t.match((byGruu as { hdrs: string }).hdrs, `Reject-Contact: *;+sip.instance="${dev1}"`);

  // de-register one device by expires=0, then every one by Contact: *
  const dereg = await call(port, 'pf.register', {
    v: 1,
    msg: registerText({ port: 6002, instance: '00000000-0000-0000-0000-000000000002', expires: 0, cseq: 2 }),
    src: 'tcp:127.0.0.1:40002',
  });
  t.same(dereg?.result, { aor: 'sip:bob@example.net', devices: 1 });
  const all = await call(port, 'pf.register', {
    v: 1,
    msg: registerText({ contact: '*', cseq: 3 }).replace('Content-Length', 'Expires: 0\r\nContent-Length'),
    src: 'tcp:127.0.0.1:40001',
  });
  t.same(all?.result, { aor: 'sip:bob@example.net', devices: 0 });

  const metrics = (await app.http.inject({ url: '/metrics' })).body;
  // 2 + the 5 with Kamailio's session lines
  t.match(metrics, /pf_rpc_requests_total\{method="pf.invite",outcome="ok"\} 7/);
  t.match(metrics, /pf_decisions_total\{action="proxy",stage="proxy"\} 3/);
  t.match(metrics, /pf_decisions_total\{action="reject",stage="no-suitable-device"\} 1/);
  t.match(metrics, /pf_decision_duration_seconds_count\{method="pf.invite"\} 7/);
  t.match(metrics, /pf_register_total\{kind="register"\} 2/);
  t.match(metrics, /pf_register_total\{kind="deregister"\} 2/);
  t.match(metrics, /\npf_rpc_connections \d+\n/);
});

t.test('XDM documents drive the decision and a new document takes effect at once', async (t) => {
  const app = await started(t);
  const port = app.rpcPort;
  await call(port, 'pf.register', { v: 1, msg: registerText({}), src: 'tcp:127.0.0.1:40001' });
  const url = '/xcap-root/resource-lists/users/sip:bob@example.net/index';
  const doc = (uri: string) =>
    `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts"><entry uri="${uri}"/></list></resource-lists>`;
  const put = (payload: string) =>
    app.http.inject({ method: 'PUT', url, headers: { ...OPERATOR, 'content-type': 'application/resource-lists+xml' }, payload });

  t.match((await call(port, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' }))?.result, { action: 'proxy' });
  t.equal((await put(doc('sip:alice@example.net'))).statusCode, 201);
  const blocked = await call(port, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' });
  t.match(blocked?.result, { action: 'reject', code: 403, stage: 'blacklist' });
  t.match((blocked?.result as { hdrs: string }).hdrs, /Warning: 399 pf\.example\.net "122 Function not allowed"/);
  t.equal((await put(doc('sip:someone-else@example.net'))).statusCode, 200);
  t.match((await call(port, 'pf.invite', { v: 1, msg: inviteText(), src: 'udp:127.0.0.1:5070' }))?.result, { action: 'proxy' });
});

t.test('bad params on the wire', async (t) => {
  const app = await started(t);
  const port = app.rpcPort;
  const cases: ReadonlyArray<readonly [string, string, object, string | RegExp]> = [
    ['wrong version', 'pf.invite', { v: 2, msg: inviteText(), src: 'udp:1.2.3.4:5060' }, /^\/v/],
    ['missing msg', 'pf.invite', { v: 1, src: 'udp:1.2.3.4:5060' }, /^\/msg/],
    ['msg not a string', 'pf.register', { v: 1, msg: 42, src: 'x' }, /^\/msg/],
    ['empty msg', 'pf.invite', { v: 1, msg: '', src: 'x' }, /^\/msg/],
    ['garbage msg', 'pf.invite', { v: 1, msg: 'hello world', src: 'x' }, 'SIP_BAD_START_LINE'],
    ['a response', 'pf.invite', { v: 1, msg: 'SIP/2.0 200 OK\r\n\r\n', src: 'x' }, 'msg is not a INVITE request'],
    ['REGISTER to pf.invite', 'pf.invite', { v: 1, msg: registerText({}), src: 'x' }, 'msg is not a INVITE request'],
    ['INVITE to pf.register', 'pf.register', { v: 1, msg: inviteText(), src: 'x' }, 'msg is not a REGISTER request'],
    [
      'REGISTER with a bad Contact',
      'pf.register',
      { v: 1, msg: registerText({ contact: '<sip:bob@h;expires=abc' }), src: 'x' },
      'REGISTER_BAD_CONTACT',
    ],
    [
      'Request-URI without user',
      'pf.invite',
      { v: 1, msg: inviteText().replace('INVITE sip:bob@example.net', 'INVITE sip:example.net'), src: 'x' },
      'Request-URI has no user',
    ],
    [
      'REGISTER with more contacts than allowed',
      'pf.register',
      {
        v: 1,
        msg: registerText({ contact: Array.from({ length: 65 }, (_, i) => `<sip:bob@10.0.0.1:${7000 + i}>`).join(', ') }),
        src: 'x',
      },
      'REGISTER_TOO_MANY_CONTACTS',
    ],
    ['sessions not a string', 'pf.invite', { v: 1, msg: inviteText(), src: 'x', sessions: 5 }, /^\/sessions/],
  ];
  for (const [name, m, params, data] of cases) {
    const res = await call(port, m, params);
    t.equal(res?.error?.code, -32602, name);
    t.match(res?.error?.data, data, `${name}: data`);
  }
  // the dialog-event method went with the service-side session tracker (docs/deployment.md)
  t.equal((await call(port, 'pf.dialog', { v: 1, event: 'confirmed', callId: 'c', fromTag: 'a', toTag: 'b' }))?.error?.code, -32601);
  t.equal((await call(port, 'pf.ping', {}))?.error, undefined);
  t.equal(app.devices.list('sip:bob@example.net', clock).length, 0, 'nothing stored from refused REGISTERs');
});

t.test('devices survive a restart of the service', async (t) => {
  const dir = tempDir(t);
  const first = await createApp(testConfig(dir), quietLog, { now: () => clock });
  await first.start();
  await call(first.rpcPort, 'pf.register', { v: 1, msg: registerText({}), src: 'tcp:127.0.0.1:40001' });
  await first.stop();
  const second = await started(t, dir);
  t.equal(second.devices.list('sip:bob@example.net', clock).length, 1);
  // and expire on time
  clock += 3600 * 1000;
  t.equal(second.devices.list('sip:bob@example.net', clock).length, 0);
  t.equal((await second.http.inject({ headers: OPERATOR, url: '/users/bob/devices' })).json().devices.length, 0);
});
