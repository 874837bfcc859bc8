/**
 * On real Kamailio, the B2BUA's RFC 4028 session timers per leg and the CR 8.3.2.4
 * expiry procedure, and requests inside a session (docs/b2bua.md "Session timers",
 * "Mid-session requests"). The caller and the devices are plain UDP sockets driven by
 * the test, so each refresh (UPDATE or re-INVITE, either way) is sent or withheld here.
 *
 * Time: the wire carries real RFC 4028 values (Session-Expires 90, the RFC floor), and
 * b2bua.sessionTimerUnitMs = 50 makes one of those seconds last 50 ms in the B2BUA's
 * timers: a 90 s interval is refreshed by us after 2.25 s and expires after 3 s. T1 is
 * 100 ms. After each case the B2BUA's calls and the relay's sessions are back to zero.
 */
import t, { type Test } from 'tap';
import { Lab, runDir } from '../../lab/lab.js';
import { until } from '../../lab/proc.js';
import { b2buaCounts, waitSettled, type B2buaCounts } from '../../lab/b2bua-watch.js';
import { token } from '../../lab/sip.js';
import { sipMessage } from '../../lab/sip-fixtures.js';
import { Caller, RawDevice, bodyOf, callerSdp, got, header, headers, type RawUa, type RawUaLab } from '../../lab/raw-ua.js';
import { RelayControlClient } from '../../media/relay/control-client.js';
import { LmdbMessageStore } from '../../media/history/store.js';
import { GROUP_STATE_TYPE } from '../../media/history/mss.js';
import { replacingGroupInvite } from '../../lab/calls.js';
import { join } from 'node:path';

const UNIT_MS = 50;
/** 90 RFC seconds: our expiry of a side the other end refreshes comes after 60 of them. */
const EXPIRY_MS = 60 * UNIT_MS;

const dir = runDir('it-b2bua-timers');
const lab = await Lab.start({ dir, mode: 'b2bua', b2bua: { multiDevice: 'C', t1Ms: 100, sessionTimerUnitMs: UNIT_MS } });
const relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
const opened: RawUa[] = [];
/** The caller and the devices: plain UDP sockets (lab/raw-ua.ts), closed at the end. */
const uas: RawUaLab = { sipPort: lab.sipPort, dir, opened };
t.teardown(async () => {
  for (const u of opened) u.close();
  await relay.close();
  await lab.stop();
});

const live = (): Promise<B2buaCounts> => b2buaCounts(lab.service, relay);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function settled(t: Test, timeoutMs = 15_000): Promise<void> {
  const r = await waitSettled(live, timeoutMs);
  t.ok(r.ok, `no call or relay session left (${r.last})`);
}

// ---------------------------------------------------------------- cases

t.test('a session whose device refreshes by UPDATE and re-INVITE, and whose caller does too, stays up', async (t) => {
  const dev = await RawDevice.start(uas, 'tina');
  const c = await Caller.open(uas);
  const ok = await c.establish('tina', { headers: { 'Session-Expires': '90' } });
  t.match(ok.header('session-expires') ?? '', /^90;refresher=uac$/, 'the caller refreshes (it asked for nothing else)');
  t.match(ok.header('require') ?? '', /timer/, 'Require: timer (RFC 4028 §9)');
  const inv = dev.requests('INVITE')[0]!;
  t.match(header(inv, 'Session-Expires') ?? '', /;refresher=uas$/, 'the device is offered refresher=uas (CR)');
  t.match(header(inv, 'Allow') ?? '', /UPDATE/, 'our Allow lists UPDATE');
  // five expiry periods, refreshed either way
  const end = Date.now() + 3 * EXPIRY_MS;
  let n = 0;
  while (Date.now() < end) {
    const a = await dev.refresh(n % 2 === 0 ? 'UPDATE' : 'INVITE');
    t.equal(a.status, 200, `device refresh ${n + 1} (${n % 2 === 0 ? 'UPDATE' : 're-INVITE'}): 200`);
    if (n === 0) t.match(a.header('session-expires') ?? '', /^90;refresher=uac$/, 'the device stays the refresher');
    if (n === 1) t.match(bodyOf(a.raw), /m=message/, 'a re-INVITE gets the SDP already given');
    const b = await c.refresh(n % 2 === 0 ? 'UPDATE' : 'INVITE');
    t.equal(b.status, 200, `caller refresh ${n + 1}: 200`);
    n++;
    await sleep(EXPIRY_MS / 3);
  }
  t.equal(dev.requests('BYE').length, 0, 'no BYE to the device');
  t.equal(c.requests('BYE').length, 0, 'no BYE to the caller');
  t.equal((await live()).calls, 1, 'the call is up');
  await c.hangUp();
  await got(dev, 'BYE', 0);
  await settled(t);
});

