// Message routing, CR 8.3.2.1.4 steps 3 and 4 (media/relay/routing.ts), as case tables.
import t from 'tap';
import type { PayloadKind } from '../../../media/cpim/head.js';
import { needsCpimHead, routeMessage, type Routing, type Source } from '../../../media/relay/routing.js';
import type { MultiDevicePolicy } from '../../../media/relay/types.js';

const ALL: Routing = { toOriginator: false, toDevices: 'all', markSent: false };
const ALL_MARKED: Routing = { toOriginator: false, toDevices: 'all', markSent: true };
const ORIG: Routing = { toOriginator: true, toDevices: 'none', markSent: false };
const ORIG_AND_COPIES: Routing = { toOriginator: true, toDevices: 'others', markSent: true };

t.test('CR 8.3.2.1.4 steps 3 and 4: who gets a SEND', async t => {
  const cases: Array<{ name: string; source: Source; kind: PayloadKind; dd: boolean; cpim: boolean; fromUser: boolean; expect: Routing }> = [
    // Step 3: from the originating side, to every device.
    { name: 'peer chat', source: 'originator', kind: 'chat', dd: false, cpim: true, fromUser: false, expect: ALL },
    { name: 'peer chat, direct delivery', source: 'originator', kind: 'chat', dd: true, cpim: true, fromUser: false, expect: ALL },
    // Step 3.C: the served user's own message mirrored by the originating network.
    { name: 'mirrored own chat, direct delivery', source: 'originator', kind: 'chat', dd: true, cpim: true, fromUser: true, expect: ALL_MARKED },
    { name: 'mirrored own chat, no direct delivery', source: 'originator', kind: 'chat', dd: false, cpim: true, fromUser: true, expect: ALL },
    { name: 'mirrored own isComposing', source: 'originator', kind: 'isComposing', dd: true, cpim: true, fromUser: true, expect: ALL },
    { name: 'mirrored own IMDN', source: 'originator', kind: 'imdn', dd: true, cpim: true, fromUser: true, expect: ALL },
    { name: 'own chat without a readable CPIM head', source: 'originator', kind: 'chat', dd: true, cpim: false, fromUser: false, expect: ALL },
    // Step 4.C: from a device, to the originating side.
    { name: 'device chat', source: 'device', kind: 'chat', dd: false, cpim: true, fromUser: false, expect: ORIG },
    { name: 'device IMDN', source: 'device', kind: 'imdn', dd: false, cpim: true, fromUser: false, expect: ORIG },
    // Step 4.B: with direct delivery, a copy marked sent to the other devices.
    { name: 'device chat, direct delivery', source: 'device', kind: 'chat', dd: true, cpim: true, fromUser: false, expect: ORIG_AND_COPIES },
    { name: 'device chat, direct delivery, From ignored', source: 'device', kind: 'chat', dd: true, cpim: true, fromUser: true, expect: ORIG_AND_COPIES },
    { name: 'device isComposing, direct delivery', source: 'device', kind: 'isComposing', dd: true, cpim: true, fromUser: false, expect: ORIG },
    { name: 'device IMDN, direct delivery', source: 'device', kind: 'imdn', dd: true, cpim: true, fromUser: false, expect: ORIG },
    { name: 'device text/plain, direct delivery: not copied', source: 'device', kind: 'chat', dd: true, cpim: false, fromUser: false, expect: ORIG },
  ];
  for (const c of cases) {
    t.same(routeMessage({ source: c.source, kind: c.kind, directDelivery: c.dd, cpimHead: c.cpim, fromServedUser: c.fromUser }), c.expect, c.name);
  }
});

t.test('the CPIM head is read before relaying only when routing depends on it', async t => {
  const cases: Array<{ name: string; source: Source; dd: boolean; policy: MultiDevicePolicy; first?: string; expect: boolean }> = [
    { name: 'plain relay, C', source: 'originator', dd: false, policy: 'C', expect: false },
    { name: 'device, C', source: 'device', dd: false, policy: 'C', expect: false },
    { name: 'direct delivery', source: 'originator', dd: true, policy: 'C', expect: true },
    { name: 'device, B, first active unknown', source: 'device', dd: false, policy: 'B', expect: true },
    { name: 'device, B, first active known', source: 'device', dd: false, policy: 'B', first: 'd1', expect: false },
    { name: 'device, A, first active unknown', source: 'device', dd: false, policy: 'A', expect: true },
    { name: 'originator, B, first active unknown', source: 'originator', dd: false, policy: 'B', expect: false },
  ];
  for (const c of cases) {
    t.equal(needsCpimHead({ source: c.source, directDelivery: c.dd, policy: c.policy, firstActive: c.first }), c.expect, c.name);
  }
});
