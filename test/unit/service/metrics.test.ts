import t from 'tap';
import { Counter, Histogram, ServiceMetrics } from '../../../plugin/metrics/metrics.js';

t.test('label keys: names sorted, values escaped, one series per label set', async (t) => {
  const c = new Counter('x_total', 'x');
  c.inc({ outcome: 'ok', method: 'pf.invite' });
  c.inc({ method: 'pf.invite', outcome: 'ok' }, 2);
  c.inc({ method: 'a"b\\c\nd' });
  c.inc();
  t.equal(c.get({ outcome: 'ok', method: 'pf.invite' }), 3);
  t.equal(c.get({}), 1);
  t.equal(
    c.render(),
    ['# HELP x_total x', '# TYPE x_total counter', 'x_total{method="pf.invite",outcome="ok"} 3', 'x_total{method="a\\"b\\\\c\\nd"} 1', 'x_total 1'].join('\n'),
  );
});

t.test('label sets that would read alike with NUL separators stay apart', async (t) => {
  const c = new Counter('y_total', 'y');
  c.inc({ a: 'x\0b\0y' });
  c.inc({ a: 'x', b: 'y' });
  c.inc({ a: 'x', b: 'y' });
  t.equal(c.get({ a: 'x', b: 'y' }), 2);
  t.equal(c.get({ a: 'x\0b\0y' }), 1);
});

t.test('pf_decision_duration_seconds resolves 1-5 ms finely', async (t) => {
  const m = new ServiceMetrics();
  const h = m.decisionSeconds;
  t.same(h.buckets.filter((b) => b >= 0.001 && b <= 0.005), [0.001, 0.0015, 0.002, 0.003, 0.004, 0.005]);
  t.same([...h.buckets].sort((a, b) => a - b), h.buckets, 'ascending');
  for (const v of [0.0012, 0.0018, 0.0025, 0.0035, 0.0045, 0.002]) h.observe(v, { method: 'pf.invite' });
  const text = h.render();
  t.match(text, /_bucket\{method="pf.invite",le="0.001"\} 0\n/);
  t.match(text, /_bucket\{method="pf.invite",le="0.0015"\} 1\n/);
  t.match(text, /_bucket\{method="pf.invite",le="0.002"\} 3\n/);
  t.match(text, /_bucket\{method="pf.invite",le="0.003"\} 4\n/);
  t.match(text, /_bucket\{method="pf.invite",le="0.004"\} 5\n/);
  t.match(text, /_bucket\{method="pf.invite",le="\+Inf"\} 6\n/);
  t.equal(h.count({ method: 'pf.invite' }), 6);
  const plain = new Histogram('y', 'y', [1]);
  plain.observe(2);
  t.match(plain.render(), /y_bucket\{le="\+Inf"\} 1\ny_sum 2\ny_count 1/);
});