t.test('CR 8.3.2.4: one of two devices stops refreshing: BYE to it, the session goes on; the last one: BYE to the caller too', async (t) => {
  const d1 = await RawDevice.start(uas, 'uma');
  const d2 = await RawDevice.start(uas, 'uma');
  const c = await Caller.open(uas);
  await c.establish('uma');
  await got(d1, 'ACK', 0);
  await got(d2, 'ACK', 0);
  d1.startRefreshing(EXPIRY_MS / 3);
  const t0 = Date.now();
  const bye2 = await got(d2, 'BYE', 0, 4 * EXPIRY_MS);
  t.ok(Date.now() - t0 >= EXPIRY_MS - 500, `the silent device's BYE came at its expiry (${Date.now() - t0} ms)`);
  t.match(header(bye2, 'Reason') ?? '', /Session timer expired/, 'with a Reason');
  await sleep(EXPIRY_MS);
  t.equal(d1.requests('BYE').length, 0, 'the refreshing device stays');
  t.equal(c.requests('BYE').length, 0, 'no BYE to the caller yet');
  const l = await live();
  t.equal(l.calls, 1, 'the call is up');
  t.equal(l.sessions, 1, 'the relay session is up');
  d1.stopRefreshing();
  await got(d1, 'BYE', 0, 4 * EXPIRY_MS);
  await got(c, 'BYE', 0, 5000);
  t.pass('the last device expired: BYE to it and to the caller');
  await settled(t);
});

t.test('CR 8.3.2.4: the last device of a group session stops refreshing: BYE both ways, and its Group State Object is in the session folder', async (t) => {
  const conversationId = `conv-${token()}`;
  const contributionId = `contrib-${token()}`;
  const d = await RawDevice.start(uas, 'gita');
  const c = await Caller.open(uas);
  // the Controlling Function's invitation on behalf of alice (group ICSI, Referred-By)
  const group = replacingGroupInvite({ dir, sipPort: lab.sipPort, to: 'gita', contributionId: 'unused' });
  const { 'Session-Replaces': _replaces, ...headers } = group.headers ?? {};
  await c.establish('gita', { headers: { ...headers, 'Conversation-ID': conversationId, 'Contribution-ID': contributionId } });
  await got(d, 'ACK', 0);
  await got(d, 'BYE', 0, 4 * EXPIRY_MS);
  await got(c, 'BYE', 0, 5000);
  t.pass('the group session\'s only device expired: BYE to it and to the Controlling Function');
  // the relay's own history store (lab/lab.ts: history.mdb in the lab's folder), read beside it
  const store = new LmdbMessageStore(join(dir, 'history.mdb'));
  t.teardown(() => store.close());
  const objs = await until(async () => {
    const l = await store.list({ conversationId, contributionId });
    return l.some((o) => o.contentType === GROUP_STATE_TYPE) ? l : undefined;
  }, 10_000, 'the Group State Object in the session folder');
  const gso = objs.filter((o) => o.contentType === GROUP_STATE_TYPE);
  t.equal(gso.length, 1, 'one Group State Object');
  t.match(gso[0]!.data.toString('utf8'), new RegExp(`<groupstate [^>]*contributionid="${contributionId}"`), 'for this session');
  await settled(t);
});

t.test('we refresh towards the caller when it asks refresher=uas: UPDATE when it allows UPDATE, else re-INVITE', async (t) => {
  const dev = await RawDevice.start(uas, 'vera');
  const cu = await Caller.open(uas);
  const ok = await cu.establish('vera', { headers: { 'Session-Expires': '90;refresher=uas' } }, ['Allow: INVITE, ACK, CANCEL, BYE, UPDATE']);
  t.match(ok.header('session-expires') ?? '', /^90;refresher=uas$/, 'we refresh');
  t.notOk(/timer/.test(ok.header('require') ?? ''), 'no Require: timer when we refresh');
  dev.startRefreshing(EXPIRY_MS / 3);
  const up = await got(cu, 'UPDATE', 0, 3 * EXPIRY_MS);
  t.match(header(up, 'Session-Expires') ?? '', /^90;refresher=uac$/, 'our UPDATE keeps us the refresher');
  await got(cu, 'UPDATE', 1, 3 * EXPIRY_MS);
  t.equal(cu.requests('BYE').length, 0, 'refreshed twice, still up');
  await cu.hangUp();
  dev.stopRefreshing();

  const dev2 = await RawDevice.start(uas, 'vera');
  const ci = await Caller.open(uas);
  await ci.establish('vera', { headers: { 'Session-Expires': '90;refresher=uas' } });
  dev.startRefreshing(EXPIRY_MS / 3);
  dev2.startRefreshing(EXPIRY_MS / 3);
  const ri = await got(ci, 'INVITE', 0, 3 * EXPIRY_MS);
  t.match(bodyOf(ri), /m=message/, 'no UPDATE in its Allow: a re-INVITE with the same SDP');
  await got(ci, 'ACK', 0, 5000);
  t.pass('our 2xx to the re-INVITE was ACKed by the B2BUA');
  t.equal(ci.requests('BYE').length, 0, 'still up');
  await ci.hangUp();
  dev.stopRefreshing();
  dev2.stopRefreshing();
  await settled(t);
});

