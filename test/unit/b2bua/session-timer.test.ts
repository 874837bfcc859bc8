/**
 * RFC 4028 session timers (plugin/b2bua/session-timer.ts), one table per function: each
 * row is the header fields of a message and what the function must give.
 */
import t from 'tap';
import { parseSipMessage, type SipMessage } from '../../../plugin/sip/message.js';
import {
  answerHeaders, expiryDelay, MAX_INTERVAL, negotiateUas, parseDelta, refreshDelay, retryAfter422, uacTimer, weRefresh,
  type TimerConfig, type UasVerdict,
} from '../../../plugin/b2bua/session-timer.js';

/** A request (or, with `status`, a response) carrying these header lines. */
function msg(lines: readonly string[], status?: number): SipMessage {
  const start = status === undefined ? 'UPDATE sip:pf@127.0.0.1:5070 SIP/2.0' : `SIP/2.0 ${status} X`;
  const head = [start, 'Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1', 'From: <sip:a@x>;tag=1', 'To: <sip:b@x>;tag=2', 'Call-ID: c', `CSeq: 2 UPDATE`, ...lines];
  return parseSipMessage(`${head.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`);
}

const CFG: TimerConfig = { sessionExpires: 1800, minSE: 90 };
const STRICT: TimerConfig = { sessionExpires: 1800, minSE: 300 };

t.test('parseDelta', async (t) => {
  const rows: [string | undefined, ReturnType<typeof parseDelta>][] = [
    [undefined, null],
    ['1800', { seconds: 1800, refresher: null }],
    [' 90 ;refresher=uas', { seconds: 90, refresher: 'uas' }],
    ['600;REFRESHER=UAC;x=y', { seconds: 600, refresher: 'uac' }],
    ['99999999999999999999', { seconds: Number.MAX_SAFE_INTEGER, refresher: null }],
    ['abc', 'bad'],
    ['-5', 'bad'],
    ['', 'bad'],
    ['90;refresher=both', 'bad'],
  ];
  for (const [v, want] of rows) t.same(parseDelta(v), want, JSON.stringify(v));
});

t.test('negotiateUas (RFC 4028 §9)', async (t) => {
  const rows: [string, readonly string[], TimerConfig, UasVerdict][] = [
    ['supported, asks 600: kept, the sender refreshes', ['Supported: timer', 'Session-Expires: 600'], CFG, { kind: 'ok', timer: { interval: 600, refresher: 'uac' }, require: true }],
    ['asks refresher=uas: we refresh', ['Supported: timer', 'Session-Expires: 600;refresher=uas'], CFG, { kind: 'ok', timer: { interval: 600, refresher: 'uas' }, require: false }],
    ['absurdly large: capped to ours', ['Supported: timer', 'Session-Expires: 99999999999999'], CFG, { kind: 'ok', timer: { interval: 1800, refresher: 'uac' }, require: true }],
    ['compact form x', ['Supported: timer', 'x: 900'], CFG, { kind: 'ok', timer: { interval: 900, refresher: 'uac' }, require: true }],
    ['below our Min-SE: 422', ['Supported: timer', 'Session-Expires: 120'], STRICT, { kind: 'reject', status: 422, minSE: 300 }],
    ['below the RFC floor: 422 with 90', ['Supported: timer', 'Session-Expires: 30'], CFG, { kind: 'reject', status: 422, minSE: 90 }],
    ['below its own Min-SE: 422 with the larger', ['Supported: timer', 'Session-Expires: 200', 'Min-SE: 400'], STRICT, { kind: 'reject', status: 422, minSE: 400 }],
    ['Min-SE above our interval: the interval is raised to it', ['Supported: timer', 'Session-Expires: 7200', 'Min-SE: 3600'], CFG, { kind: 'ok', timer: { interval: 3600, refresher: 'uac' }, require: true }],
    ['supported, no Session-Expires: ours, the sender refreshes', ['Supported: timer'], CFG, { kind: 'ok', timer: { interval: 1800, refresher: 'uac' }, require: true }],
    ['supported, no Session-Expires, Min-SE 2000', ['Supported: timer', 'Min-SE: 2000'], CFG, { kind: 'ok', timer: { interval: 2000, refresher: 'uac' }, require: true }],
    ['Require: timer counts as support', ['Require: timer', 'Session-Expires: 600'], CFG, { kind: 'ok', timer: { interval: 600, refresher: 'uac' }, require: true }],
    ['no support, no Session-Expires: no timer', [], CFG, { kind: 'ok', timer: null, require: false }],
    ['no support, a proxy asked 600: we refresh', ['Session-Expires: 600;refresher=uac'], CFG, { kind: 'ok', timer: { interval: 600, refresher: 'uas' }, require: false }],
    ['no support, too short: no 422 it could not read; we refresh', ['Session-Expires: 120'], STRICT, { kind: 'ok', timer: { interval: 120, refresher: 'uas' }, require: false }],
    ['malformed Session-Expires: 400', ['Supported: timer', 'Session-Expires: soon'], CFG, { kind: 'bad', status: 400, why: 'Bad Session-Expires' }],
    ['malformed Min-SE: 400', ['Supported: timer', 'Min-SE: x'], CFG, { kind: 'bad', status: 400, why: 'Bad Min-SE' }],
    ['Min-SE past one day: 400', ['Supported: timer', 'Min-SE: 9999999'], CFG, { kind: 'bad', status: 400, why: `Min-SE over ${MAX_INTERVAL}` }],
    ['our sessionExpires below our minSE: minSE wins', ['Supported: timer'], { sessionExpires: 90, minSE: 300 }, { kind: 'ok', timer: { interval: 300, refresher: 'uac' }, require: true }],
  ];
  for (const [name, lines, cfg, want] of rows) t.same(negotiateUas(msg(lines), cfg), want, name);
});

