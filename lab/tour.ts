/**
 * The lab tour (`npm run lab:tour`, docs/lab.md "The tour"): against a running lab it
 * plays the PF's cases with real phones (lab/chat-phone.ts) and prints, for each, what was
 * expected and what happened:
 *   1. a chat forks to two phones; the first to answer takes it, the other gets CANCEL;
 *   2. a blacklisted caller (bob blocks sip:spam@example.net): 403;
 *   3. do-not-disturb (carol): 480;
 *   4. an MMTEL-only phone is kept out of a chat; alone it leaves no suitable device: 480;
 *   5. OPTIONS (capability query) and 6. MESSAGE (pager mode) reach the user's phone.
 * Users with phones are fresh (tour-<random>): phones someone left running for bob would
 * change the outcome. bob and carol are the demo users with the documents of lab/lab-state.ts.
 */
import { randomBytes } from 'node:crypto';
import { nonInvite } from './calls.js';
import { ChatCaller, Phone, instanceFor } from './chat-phone.js';
import { parseScript } from './chat.js';
import { MMTEL_DEVICE_PARAMS } from './sip.js';
import { hdrs } from './sip-ua.js';

export interface TourCase {
  readonly title: string;
  readonly expected: string;
  readonly happened: string;
  readonly ok: boolean;
}

const CASE_MS = 20_000;

