/**
 * One round of the register-and-call race (lab issue "first INVITE after a second and third
 * device registered: 100 then 200, no 180, no CANCEL to the ringing device"): two or three
 * chat phones (lab/chat-phone.ts) of a fresh user register, and a caller calls the moment
 * the last REGISTER's 200 is in. Used by test/integration/register-race.test.ts (the
 * outcomes the lab guarantees, asserted strictly) and by `npm run lab:tm-race` (the rate
 * of Kamailio 5.6.3 tm's CANCEL race with several UDP workers, measured: docs/lab.md).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Lab } from './lab.js';
import { ChatCaller, Phone, instanceFor } from './chat-phone.js';
import { hdr } from './sip-ua.js';

const WAIT_MS = 5000;
/** A CANCEL comes within milliseconds of the 200, or never. */
export const CANCEL_WAIT_MS = 2000;

const quiet = (): void => undefined;

/** Resolve when `cond()` holds, re-checked on `emitter`'s `event`; reject after WAIT_MS with `what`. */
function when<E extends { on(e: string, f: () => void): unknown; off(e: string, f: () => void): unknown }>(
  emitter: E,
  event: string,
  cond: () => boolean,
  what: string,
  waitMs = WAIT_MS,
): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!cond()) return;
      clearTimeout(timer);
      emitter.off(event, check);
      resolve();
    };
    const timer = setTimeout(() => {
      emitter.off(event, check);
      reject(new Error(`${what}: not within ${waitMs} ms`));
    }, waitMs);
    emitter.on(event, check);
  });
}

export interface RoundResult {
  /** Status codes the caller got, in order (100 left out). */
  statuses: number[];
  invited: boolean[];
  cancelled: boolean[];
}

export type Mode = 'on-ringing' | 'at-once' | 'at-once-silent';

export async function raceRound(lab: Lab, r: number, devices: number, mode: Mode): Promise<RoundResult> {
  const atOnce = mode !== 'on-ringing';
  const user = `race${r}x${randomBytes(3).toString('hex')}`;
  const answerer = r % devices;
  const phones: Phone[] = [];
  const start = (i: number): Promise<Phone> =>
    Phone.start({
      sipPort: lab.sipPort,
      user,
      instance: instanceFor(user, String(i)),
      answer: i === answerer && atOnce ? { kind: 'after', ms: 0 } : { kind: 'manual' },
      ringing: !(i === answerer && mode === 'at-once-silent'),
      out: quiet,
    }).then((p) => {
      phones[i] = p;
      return p;
    });
  try {
    // the first phone, then the others at the same time; the call the moment their 200s are in
    await start(0);
    await Promise.all(Array.from({ length: devices - 1 }, (_, k) => start(k + 1)));
    const ringing = new Set<string>();
    const statuses: number[] = [];
    const rang = new EventEmitter();
    const placed = ChatCaller.place({
      sipPort: lab.sipPort,
      from: 'alice',
      to: user,
      out: quiet,
      onResponse: (resp) => {
        if (resp.status === 100) return;
        statuses.push(resp.status);
        if (resp.status === 180) ringing.add(hdr(resp, 'contact') ?? '');
        rang.emit('180');
      },
    });
    const who = phones[answerer]!;
    if (!atOnce) {
      await when(rang, '180', () => ringing.size === devices, `round ${r}: a 180 from each of the ${devices} phones (got ${ringing.size})`);
      await who.answer();
    }
    const caller = await placed;
    const losers = phones.filter((_, i) => i !== answerer);
    // a CANCEL that does not come is recorded, not thrown: the round's assertions say it
    await Promise.allSettled(
      losers.map((p, k) => when(p, 'cancel', () => [...p.calls.values()].some((c) => c.state === 'cancelled'), `round ${r}: CANCEL at phone ${k}`, CANCEL_WAIT_MS)),
    );
    await caller.hangup();
    return {
      statuses,
      invited: phones.map((p) => p.calls.size === 1),
      cancelled: phones.map((p) => [...p.calls.values()].some((c) => c.state === 'cancelled')),
    };
  } finally {
    await Promise.all(phones.map((p) => p.stop()));
  }
}
