// The REPORT merge rule (media/relay/report-merge.ts) as case tables: sequences of inputs
// for one message and the verdict of each; and the book that bounds the records
// (media/relay/reports.ts).
import t from 'tap';
import {
  PHASE_NEXT, addSpan, betterFailure, covered, mergeReport, openMerge, type MergeState, type ReportInput, type Span,
} from '../../../media/relay/report-merge.js';
import { ReportBook } from '../../../media/relay/reports.js';

type Step =
  | ['written' | 'closed' | 'lost', string]
  | ['ok', string, number, number] // success for start-end of a 100-byte message
  | ['fail', string, number];

/** Runs the steps; each verdict is 'absorb' or the forwarded report's name. */
function run(legs: string[], steps: Step[], wanted: { success?: boolean; failure?: boolean } = {}): { verdicts: string[]; state: MergeState<string, string> } {
  let state = openMerge<string, string>(legs, wanted.success ?? true, wanted.failure ?? true);
  const verdicts: string[] = [];
  for (const [i, s] of steps.entries()) {
    let input: ReportInput<string, string>;
    if (s[0] === 'ok') input = { kind: 'success', leg: s[1], span: { start: s[2], end: s[3] }, whole: s[2] === 1 && s[3] >= 100, report: `#${i} ${s[1]} ${s[2]}-${s[3]}` };
    else if (s[0] === 'fail') input = { kind: 'failure', leg: s[1], status: s[2], report: `#${i} ${s[1]} ${s[2]}` };
    else input = { kind: s[0], leg: s[1] };
    const r = mergeReport(state, input);
    state = r.state;
    verdicts.push(r.verdict.action === 'forward' ? r.verdict.report : 'absorb');
  }
  return { verdicts, state };
}

const A = 'absorb';

t.test('merge: success, failure, legs that go (one message, three devices unless said)', async t => {
  const cases: Array<{ name: string; legs?: string[]; wanted?: { success?: boolean; failure?: boolean }; steps: Step[]; expect: string[]; phase?: string }> = [
    { name: 'first success forwarded, the others absorbed',
      steps: [['written', 'd1'], ['ok', 'd2', 1, 100], ['ok', 'd1', 1, 100], ['ok', 'd3', 1, 100]],
      expect: [A, '#1 d2 1-100', A, A], phase: 'delivered' },
    { name: 'success before the last chunk was written (a fast device) still counts',
      steps: [['ok', 'd1', 1, 100]], expect: ['#0 d1 1-100'], phase: 'delivered' },
    { name: 'success not asked (Success-Report: no): absorbed, and the message is not failed later',
      wanted: { success: false }, steps: [['ok', 'd1', 1, 100], ['fail', 'd2', 415], ['fail', 'd3', 415]],
      expect: [A, A, A], phase: 'open' },
    { name: 'failure held until every leg failed; the best status goes',
      steps: [['fail', 'd1', 481], ['fail', 'd2', 415], ['fail', 'd3', 408]],
      expect: [A, A, '#1 d2 415'], phase: 'failed' },
    { name: 'failure after a success: absorbed (the message reached the user)',
      steps: [['fail', 'd1', 415], ['ok', 'd2', 1, 100], ['fail', 'd3', 415], ['fail', 'd2', 413]],
      expect: [A, '#1 d2 1-100', A, A], phase: 'delivered' },
    { name: 'a leg that delivered without being asked to report blocks the failure',
      wanted: { success: false }, steps: [['ok', 'd1', 1, 100], ['fail', 'd2', 415], ['fail', 'd3', 415], ['closed', 'd1']],
      expect: [A, A, A, A], phase: 'open' },
    { name: 'Failure-Report: no: failures absorbed, never settled',
      wanted: { failure: false }, steps: [['fail', 'd1', 415], ['fail', 'd2', 415], ['fail', 'd3', 415]],
      expect: [A, A, A], phase: 'open' },
    { name: 'legs closed before the message reached them are gone: the failure goes when the last one closes',
      steps: [['fail', 'd1', 413], ['closed', 'd2'], ['closed', 'd3']],
      expect: [A, A, '#0 d1 413'], phase: 'failed' },
    { name: 'a leg closed after its last chunk was written is taken to have the message',
      steps: [['written', 'd2'], ['written', 'd3'], ['fail', 'd1', 413], ['closed', 'd2'], ['closed', 'd3']],
      expect: [A, A, A, A, A], phase: 'open' },
    { name: 'a lost chunk makes the leg gone',
      steps: [['fail', 'd1', 481], ['lost', 'd2'], ['fail', 'd3', 481]],
      expect: [A, A, '#0 d1 481'], phase: 'failed' },
    { name: 'every leg gone, no failure report: nothing to forward',
      steps: [['closed', 'd1'], ['lost', 'd2'], ['closed', 'd3']], expect: [A, A, A], phase: 'open' },
    { name: 'a leg the message did not go to is absorbed',
      steps: [['ok', 'd9', 1, 100], ['fail', 'd9', 415]], expect: [A, A], phase: 'open' },
    { name: 'equal status: the earlier report is kept',
      legs: ['d1', 'd2'], steps: [['fail', 'd1', 481], ['fail', 'd2', 481]], expect: [A, '#0 d1 481'] },
    { name: 'unknown status ranks last',
      legs: ['d1', 'd2'], steps: [['fail', 'd1', 499], ['fail', 'd2', 506]], expect: [A, '#1 d2 506'] },
    { name: 'a device repeating its failure keeps the better one',
      legs: ['d1', 'd2'], steps: [['fail', 'd1', 481], ['fail', 'd1', 413], ['fail', 'd2', 415]], expect: [A, A, '#1 d1 413'] },
    { name: 'one leg (a device\'s message to the originator): its failure goes at once',
      legs: ['orig'], steps: [['written', 'orig'], ['fail', 'orig', 415], ['fail', 'orig', 413]], expect: [A, '#1 orig 415', A], phase: 'failed' },
    { name: 'after the failure is forwarded, a success is absorbed',
      legs: ['d1'], steps: [['fail', 'd1', 415], ['ok', 'd1', 1, 100]], expect: ['#0 d1 415', A], phase: 'failed' },
  ];
  for (const c of cases) {
    const r = run(c.legs ?? ['d1', 'd2', 'd3'], c.steps, c.wanted);
    t.same(r.verdicts, c.expect, c.name);
    if (c.phase) t.equal(r.state.phase, c.phase, `${c.name}: phase`);
  }
});

