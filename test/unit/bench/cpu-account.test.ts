/** bench:proxy's per-process CPU accounting (bench/cpu-account.ts): case tables. */
import t from 'tap';
import { formatStep, kamailioRole, limitingLine, machineTicks, parsePsx, statTicks, stepAccount, type Role, type Sample, type StepAccount, type Tracked } from '../../../bench/cpu-account.js';

t.test('core.psx descriptions map to roles', async (t) => {
  const cases: [string, Role][] = [
    ['main process - attendant', 'other'],
    ['udp receiver child=0 sock=127.0.0.1:5060', 'udp'],
    ['tcp receiver (generic) child=3', 'tcp'],
    ['tcp main process', 'tcp'],
    ['jsonrpc io handler', 'rpc-io'],
    ['jsonrpc SRV timer', 'timer'],
    ['Async Task Worker - default', 'async'],
    ['slow timer', 'timer'],
    ['secondary timer', 'timer'],
    ['ASYNC MOD TIMER', 'timer'],
    ['ctl handler', 'other'],
  ];
  for (const [desc, role] of cases) t.equal(kamailioRole(desc), role, desc);
});

t.test('core.psx output parses into pid and description', async (t) => {
  const text = '{\n\tIDX: 0\n\tPID: 8716\n\tDSC: main process - attendant\n}\n{\n\tIDX: 13\n\tPID: 8729\n\tDSC: jsonrpc io handler\n}\n';
  t.same(parsePsx(text), [
    { pid: 8716, desc: 'main process - attendant' },
    { pid: 8729, desc: 'jsonrpc io handler' },
  ]);
  t.same(parsePsx(''), []);
});

t.test('utime+stime from a stat line, comm with spaces and parentheses', async (t) => {
  const cases: [string, number][] = [
    ['8729 (kamailio) S 8716 8716 8716 0 -1 4194560 100 0 0 0 250 40 0 0 20 0 1 0 300 0 0', 290],
    ['42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0', 10],
  ];
  for (const [line, ticks] of cases) t.equal(statTicks(line), ticks, line.slice(0, 20));
  t.throws(() => statTicks('garbage'));
});

t.test('the machine\'s busy and total ticks from /proc/stat', async (t) => {
  const cases: [string, { busy: number; total: number }][] = [
    // user nice system idle iowait irq softirq steal guest guest_nice: guest is inside user
    ['cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n', { busy: 150, total: 1000 }],
    ['cpu 10 1 2 3 4 5 6 7\n', { busy: 31, total: 38 }],
  ];
  for (const [text, want] of cases) t.same(machineTicks(text), want, text.slice(0, 20));
  t.throws(() => machineTicks('intr 1 2 3'));
});

const tracked: Tracked[] = [
  { key: 'k:1', role: 'udp', name: 'udp receiver child=0 (pid 1)' },
  { key: 'k:2', role: 'udp', name: 'udp receiver child=1 (pid 2)' },
  { key: 'k:3', role: 'rpc-io', name: 'jsonrpc io handler (pid 3)' },
  { key: 's:9', role: 'service-main', name: 'service main thread (pid 9)' },
  { key: 'c:7', role: 'caller', name: 'sipp caller (pid 7)' },
];
const sample = (atMs: number, ticks: Record<string, number>): Sample => ({ atMs, ticks: new Map(Object.entries(ticks)) });

t.test('a step: ms per call and cores by role, the busiest process by its peak window', async (t) => {
  // 2 s, 1,000 calls; the I/O process 95 then 99 ticks a second (of 100), the caller appears after the first sample
  const samples = [
    sample(0, { 'k:1': 100, 'k:2': 100, 'k:3': 1000, 's:9': 50 }),
    sample(1000, { 'k:1': 130, 'k:2': 120, 'k:3': 1095, 's:9': 90, 'c:7': 20 }),
    sample(2000, { 'k:1': 160, 'k:2': 140, 'k:3': 1194, 's:9': 130, 'c:7': 45 }),
  ];
  const a = stepAccount(tracked, samples, 1000);
  t.equal(a.seconds, 2);
  const role = (r: Role): { msPerCall: number; cores: number; processes: number } | undefined => a.roles.find((x) => x.role === r);
  // udp: 60 + 40 ticks = 1,000 ms over 1,000 calls, 0.5 cores over 2 s
  t.same(role('udp'), { role: 'udp', processes: 2, msPerCall: 1, cores: 0.5 });
  t.equal(role('rpc-io')?.msPerCall, 1.94);
  t.equal(role('caller')?.msPerCall, 0.45, 'a process that started during the step counts from 0');
  t.equal(a.kamailioMsPerCall, 2.94);
  t.equal(a.serviceMsPerCall, 0.8);
  t.equal(a.serverCores, (1000 + 1940 + 800) / 1000 / 2);
  t.equal(a.busiest?.key, 'k:3');
  t.equal(a.busiest?.peak, 0.99);
  t.equal(a.busiest?.mean, 0.97);
  t.notOk(a.roles.some((r) => r.role === 'async'), 'roles without processes are left out');
  t.equal(a.machineBusy, null, 'no /proc/stat readings');
});

