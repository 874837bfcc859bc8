/** bench:proxy's CPU_QUOTA (bench/cpu-limit.ts): parsing, cgroup choice, quota values. */
import t from 'tap';
import { cgroupParent, complement, parseCpuList, parseCpuQuota, quotaWrites } from '../../../bench/cpu-limit.js';

t.test('CPU lists', async (t) => {
  const cases: [string, number[]][] = [
    ['0', [0]],
    ['0,2', [0, 2]],
    ['2-3,0', [0, 2, 3]],
    [' 1 , 1 ', [1]],
  ];
  for (const [s, cpus] of cases) t.same(parseCpuList(s), cpus, s);
  for (const bad of ['', 'a', '3-1', '1-']) t.throws(() => parseCpuList(bad), bad);
});

t.test('CPU_QUOTA and CPU_PIN', async (t) => {
  const cases: [string | undefined, string | undefined, number, ReturnType<typeof parseCpuQuota>][] = [
    [undefined, undefined, 2, null],
    ['', '0', 2, null],
    ['1', undefined, 2, { cores: 1, cpus: [0] }],
    ['0.5', undefined, 2, { cores: 0.5, cpus: [0] }],
    ['1.5', undefined, 4, { cores: 1.5, cpus: [0, 1] }],
    ['1', '1', 2, { cores: 1, cpus: [1] }],
    ['2', 'none', 2, { cores: 2, cpus: null }],
  ];
  for (const [q, p, n, want] of cases) t.same(parseCpuQuota(q, p, n), want, `${String(q)} ${String(p)} ${n}`);
  const bad: [string, string | undefined, number][] = [
    ['0', undefined, 2], // no CPU at all
    ['x', undefined, 2],
    ['2', undefined, 2], // nothing left for sipp
    ['1', '5', 2], // no such CPU
    ['1.5', '0', 4], // more cores than pinned CPUs
  ];
  for (const [q, p, n] of bad) t.throws(() => parseCpuQuota(q, p, n), `${q} ${String(p)} ${n}`);
  t.same(complement([0], 2), [1]);
  t.same(complement([1, 2], 4), [0, 3]);
});

const MOUNTS_V1 = `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`;
const SELF_V1 = '4:memory:/job/1\n2:cpuacct:/\n1:cpu:/bench\n0::/\n';
const MOUNTS_V2 = 'cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n';
const SELF_V2 = '0::/user.slice/session-1.scope\n';

t.test('where the quota cgroup goes', async (t) => {
  t.same(cgroupParent(MOUNTS_V1, SELF_V1, () => false), { kind: 'v1', dir: '/sys/fs/cgroup/cpu/bench' }, 'v2 without cpu: the v1 cpu hierarchy');
  t.same(cgroupParent(MOUNTS_V1, SELF_V1, () => true), { kind: 'v2', dir: '/sys/fs/cgroup/unified' }, 'v2 with cpu first');
  t.same(cgroupParent(MOUNTS_V2, SELF_V2, () => true), { kind: 'v2', dir: '/sys/fs/cgroup/user.slice/session-1.scope' });
  t.equal(cgroupParent(MOUNTS_V2, SELF_V2, () => false), null);
  t.equal(cgroupParent('', '', () => true), null);
});

t.test('quota files', async (t) => {
  t.same(quotaWrites('v2', 0.5), [['cpu.max', '50000 100000']]);
  t.same(quotaWrites('v1', 1.5), [['cpu.cfs_period_us', '100000'], ['cpu.cfs_quota_us', '150000']]);
});
