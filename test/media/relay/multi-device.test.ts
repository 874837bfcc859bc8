// CR 8.3.2.1.1 multi-device policies (media/relay/multi-device.ts), as case tables.
import t from 'tap';
import { parseCpimHead } from '../../../media/cpim/head.js';
import {
  activityOf, admitDevice, awaitingFirstActive, firstActiveAfter, type Activity, type Payload,
} from '../../../media/relay/multi-device.js';
import type { MultiDevicePolicy } from '../../../media/relay/types.js';

t.test('CR 8.3.2.1.1 A: only the first device that answers is admitted', async t => {
  const cases: Array<{ policy: MultiDevicePolicy; devices: number; admit: boolean }> = [
    { policy: 'A', devices: 0, admit: true },
    { policy: 'A', devices: 1, admit: false },
    { policy: 'A', devices: 3, admit: false },
    { policy: 'B', devices: 0, admit: true },
    { policy: 'B', devices: 5, admit: true },
    { policy: 'C', devices: 0, admit: true },
    { policy: 'C', devices: 5, admit: true },
  ];
  for (const c of cases) {
    const r = admitDevice(c.policy, c.devices);
    t.equal(r.admit, c.admit, `${c.policy} with ${c.devices} device(s)`);
    if (!r.admit) t.match(r.reason, /first device/);
  }
});

/** A device's payload as the relay sees it: MSRP Content-Type, the CPIM head when it parsed, size. */
function payload(msrpType: string | undefined, body: string): Payload {
  const buf = Buffer.from(body, 'utf8');
  const r = msrpType?.toLowerCase().startsWith('message/cpim') ? parseCpimHead(buf) : undefined;
  return { msrpType, head: r?.state === 'complete' ? r.head : undefined, bytes: buf.length };
}

const CPIM_HEAD = 'From: <sip:bob@example.net>\r\nTo: <sip:alice@example.net>\r\n\r\n';
const cpim = (innerType: string, body: string): string => `${CPIM_HEAD}Content-Type: ${innerType}\r\n\r\n${body}`;

t.test('CR 8.3.2.1.1 B / 8.3.2.1.4 4.A.i: what counts as activity', async t => {
  const cases: Array<{ name: string; p: Payload; activity: Activity | undefined }> = [
    { name: 'CPIM chat message', p: payload('message/cpim', cpim('text/plain;charset=UTF-8', 'hi')), activity: 'chat' },
    { name: 'CPIM chat message, MSRP type in capitals with a parameter', p: payload('Message/CPIM; x=1', cpim('text/plain', 'hi')), activity: 'chat' },
    { name: 'CPIM file or other content', p: payload('message/cpim', cpim('application/octet-stream', 'x')), activity: 'chat' },
    { name: 'CPIM isComposing', p: payload('message/cpim', cpim('application/im-iscomposing+xml', '<isComposing/>')), activity: 'isComposing' },
    { name: 'bare isComposing', p: payload('application/im-iscomposing+xml', '<isComposing/>'), activity: 'isComposing' },
    { name: 'bare isComposing with a parameter', p: payload('Application/IM-isComposing+xml;charset=utf-8', '<x/>'), activity: 'isComposing' },
    { name: 'CPIM IMDN', p: payload('message/cpim', cpim('message/imdn+xml', '<imdn/>')), activity: undefined },
    { name: 'empty SEND (binding, keepalive)', p: payload(undefined, ''), activity: undefined },
    { name: 'empty body with a CPIM type', p: payload('message/cpim', ''), activity: undefined },
    { name: 'empty body with the isComposing type', p: payload('application/im-iscomposing+xml', ''), activity: undefined },
    { name: 'CPIM keepalive: blank header block, no content', p: payload('message/cpim', '\r\n\r\n'), activity: undefined },
    { name: 'CPIM envelope without an encapsulated Content-Type', p: payload('message/cpim', `${CPIM_HEAD}\r\n`), activity: undefined },
    { name: 'message/cpim whose head cannot be read', p: payload('message/cpim', 'ping'), activity: undefined },
    { name: 'bare text/plain (not CPIM)', p: payload('text/plain', 'hello'), activity: undefined },
    { name: 'bare CRLF keepalive (not CPIM)', p: payload('text/plain', '\r\n'), activity: undefined },
    { name: 'octets (not CPIM)', p: payload('application/octet-stream', '\0'), activity: undefined },
    { name: 'bare IMDN (not CPIM)', p: payload('message/imdn+xml', '<imdn/>'), activity: undefined },
    { name: 'body without a Content-Type', p: payload(undefined, 'ping'), activity: undefined },
  ];
  for (const c of cases) t.equal(activityOf(c.p), c.activity, c.name);
});

t.test('CR 8.3.2.1.1 B (and A): the first active device, reported once', async t => {
  const chat = payload('message/cpim', cpim('text/plain', 'hi'));
  const composing = payload('message/cpim', cpim('application/im-iscomposing+xml', '<isComposing/>'));
  const imdn = payload('message/cpim', cpim('message/imdn+xml', '<imdn/>'));
  const cases: Array<{
    name: string; policy: MultiDevicePolicy; known?: string; p: Payload;
    expect: { leg: string; kind: string } | undefined;
  }> = [
    { name: 'B, first chat', policy: 'B', p: chat, expect: { leg: 'd2', kind: 'chat' } },
    { name: 'B, first isComposing', policy: 'B', p: composing, expect: { leg: 'd2', kind: 'isComposing' } },
    { name: 'B, IMDN first', policy: 'B', p: imdn, expect: undefined },
    { name: 'B, non-CPIM first', policy: 'B', p: payload('text/plain', 'hi'), expect: undefined },
    { name: 'B, CPIM keepalive first', policy: 'B', p: payload('message/cpim', '\r\n\r\n'), expect: undefined },
    { name: 'B, already known', policy: 'B', known: 'd1', p: chat, expect: undefined },
    { name: 'A, for the record', policy: 'A', p: chat, expect: { leg: 'd2', kind: 'chat' } },
    { name: 'A, already known', policy: 'A', known: 'd2', p: composing, expect: undefined },
    { name: 'C, never', policy: 'C', p: chat, expect: undefined },
  ];
  for (const c of cases) t.same(firstActiveAfter(c.policy, c.known, 'd2', c.p), c.expect, c.name);
});

t.test('awaiting the first active device', async t => {
  const cases: Array<[MultiDevicePolicy, string | undefined, boolean]> = [
    ['A', undefined, true], ['A', 'd1', false], ['B', undefined, true], ['B', 'd1', false], ['C', undefined, false], ['C', 'd1', false],
  ];
  for (const [policy, known, expect] of cases) t.equal(awaitingFirstActive(policy, known), expect, `${policy}, first active ${known ?? 'unknown'}`);
});