t.test('uacTimer (RFC 4028 §7.2)', async (t) => {
  const rows: [string, readonly string[], ReturnType<typeof uacTimer>][] = [
    ['no Session-Expires: no timer', [], null],
    ['refresher=uas (the device refreshes)', ['Session-Expires: 1800;refresher=uas'], { interval: 1800, refresher: 'uas' }],
    ['refresher=uac (we refresh)', ['Session-Expires: 600;refresher=uac'], { interval: 600, refresher: 'uac' }],
    ['no refresher: we refresh', ['Session-Expires: 600'], { interval: 600, refresher: 'uac' }],
    ['below 90: held at 90', ['Session-Expires: 5;refresher=uac'], { interval: 90, refresher: 'uac' }],
    ['absurd: held at one day', ['Session-Expires: 99999999999;refresher=uas'], { interval: MAX_INTERVAL, refresher: 'uas' }],
    ['malformed: no timer', ['Session-Expires: x'], null],
  ];
  for (const [name, lines, want] of rows) t.same(uacTimer(msg(lines, 200)), want, name);
});

t.test('weRefresh', async (t) => {
  t.equal(weRefresh({ interval: 90, refresher: 'uac' }, true), true, 'we sent it, uac');
  t.equal(weRefresh({ interval: 90, refresher: 'uas' }, true), false, 'we sent it, uas');
  t.equal(weRefresh({ interval: 90, refresher: 'uas' }, false), true, 'they sent it, uas');
  t.equal(weRefresh({ interval: 90, refresher: 'uac' }, false), false, 'they sent it, uac');
});

t.test('retryAfter422 (RFC 4028 §7.4)', async (t) => {
  const sent = { sessionExpires: 1800, minSE: 90 };
  const rows: [string, readonly string[], ReturnType<typeof retryAfter422>][] = [
    ['Min-SE 3600: both raised', ['Min-SE: 3600'], { minSE: 3600, sessionExpires: 3600 }],
    ['Min-SE 600: Session-Expires kept', ['Min-SE: 600'], { minSE: 600, sessionExpires: 1800 }],
    ['no Min-SE: no retry', [], null],
    ['not larger than ours: no retry', ['Min-SE: 90'], null],
    ['past one day: no retry', ['Min-SE: 100000'], null],
    ['malformed: no retry', ['Min-SE: soon'], null],
  ];
  for (const [name, lines, want] of rows) t.same(retryAfter422(msg(lines, 422), sent), want, name);
});

t.test('deadlines (RFC 4028 §10)', async (t) => {
  const rows: [number, number, number][] = [
    [90, 45, 60],
    [1800, 900, 1768],
    [96, 48, 64],
    [86_400, 43_200, 86_368],
  ];
  for (const [i, refresh, expiry] of rows) {
    t.equal(refreshDelay(i), refresh, `refresh of ${i}`);
    t.equal(expiryDelay(i), expiry, `expiry of ${i}`);
    t.ok(refreshDelay(i) < expiryDelay(i), `${i}: the refresh comes before the expiry`);
  }
});

t.test('answerHeaders', async (t) => {
  t.same(answerHeaders({ timer: { interval: 600, refresher: 'uac' }, require: true }), [['Supported', 'timer'], ['Require', 'timer'], ['Session-Expires', '600;refresher=uac']]);
  t.same(answerHeaders({ timer: { interval: 600, refresher: 'uas' }, require: false }), [['Supported', 'timer'], ['Session-Expires', '600;refresher=uas']]);
  t.same(answerHeaders({ timer: null, require: false }), [['Supported', 'timer']]);
});