t.test('merge, chunks: the reporter and the byte ranges told', async t => {
  const cases: Array<{ name: string; steps: Step[]; expect: string[] }> = [
    { name: 'per-chunk reports of the first device, each once; another device\'s absorbed',
      steps: [['ok', 'd1', 1, 40], ['ok', 'd2', 1, 40], ['ok', 'd2', 41, 100], ['ok', 'd1', 41, 80], ['ok', 'd1', 41, 80], ['ok', 'd1', 81, 100]],
      expect: ['#0 d1 1-40', A, A, '#3 d1 41-80', A, '#5 d1 81-100'] },
    { name: 'a range inside what was told is absorbed; one that adds bytes goes',
      steps: [['ok', 'd1', 1, 60], ['ok', 'd1', 10, 30], ['ok', 'd1', 50, 70]],
      expect: ['#0 d1 1-60', A, '#2 d1 50-70'] },
    { name: 'the reporter\'s whole-message report ends the message',
      steps: [['ok', 'd1', 1, 50], ['ok', 'd1', 1, 100], ['ok', 'd1', 51, 100], ['ok', 'd2', 1, 100]],
      expect: ['#0 d1 1-50', '#1 d1 1-100', A, A] },
    { name: 'the reporter fails: the next device takes the role',
      steps: [['ok', 'd1', 1, 50], ['fail', 'd1', 413], ['ok', 'd2', 1, 50], ['ok', 'd2', 51, 100]],
      expect: ['#0 d1 1-50', A, A, '#3 d2 51-100'] },
    { name: 'the reporter goes before the last chunk: the next device takes the role',
      steps: [['ok', 'd1', 1, 50], ['lost', 'd1'], ['ok', 'd2', 1, 100]],
      expect: ['#0 d1 1-50', A, '#2 d2 1-100'] },
    { name: 'partial successes, then every leg fails: the failure goes',
      steps: [['ok', 'd1', 1, 50], ['fail', 'd1', 413], ['fail', 'd2', 481], ['fail', 'd3', 481]],
      expect: ['#0 d1 1-50', A, A, '#1 d1 413'] },
  ];
  for (const c of cases) t.same(run(['d1', 'd2', 'd3'], c.steps).verdicts, c.expect, c.name);
});

