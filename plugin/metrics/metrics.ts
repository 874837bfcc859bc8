/**
 * A small Prometheus registry (text exposition format 0.0.4): counters and histograms
 * with labels. Enough for /metrics without a dependency.
 */

type Labels = Readonly<Record<string, string>>;

/** `a="1",b="2"`: names sorted, values escaped. Called per observation: no array work beyond the names. */
function labelKey(labels: Labels): string {
  const names = Object.keys(labels);
  if (names.length > 1) names.sort();
  let key = '';
  for (const n of names) {
    if (key !== '') key += ',';
    key += `${n}="${escapeLabel(labels[n] as string)}"`;
  }
  return key;
}

/**
 * labelKey, remembered per label set: a metric's observations repeat a few label sets
 * (method and outcome, action and stage). The probe is the names and values in
 * insertion order, separated by NUL (no label name has one; a value with one is not
 * remembered).
 */
const labelKeys = new Map<string, string>();
const MAX_LABEL_KEYS = 4096;

function cachedLabelKey(labels: Labels): string {
  let probe = '';
  for (const n in labels) {
    const v = labels[n] as string;
    // a value with a NUL could make two label sets one probe
    if (v.includes('\0')) return labelKey(labels);
    probe += `${n}\0${v}\0`;
  }
  let key = labelKeys.get(probe);
  if (key === undefined) {
    key = labelKey(labels);
    if (labelKeys.size < MAX_LABEL_KEYS) labelKeys.set(probe, key);
  }
  return key;
}

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeLabel(v: string): string {
  if (!NEEDS_ESCAPE.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const k = cachedLabelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${v}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}

  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${this.read()}`].join(
      '\n',
    );
  }
}

interface HistogramSeries {
  readonly counts: number[];
  sum: number;
  count: number;
}

export class Histogram implements Metric {
  private readonly series = new Map<string, HistogramSeries>();
  constructor(
    readonly name: string,
    readonly help: string,
    /** Upper bounds, ascending, in the metric's unit. */
    readonly buckets: readonly number[],
  ) {}

  observe(value: number, labels: Labels = {}): void {
    const k = cachedLabelKey(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= (this.buckets[i] as number)) {
        s.counts[i] = (s.counts[i] as number) + 1;
        break;
      }
    }
    s.sum += value;
    s.count += 1;
  }

  count(labels: Labels = {}): number {
    return this.series.get(labelKey(labels))?.count ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : '';
      let cum = 0;
      this.buckets.forEach((b, i) => {
        cum += s.counts[i] as number;
        lines.push(`${this.name}_bucket{${sep}le="${b}"} ${cum}`);
      });
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ''} ${s.sum}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`);
    }
    return lines.join('\n');
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  register<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }

  render(): string {
    return `${this.metrics.map((m) => m.render()).join('\n')}\n`;
  }
}

/** The service's metrics (names documented in docs/service.md). */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly rpcRequests = this.registry.register(
    new Counter('pf_rpc_requests_total', 'JSON-RPC requests by method and outcome (ok, error code)'),
  );
  readonly rpcFramingErrors = this.registry.register(
    new Counter('pf_rpc_framing_errors_total', 'Connections closed for a malformed netstring'),
  );
  readonly rpcRefused = this.registry.register(
    new Counter('pf_rpc_connections_refused_total', 'JSON-RPC connections closed on accept, by reason (peer not allowed, limit)'),
  );
  readonly decisions = this.registry.register(
    new Counter('pf_decisions_total', 'pf.invite decisions by action and stage'),
  );
  readonly decisionSeconds = this.registry.register(
    new Histogram('pf_decision_duration_seconds', 'Time to handle a JSON-RPC request, by method', [
      // 1-5 ms finely: the proxy bench interpolates pf.invite's p99 (target 2 ms) in these.
      0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
    ]),
  );
  readonly registers = this.registry.register(
    new Counter('pf_register_total', 'pf.register requests by kind (register, refresh, deregister)'),
  );
  readonly xdmLoads = this.registry.register(
    new Counter('pf_xdm_documents_total', 'XDM document loads by auid and outcome'),
  );

  /** Gauges read at scrape time (the wiring supplies the readers). */
  gauge(name: string, help: string, read: () => number): void {
    this.registry.register(new Gauge(name, help, read));
  }
}
