// CR 8.3.2.1.1 multi-device policies (media/relay/multi-device.ts), as case tables.
import t from 'tap';
import type { PayloadKind } from '../../../media/cpim/head.js';
import { activityOf, admitDevice, awaitingFirstActive, firstActiveAfter } from '../../../media/relay/multi-device.js';
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

t.test('CR 8.3.2.1.1 B / 8.3.2.1.4 4.A.i: what counts as activity', async t => {
  const cases: Array<{ name: string; kind: PayloadKind; cpim: boolean; activity: 'chat' | 'isComposing' | undefined }> = [
    { name: 'CPIM chat message', kind: 'chat', cpim: true, activity: 'chat' },
    { name: 'CPIM isComposing', kind: 'isComposing', cpim: true, activity: 'isComposing' },
    { name: 'CPIM IMDN', kind: 'imdn', cpim: true, activity: undefined },
    { name: 'empty SEND (keepalive)', kind: 'empty', cpim: false, activity: undefined },
    { name: 'bare text/plain (not CPIM)', kind: 'chat', cpim: false, activity: undefined },
    { name: 'bare isComposing (not CPIM)', kind: 'isComposing', cpim: false, activity: undefined },
    { name: 'bare IMDN (not CPIM)', kind: 'imdn', cpim: false, activity: undefined },
    { name: 'message/cpim whose head could not be read', kind: 'chat', cpim: false, activity: undefined },
  ];
  for (const c of cases) t.equal(activityOf(c.kind, c.cpim), c.activity, c.name);
});

t.test('CR 8.3.2.1.1 B (and A): the first active device, reported once', async t => {
  const cases: Array<{
    name: string; policy: MultiDevicePolicy; known?: string; kind: PayloadKind; cpim: boolean;
    expect: { leg: string; kind: string } | undefined;
  }> = [
    { name: 'B, first chat', policy: 'B', kind: 'chat', cpim: true, expect: { leg: 'd2', kind: 'chat' } },
    { name: 'B, first isComposing', policy: 'B', kind: 'isComposing', cpim: true, expect: { leg: 'd2', kind: 'isComposing' } },
    { name: 'B, IMDN first', policy: 'B', kind: 'imdn', cpim: true, expect: undefined },
    { name: 'B, non-CPIM first', policy: 'B', kind: 'chat', cpim: false, expect: undefined },
    { name: 'B, already known', policy: 'B', known: 'd1', kind: 'chat', cpim: true, expect: undefined },
    { name: 'A, for the record', policy: 'A', kind: 'chat', cpim: true, expect: { leg: 'd2', kind: 'chat' } },
    { name: 'A, already known', policy: 'A', known: 'd2', kind: 'isComposing', cpim: true, expect: undefined },
    { name: 'C, never', policy: 'C', kind: 'chat', cpim: true, expect: undefined },
  ];
  for (const c of cases) t.same(firstActiveAfter(c.policy, c.known, 'd2', c.kind, c.cpim), c.expect, c.name);
});

t.test('awaiting the first active device', async t => {
  const cases: Array<[MultiDevicePolicy, string | undefined, boolean]> = [
    ['A', undefined, true], ['A', 'd1', false], ['B', undefined, true], ['B', 'd1', false], ['C', undefined, false], ['C', 'd1', false],
  ];
  for (const [policy, known, expect] of cases) t.equal(awaitingFirstActive(policy, known), expect, `${policy}, first active ${known ?? 'unknown'}`);
});