t.test('a new message starts from what its first chunks did', async t => {
  const st = openMerge<string, string>(['d1', 'd2', 'd3'], true, true, [{ leg: 'd1', kind: 'written' }, { leg: 'd2', kind: 'lost' }, { leg: 'd9', kind: 'written' }]);
  t.same([...st.legs], [['d1', 'awaiting'], ['d2', 'gone'], ['d3', 'sending']], 'a leg not among the recipients is ignored');
  t.same(mergeReport(st, { kind: 'failure', leg: 'd3', status: 415, report: 'f' }).verdict, { action: 'absorb' }, 'd1 got it and said nothing: the failure is held');
});

t.test('ranges: covered and joined', async t => {
  const s = (start: number, end: number): Span => ({ start, end });
  t.same(addSpan([], s(5, 9)), [s(5, 9)]);
  t.same(addSpan([s(1, 4)], s(5, 9)), [s(1, 9)], 'adjacent joined');
  t.same(addSpan([s(1, 4), s(20, 30)], s(3, 21)), [s(1, 30)], 'overlaps joined');
  t.same(addSpan([s(10, 12)], s(1, 2)), [s(1, 2), s(10, 12)], 'sorted');
  const cases: Array<[Span[], Span, boolean]> = [
    [[], s(1, 1), false], [[s(1, 10)], s(1, 10), true], [[s(1, 10)], s(3, 4), true],
    [[s(1, 10)], s(5, 11), false], [[s(1, 4), s(6, 10)], s(4, 6), false],
  ];
  for (const [told, span, expect] of cases) t.equal(covered(told, span), expect, `${JSON.stringify(told)} ⊇ ${span.start}-${span.end}`);
});

t.test('failure ranking', async t => {
  const cases: Array<[number, number | undefined, boolean]> = [
    [481, undefined, true], [413, 481, true], [415, 413, false], [481, 481, false], [408, 501, false], [499, 506, false], [506, 499, true],
  ];
  for (const [status, kept, expect] of cases) t.equal(betterFailure(status, kept), expect, `${status} over ${kept ?? 'none'}`);
});

t.test('a settled message stays settled', async t => {
  t.same(PHASE_NEXT, { open: ['delivered', 'failed'], delivered: [], failed: [] });
  for (const [name, steps] of [['delivered', [['ok', 'd1', 1, 100]]], ['failed', [['fail', 'd1', 415]]]] as Array<[string, Step[]]>) {
    const st = run(['d1'], steps).state;
    t.equal(st.phase, name);
    const inputs: Array<ReportInput<string, string>> = [
      { kind: 'failure', leg: 'd1', status: 413, report: 'x' },
      { kind: 'success', leg: 'd1', span: { start: 1, end: 100 }, whole: true, report: 'y' },
      { kind: 'closed', leg: 'd1' },
    ];
    for (const input of inputs) {
      const r = mergeReport(st, input);
      t.same(r.verdict, { action: 'absorb' }, `${name}, then ${input.kind}: absorbed`);
      t.equal(r.state.phase, name);
    }
  }
});

t.test('the book: at most maxTracked records, the oldest generation forgotten; records expire', async t => {
  let now = 0;
  const book = new ReportBook(4, 1000, () => now);
  const rec = { src: undefined as never, state: openMerge<never, never>([], false, true) };
  for (const id of ['m1', 'm2', 'm3', 'm4', 'm5']) book.add(id, rec);
  t.same(['m1', 'm2', 'm3', 'm4', 'm5'].map(id => book.get(id) !== undefined), [false, false, true, true, true], 'count: the 2 oldest forgotten');
  t.ok(book.size <= 4);
  now = 499;
  t.ok(book.get('m5'), 'younger than TTL / 2: kept');
  now = 500;
  t.ok(book.get('m5'), 'TTL / 2 old: now in the old generation, still found');
  t.notOk(book.get('m3'), 'the generation before it forgotten');
  book.add('m6', rec);
  book.touch('m5');
  now = 1000;
  t.ok(book.get('m5'), 'touched at 500: moved to the young generation, so kept at 1000');
  t.ok(book.get('m6'));
  now = 2600;
  t.notOk(book.get('m5'), 'no activity for more than TTL: everything expired');
  t.equal(book.size, 0);
});