t.test('a device that wants us to refresh (refresher=uac in its 200) gets our UPDATE; unanswered, the leg ends', async (t) => {
  const dev = await RawDevice.start(uas, 'walt');
  dev.se = '90;refresher=uac';
  const c = await Caller.open(uas);
  await c.establish('walt');
  const up = await got(dev, 'UPDATE', 0, 3 * EXPIRY_MS);
  t.match(header(up, 'Session-Expires') ?? '', /^90;refresher=uac$/, 'our UPDATE to the device');
  await got(dev, 'UPDATE', 1, 3 * EXPIRY_MS);
  t.equal(dev.requests('BYE').length, 0, 'refreshed twice, still up');
  // the device goes silent: our next UPDATE gets no answer, the leg and then the caller end
  dev.autoAnswer = false;
  const u0 = dev.requests('UPDATE').length;
  await until(async () => (dev.requests('BYE').length > 0 ? true : undefined), 6 * EXPIRY_MS + 10_000, 'BYE to the silent device');
  t.ok(dev.requests('UPDATE').length > u0, 'the BYE followed an UPDATE it left unanswered');
  await got(c, 'BYE', 0, 5000);
  await settled(t, 20_000);
});

t.test('a device that wants us to refresh and does not allow UPDATE gets our re-INVITE, ACKed', async (t) => {
  const dev = await RawDevice.start(uas, 'xavi');
  dev.se = '90;refresher=uac';
  dev.allow = 'INVITE, ACK, CANCEL, BYE, OPTIONS';
  const c = await Caller.open(uas);
  await c.establish('xavi');
  await got(dev, 'ACK', 0);
  const ri = await got(dev, 'INVITE', 1, 3 * EXPIRY_MS);
  t.match(header(ri, 'Session-Expires') ?? '', /^90;refresher=uac$/, 'a re-INVITE refresh');
  t.match(bodyOf(ri), /m=message/, 'with the SDP we offered');
  await got(dev, 'ACK', 1, 5000);
  t.pass('its 2xx ACKed');
  t.equal(dev.requests('UPDATE').length, 0, 'no UPDATE');
  await c.hangUp();
  await got(dev, 'BYE', 0);
  await settled(t);
});

t.test('RFC 4028 422: a caller asking too short an interval gets 422 with Min-SE; a device that wants more gets the INVITE again', async (t) => {
  const xena = await RawDevice.start(uas, 'xena');
  const c = await Caller.open(uas);
  const inv = c.inviteText('xena', { headers: { 'Session-Expires': '60' } });
  await c.send(inv);
  const r = await c.final(1, 'INVITE');
  t.equal(r.status, 422, 'Session-Expires 60: 422');
  t.equal(r.header('min-se'), '90', 'Min-SE: 90');
  // the ACK of a non-2xx: the INVITE's branch (RFC 3261 §17.1.1.3)
  await c.send(sipMessage(`ACK sip:xena@example.net SIP/2.0`, [
    `Via: ${headers(inv, 'Via')[0]}`, `From: <sip:alice@example.net>;tag=${c.fromTag}`, `To: ${r.header('to') ?? ''}`,
    `Call-ID: ${c.callId}`, 'CSeq: 1 ACK', 'Max-Forwards: 70',
  ])).catch(() => undefined);
  t.equal(xena.requests('INVITE').length, 0, 'no device was invited');

  const dev = await RawDevice.start(uas, 'yuri');
  dev.firstStatus = { status: 422, lines: ['Min-SE: 120'] };
  const c2 = await Caller.open(uas);
  const ok = await c2.establish('yuri');
  t.equal(ok.status, 200, 'the call is answered after the retry');
  const invites = dev.requests('INVITE');
  t.equal(invites.length, 2, 'the device got the INVITE twice');
  t.equal(header(invites[1]!, 'Min-SE'), '120', 'the retry carries the Min-SE of the 422');
  t.equal(header(invites[1]!, 'Call-ID'), header(invites[0]!, 'Call-ID'), 'same Call-ID');
  t.match(header(invites[1]!, 'CSeq') ?? '', /^2 INVITE$/, 'the next CSeq');
  dev.startRefreshing(EXPIRY_MS / 3);
  await c2.hangUp();
  await got(dev, 'BYE', 0);
  dev.stopRefreshing();
  await settled(t);
});