/** `run()` bounded by CASE_MS; a timeout or an error is what happened. */
async function bounded(run: () => Promise<string>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      run(),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`nothing conclusive within ${CASE_MS} ms`), CASE_MS);
      }),
    ]);
  } catch (err) {
    return `error: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `p` has a cancelled call, waiting for its CANCEL up to `ms` (a B2BUA may send it after the chat began). */
function cancelled(p: Phone, ms: number): Promise<boolean> {
  const now = (): boolean => [...p.calls.values()].some((c) => c.state === 'cancelled');
  if (now()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      p.off('cancel', on);
      resolve(now());
    }, ms);
    const on = (): void => {
      clearTimeout(timer);
      p.off('cancel', on);
      resolve(true);
    };
    p.on('cancel', on);
  });
}

/** The final status and the Warning texts of a chat INVITE, as `<status> [Warning ...]`. */
function outcome(c: ChatCaller): string {
  const f = c.final;
  if (!f) return 'no final response';
  const w = hdrs(f, 'warning');
  return `${f.status}${w.length ? ` Warning: ${w.join(', ')}` : ''}`;
}

export async function runTour(o: { sipPort: number; out: (line: string) => void; verbose?: boolean }): Promise<TourCase[]> {
  const sipPort = o.sipPort;
  const quiet = (who: string) => (line: string): void => {
    if (o.verbose) o.out(`      ${who}: ${line}`);
  };
  const fresh = (): string => `tour-${randomBytes(3).toString('hex')}`;
  const phones: Phone[] = [];
  const phone = async (user: string, n: string, extra: Partial<Parameters<typeof Phone.start>[0]> = {}): Promise<Phone> => {
    const p = await Phone.start({ sipPort, user, instance: instanceFor(user, n), out: quiet(`${user}/${n}`), ...extra });
    phones.push(p);
    return p;
  };
  const cases: TourCase[] = [];
  const play = async (title: string, expected: string, run: () => Promise<string>): Promise<void> => {
    o.out(`[${cases.length + 1}] ${title}`);
    o.out(`    expected: ${expected}`);
    const happened = await bounded(run);
    const ok = happened === expected;
    o.out(`    happened: ${happened}`);
    o.out(`    ${ok ? 'ok' : 'MISMATCH'}`);
    cases.push({ title, expected, happened, ok });
  };

  try {
    // no lab, no tour: one quick question before the cases
    await Phone.start({ sipPort, user: fresh(), instance: instanceFor('probe', '1'), out: () => undefined, timeoutMs: 3000 }).then((p) => p.stop());
    const u1 = fresh();
    await play(
      `a chat from alice forks to two phones of ${u1}`,
      'both phones got the INVITE; phone 1 answered, phone 2 got CANCEL; alice: 200, her message delivered (IMDN), the reply received',
      async () => {
        // after 300 ms: a 180 in Kamailio while a 2xx cancels the other branches gets no
        // CANCEL (Kamailio 5.6.3 tm, test/integration/register-race.test.ts). The phone
        // replies: in B2BUA mode (policy C) the other phone is cancelled once one answered
        // and sent a message (CR 8.3.2.1.1); in proxy mode at the 200
        const p1 = await phone(u1, '1', { answer: { kind: 'after', ms: 300 }, script: parseScript('wait message\nsend hi alice') });
        const p2 = await phone(u1, '2', { answer: { kind: 'ring' } });
        const c = await ChatCaller.place({ sipPort, from: 'alice', to: u1, out: quiet('alice') });
        if (c.state === 'failed') return `alice: ${outcome(c)}`;
        const delivered = await c.session.run(parseScript('send hello from the tour\nwait imdn\nwait message hi alice')).then(
          () => 'her message delivered (IMDN), the reply received',
          (err: unknown) => `the chat stopped: ${err instanceof Error ? err.message : String(err)}`,
        );
        const gotCancel = await cancelled(p2, 5000);
        await c.hangup();
        const answered = [...p1.calls.values()].some((x) => x.state === 'confirmed' || x.state === 'ended');
        const invited = p1.calls.size === 1 && p2.calls.size === 1 ? 'both phones got the INVITE' : `INVITEs: phone 1 ${p1.calls.size}, phone 2 ${p2.calls.size}`;
        return `${invited}; phone 1 ${answered ? 'answered' : 'did not answer'}, phone 2 ${gotCancel ? 'got CANCEL' : 'got no CANCEL'}; alice: ${outcome(c)}, ${delivered}`;
      },
    );

    await play(
      'sip:spam@example.net calls bob, who blacklists it',
      '403 Warning: 399 pf.example.net "122 Function not allowed"',
      async () => outcome(await ChatCaller.place({ sipPort, from: 'spam', to: 'bob', out: quiet('spam') })),
    );

    await play(
      'alice calls carol, who has do-not-disturb on',
      '480 Warning: 399 pf.example.net "do-not-disturb"',
      async () => outcome(await ChatCaller.place({ sipPort, from: 'alice', to: 'carol', out: quiet('alice') })),
    );

    const u2 = fresh();
    await play(
      `an MMTEL-only phone of ${u2} is kept out of a chat`,
      'the chat phone answered, the MMTEL-only phone got no INVITE; with the MMTEL-only phone alone: 480 Warning: 399 pf.example.net "no-suitable-device"',
      async () => {
        const mmtel = await phone(u2, 'mmtel', { params: MMTEL_DEVICE_PARAMS, answer: { kind: 'ring' } });
        const chat = await phone(u2, 'chat');
        const c = await ChatCaller.place({ sipPort, from: 'alice', to: u2, out: quiet('alice') });
        if (c.state === 'failed') return `alice: ${outcome(c)}`;
        await c.hangup();
        await chat.stop();
        const alone = await ChatCaller.place({ sipPort, from: 'alice', to: u2, out: quiet('alice') });
        const kept = mmtel.calls.size === 0 ? 'the MMTEL-only phone got no INVITE' : `the MMTEL-only phone got ${mmtel.calls.size} INVITE(s)`;
        return `the chat phone ${chat.calls.size === 1 ? 'answered' : `got ${chat.calls.size} INVITEs`}, ${kept}; with the MMTEL-only phone alone: ${outcome(alone)}`;
      },
    );

    const u3 = fresh();
    const pager = phone(u3, '1', { answer: { kind: 'ring' } });
    await play(`alice asks ${u3}'s capabilities (OPTIONS)`, `200, the phone saw OPTIONS from sip:alice@example.net`, async () => {
      const p = await pager;
      const r = await nonInvite({ sipPort, method: 'OPTIONS', to: u3 });
      const seen = p.lines.some((l) => l.startsWith('<< OPTIONS from sip:alice@example.net'));
      return `${r.status}, the phone ${seen ? 'saw OPTIONS from sip:alice@example.net' : 'saw no OPTIONS'}`;
    });
    await play(`alice sends ${u3} a pager-mode MESSAGE`, '200, the phone printed "<< MESSAGE from sip:alice@example.net: hi from the tour"', async () => {
      const p = await pager;
      const r = await nonInvite({ sipPort, method: 'MESSAGE', to: u3, text: 'hi from the tour' });
      const line = p.lines.find((l) => l.startsWith('<< MESSAGE'));
      return `${r.status}, the phone printed ${line === undefined ? 'nothing' : `"${line}"`}`;
    });
  } finally {
    await Promise.all(phones.map((p) => p.stop()));
  }
  return cases;
}