t.test('the machine\'s busy share over the step', async (t) => {
  const samples: Sample[] = [
    { atMs: 0, ticks: new Map(), machine: { busy: 1000, total: 5000 } },
    { atMs: 1000, ticks: new Map(), machine: { busy: 1150, total: 5200 } },
  ];
  t.equal(stepAccount([], samples, 10).machineBusy, 0.75);
});

t.test('a process gone during the step counts up to its last reading', async (t) => {
  const samples = [sample(0, { 'c:7': 0 }), sample(1000, { 'c:7': 50 }), sample(2000, {})];
  const a = stepAccount(tracked.filter((x) => x.key === 'c:7'), samples, 100);
  t.equal(a.roles[0]?.msPerCall, 5);
  t.equal(a.busiest?.peak, 0.5);
});

t.test('one sample: no busiest, no division by zero', async (t) => {
  const a = stepAccount(tracked, [sample(0, { 'k:1': 5 })], 10);
  t.equal(a.busiest, null);
  t.equal(a.seconds, 0);
});

t.test('the limiting line', async (t) => {
  const busy = (peak: number, total: number, server: number, machine: number | null = null): StepAccount => ({
    seconds: 5, calls: 5000, roles: [], kamailioMsPerCall: 1, serviceMsPerCall: 1, totalCores: total, serverCores: server, machineBusy: machine,
    busiest: { key: 'k:3', name: 'jsonrpc io handler (pid 3)', role: 'rpc-io' as Role, mean: peak - 0.05, peak },
  });
  const cases: [string, Parameters<typeof limitingLine>, RegExp][] = [
    ['a serializer', ['pf', 1400, { rate: 1700, account: busy(0.98, 1.2, 1) }, { machineCores: 2, serverCores: null }], /limiting process is jsonrpc io handler \(pid 3\) \[rpc-io\]: peak 98% .* a serializer; CPU left over/],
    ['CPUs used up, no serializer', ['bare', 1650, { rate: 1700, account: busy(0.6, 1.9, 1.5) }, { machineCores: 2, serverCores: null }], /no process reached 90% .*the CPU is used up \(all processes 1\.90 of 2 cores\)/],
    ['the quota used up', ['pf', 500, { rate: 600, account: busy(0.5, 1.2, 0.98) }, { machineCores: 2, serverCores: 1 }], /Kamailio and the service 0\.98 of their 1-core quota/],
    ['neither', ['pf', 500, { rate: 600, account: busy(0.5, 0.8, 0.5) }, { machineCores: 2, serverCores: null }], /the limit is not CPU/],
    ['no step failed', ['pf', 600, { rate: 600, account: busy(0.5, 0.8, 0.5) }, { machineCores: 2, serverCores: null }], /^ {2}pf no step failed \(ceiling at least 600 calls\/s\); at 600 calls\/s/],
    ['the machine busy with others\' jobs', ['bare', 1000, { rate: 2000, account: busy(0.3, 0.8, 0.5, 0.97) }, { machineCores: 2, serverCores: null }], /the CPU is used up \(the machine 97% busy: ours 0\.80, others' 1\.14 of 2 cores\)/],
    ['the machine with CPU to spare', ['bare', 1000, { rate: 2000, account: busy(0.3, 0.8, 0.5, 0.5) }, { machineCores: 2, serverCores: null }], /CPU left over \(the machine 50% busy, ours 0\.80 of 2 cores\): the limit is not CPU/],
    ['nothing accounted', ['pf', 0, null, { machineCores: 2, serverCores: null }], /no step accounted/],
  ];
  for (const [name, args, re] of cases) t.match(limitingLine(...args), re, name);
});

t.test('the step table has a line per role and the busiest process', async (t) => {
  const samples = [sample(0, { 'k:1': 0, 'k:3': 0 }), sample(1000, { 'k:1': 10, 'k:3': 90 })];
  const lines = formatStep('pf', 1000, true, stepAccount(tracked.slice(0, 3), samples, 1000));
  t.match(lines[0], /pf 1000 calls\/s ok: 1000 calls in 1\.0 s \(1000\/s\)/);
  t.match(lines.find((l) => l.includes('rpc-io')), /rpc-io\s+1\s+0\.900\s+0\.90/);
  t.match(lines.at(-1), /busiest process: jsonrpc io handler \(pid 3\) \[rpc-io\] 90% of a core over the step, peak 90%/);
});