t.test('bad input inside a session: absurd interval capped, stale CSeq 500, a moved MSRP path 488, unknown dialog 481, MESSAGE 405, OPTIONS and INFO 200', async (t) => {
  const dev = await RawDevice.start(uas, 'zack');
  const c = await Caller.open(uas);
  const ok = await c.establish('zack', { headers: { 'Session-Expires': '99999999999999' } });
  t.equal(ok.header('session-expires'), '1800;refresher=uac', 'an absurd Session-Expires is lowered to ours (1800)');
  dev.startRefreshing(EXPIRY_MS / 3);
  // a refresh with a stale CSeq (RFC 3261 §12.2.2)
  const first = await c.refresh('UPDATE');
  t.equal(first.status, 200, 'an UPDATE refresh: 200');
  const stale = c.inDialog('UPDATE', { seq: 1, lines: ['Supported: timer', 'Session-Expires: 90'] });
  await c.send(stale.text);
  t.equal((await c.final(1, 'UPDATE')).status, 500, 'a lower CSeq: 500');
  // a re-INVITE whose SDP moves the MSRP path
  const moved = await c.refresh('INVITE', { body: callerSdp(c.port, 'elsewhere') });
  t.equal(moved.status, 488, 'a moved a=path: 488');
  t.match(moved.header('warning') ?? '', /MSRP/, 'with a Warning that says why');
  await c.send(sipMessage(`ACK ${c.dialog!.target} SIP/2.0`, [
    `Via: ${headers(moved.raw, 'Via')[0]}`, ...c.dialog!.routes.map((r) => `Route: ${r}`), `From: ${c.dialog!.local}`,
    `To: ${c.dialog!.remote}`, `Call-ID: ${c.callId}`, `CSeq: ${c.cseq} ACK`, 'Max-Forwards: 70',
  ]));
  // a Session-Expires below Min-SE on a refresh: 422
  const short = await c.refresh('UPDATE', { lines: ['Supported: timer', 'Session-Expires: 30'] });
  t.equal(short.status, 422, 'a refresh with Session-Expires 30: 422');
  t.equal(short.header('min-se'), '90', '... with Min-SE: 90');
  // other methods on the leg they arrive on
  const msg = c.inDialog('MESSAGE', { body: 'hi', bodyType: 'text/plain' });
  await c.send(msg.text);
  const m = await c.final(msg.seq, 'MESSAGE');
  t.equal(m.status, 405, 'in-dialog MESSAGE: 405');
  t.match(m.header('allow') ?? '', /UPDATE/, '... with Allow');
  const opt = c.inDialog('OPTIONS');
  await c.send(opt.text);
  const o = await c.final(opt.seq, 'OPTIONS');
  t.equal(o.status, 200, 'in-dialog OPTIONS: 200');
  t.match(o.header('supported') ?? '', /timer/, '... with Supported: timer');
  const info = c.inDialog('INFO');
  await c.send(info.text);
  t.equal((await c.final(info.seq, 'INFO')).status, 200, 'a legacy INFO: 200');
  const pkg = c.inDialog('INFO', { lines: ['Info-Package: dtmf'], body: 'Signal=1', bodyType: 'application/dtmf-relay' });
  await c.send(pkg.text);
  t.equal((await c.final(pkg.seq, 'INFO')).status, 469, 'an INFO with a package: 469');
  t.equal(dev.requests('MESSAGE').length + dev.requests('INFO').length + dev.requests('OPTIONS').length, 0, 'nothing reached the device');
  // an UPDATE of a dialog nobody has
  const saved = c.dialog!;
  c.dialog = { ...saved, remote: `<sip:zack@example.net>;tag=${token(4)}` };
  const ghost = await c.refresh('UPDATE');
  t.equal(ghost.status, 481, 'an UPDATE of an unknown dialog: 481');
  c.dialog = saved;
  t.equal((await live()).calls, 1, 'the call is still up');
  await c.hangUp();
  dev.stopRefreshing();
  await got(dev, 'BYE', 0);
  await settled(t);
});

t.test('a BYE crossing our refresh ends the session cleanly', async (t) => {
  const dev = await RawDevice.start(uas, 'yves');
  const c = await Caller.open(uas);
  await c.establish('yves', { headers: { 'Session-Expires': '90;refresher=uas' } }, ['Allow: INVITE, ACK, CANCEL, BYE, UPDATE']);
  dev.startRefreshing(EXPIRY_MS / 3);
  c.autoAnswer = false;
  const up = await got(c, 'UPDATE', 0, 3 * EXPIRY_MS);
  // our BYE first, then the late 481 to the UPDATE: the dialog is gone on our side
  await c.hangUp();
  await c.send(c.reply(up, 481));
  dev.stopRefreshing();
  await got(dev, 'BYE', 0);
  await settled(t);
  t.equal(c.requests('BYE').length, 0, 'no BYE to the caller (it left)');
});
