/**
 * The defect "on the first INVITE after a second and third device registered, the caller
 * got 100 then 200 with no 180, and the ringing device never got a CANCEL": register two or
 * three chat phones (lab/chat-phone.ts) of a fresh user and call the moment the last
 * REGISTER's 200 is in, many rounds, on real Kamailio in proxy mode.
 *
 * Round outcome asserted: every phone gets the INVITE (pf.register stored the device before
 * save() answered, so the fork has it), the caller gets a 180 from every phone and then the
 * 200 of the one that answers, and every other phone gets CANCEL.
 * - "answer on ringing": the answering phone answers once the caller has every phone's 180
 *   (event driven, so "180 then 200" is the only legal order);
 * - "answer at once": it answers as soon as the INVITE arrives, racing the other phones'
 *   180s through Kamailio's worker processes; then a 180 may come after the 200 (not
 *   relayed, RFC 3261 §16.7 step 5), but every other phone must still get CANCEL.
 * - "answer at once without a 180": the setup of the report (the benchmark's devices
 *   answer without ringing).
 * With Kamailio's 4 UDP workers the two "at once" modes are todo: they fail in some rounds
 * (2 or 3 in 25 as measured), on Kamailio 5.6.3's tm: after a
 *   2xx, tm cancels the other branches with F_CANCEL_B_KILL outside the reply lock
 *   (t_reply.c reply_received -> cancel_uacs -> t_cancel.c cancel_branch). A branch whose
 *   180 is being handled at that moment by another worker reads as "no response ever
 *   received": no CANCEL is sent, its retransmission and final-response timers are stopped,
 *   and the 180, coming after the 200, is not relayed. So the caller gets 100 then 200 and
 *   the ringing phone rings until it gives up. Not a registration race: every phone got the
 *   INVITE in every round. Kept as todo to show it; the fix belongs in tm. "on ringing" is
 *   the outcome the lab guarantees, asserted strictly. With one UDP worker, replies are handled
 *   one after the other and the "at once" modes pass strictly (0 phones without CANCEL in
 *   100 rounds as measured, while the 180 came after the 200 in 84 of them): the race is
 *   between Kamailio's worker processes.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Lab, runDir } from '../../lab/lab.js';
import { LAB_POLICY } from '../../lab/xdm.js';
import { ChatCaller, Phone, instanceFor } from '../../lab/chat-phone.js';
import { hdr } from '../../lab/sip-ua.js';

const ROUNDS = 50;
/** The todo modes: a missing CANCEL costs CANCEL_WAIT_MS per round. */
const TODO_ROUNDS = 25;
const WAIT_MS = 5000;
/** A CANCEL comes within milliseconds of the 200, or never. */
const CANCEL_WAIT_MS = 2000;

const dir = runDir('it-register-race');
// Kamailio as the lab runs it (4 UDP workers), and with one UDP worker, where replies are
// handled one after the other
const labs = { 4: await Lab.start({ dir: `${dir}/four`, policy: LAB_POLICY }), 1: await Lab.start({ dir: `${dir}/one`, policy: LAB_POLICY, children: 1 }) };
t.teardown(() => Promise.all([labs[4].stop(), labs[1].stop()]));
t.setTimeout(300_000);

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

interface RoundResult {
  /** Status codes the caller got, in order (100 left out). */
  statuses: number[];
  invited: boolean[];
  cancelled: boolean[];
}

type Mode = 'on-ringing' | 'at-once' | 'at-once-silent';

async function round(lab: Lab, r: number, devices: number, mode: Mode): Promise<RoundResult> {
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
    const rang = new (await import('node:events')).EventEmitter();
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

const TM_RACE = "Kamailio 5.6.3 tm: a 180 handled while a 2xx cancels the other branches gets no CANCEL (this file's header)";
const MODES: readonly { mode: Mode; workers: 1 | 4; title: string; todo?: string }[] = [
  { mode: 'on-ringing', workers: 4, title: 'register, then answer once every phone rings' },
  { mode: 'at-once', workers: 1, title: 'register and answer at once, one UDP worker' },
  { mode: 'at-once-silent', workers: 1, title: 'register and answer at once without a 180, one UDP worker' },
  { mode: 'at-once', workers: 4, title: 'register and answer at once', todo: TM_RACE },
  { mode: 'at-once-silent', workers: 4, title: 'register and answer at once without a 180', todo: TM_RACE },
];

for (const { mode, workers, title, todo } of MODES) {
  const rounds = todo === undefined ? ROUNDS : TODO_ROUNDS;
  // a todo mode runs; its CANCEL assertions are todo (tap does not run a todo subtest)
  const extra = todo === undefined ? {} : { todo };
  t.test(`${title}: ${rounds} rounds`, async (t) => {
    let late180 = 0;
    let noCancel = 0;
    for (let r = 0; r < rounds; r++) {
      const devices = 2 + (r % 2);
      const answerer = r % devices;
      let res: RoundResult;
      try {
        res = await round(labs[workers], r, devices, mode);
      } catch (err) {
        t.fail(err instanceof Error ? err.message : String(err));
        continue;
      }
      const wanted = Array.from({ length: devices }, () => true);
      const cancelled = wanted.map((_, i) => i !== answerer);
      const ringers = mode === 'at-once-silent' ? devices - 1 : devices;
      if (mode === 'on-ringing') {
        t.same(res.statuses, [...Array.from({ length: devices }, () => 180), 200], `round ${r}: ${devices} x 180, then 200`);
      } else {
        t.equal(res.statuses[res.statuses.length - 1], 200, `round ${r}: 200 last`);
        t.ok(res.statuses.slice(0, -1).every((s) => s === 180), `round ${r}: only 180s before it`);
        if (res.statuses.length - 1 < ringers) late180++;
      }
      t.same(res.invited, wanted, `round ${r}: every phone got the INVITE`);
      t.same(res.cancelled, cancelled, `round ${r}: the phones that lost got CANCEL`, extra);
      if (res.cancelled.filter((c, i) => !c && i !== answerer).length > 0) noCancel++;
    }
    if (mode !== 'on-ringing') t.comment(`rounds where a 180 came after the 200 (not relayed): ${late180}; with a phone left without CANCEL: ${noCancel} (of ${rounds})`);
  });
}
