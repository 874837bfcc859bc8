/**
 * The live view (docs/lab.md "Live view"): the trace store, its HEP3 collector, and what
 * the page and the JSON routes read: recent calls and their ladders, the sessions in
 * progress, the registered devices. Built by plugin/app.ts when `live.enabled`.
 */
import type { B2buaSessionView } from '../b2bua/b2bua.js';
import type { Logger } from 'pino';
import type { DeviceStore } from '../devices/store.js';
import { deviceKey } from '../devices/identity.js';
import type { Device } from '../devices/types.js';
import { HepCollector } from './collector.js';
import { buildLadder, summary, type LadderContext } from './ladder.js';
import type { Ladder, LiveState, Session, Sessions, UserDevices } from './schema.js';
import { TraceStore } from './store.js';

export interface LiveViewOptions {
  readonly host: string;
  readonly hepPort: number;
  readonly maxCalls: number;
  readonly maxRecords: number;
  readonly kamailio: readonly string[];
  readonly devices: Pick<DeviceStore, 'list' | 'users'>;
  readonly log: Logger;
  /** Epoch ms with a fraction (ordering against Kamailio's microsecond captures). */
  readonly now: () => number;
}

/**
 * Contact parameters that are feature tags (RFC 3840 §9: `+` tags and the base tags);
 * `+sip.instance` is shown as the instance (RFC 5626 §4.1), not as a tag.
 */
const BASE_TAGS = new Set(['audio', 'video', 'text', 'data', 'control', 'application', 'automata', 'class', 'duplex', 'mobility', 'description', 'events', 'priority', 'methods', 'extensions', 'schemes', 'actor', 'isfocus']);

export function featureTags(params: Readonly<Record<string, string | true>>): string[] {
  return Object.entries(params)
    .filter(([k]) => (k.startsWith('+') && k !== '+sip.instance') || BASE_TAGS.has(k))
    .map(([k, v]) => (v === true ? k : `${k}="${v}"`));
}

export class LiveView {
  readonly store: TraceStore;
  readonly collector: HepCollector;
  /** The B2BUA's Via sent-by and call count, once it runs. */
  b2bua: { readonly sentBy: string; readonly calls: () => number; readonly sessions?: () => B2buaSessionView[] } | null = null;

  constructor(private readonly o: LiveViewOptions) {
    this.store = new TraceStore({ maxCalls: o.maxCalls, maxRecords: o.maxRecords, kamailio: o.kamailio });
    this.collector = new HepCollector(this.store, o.log, o.now);
  }

  get hepPort(): number {
    return this.collector.port;
  }

  async start(): Promise<void> {
    if (this.o.hepPort === 0) return;
    const port = await this.collector.listen(this.o.host, this.o.hepPort);
    this.o.log.info({ hepPort: port }, 'live view: HEP collector listening');
  }

  async stop(): Promise<void> {
    await this.collector.close();
  }

  #devices(now: number): Device[] {
    return this.o.devices.users().flatMap((u) => this.o.devices.list(u, now));
  }

  #context(now: number): LadderContext {
    return { isKamailio: (a) => this.store.isKamailio(a), pfSentBy: this.b2bua?.sentBy ?? null, devices: this.#devices(now) };
  }

  ladder(callId: string, now = Date.now()): Ladder | null {
    const call = this.store.get(callId);
    return call ? buildLadder(call, this.#context(now)) : null;
  }

  sessions(now = Date.now()): Sessions {
    const ctx = this.#context(now);
    const sessions: Session[] = this.store.live().map((c) => ({
      callId: c.id, state: c.state, mode: c.decision === null ? null : c.decision.action === 'b2bua' ? 'b2bua' : 'proxy',
      from: c.from, to: c.to, started: c.started, answeredBy: buildLadder(c, ctx).answeredBy, legs: [...c.legs],
    }));
    return { source: 'trace', sessions, b2buaCalls: this.b2bua ? this.b2bua.calls() : null };
  }

  users(now = Date.now()): UserDevices[] {
    return this.o.devices
      .users()
      .map((aor) => ({
        aor,
        devices: this.o.devices.list(aor, now).map((d) => ({
          key: deviceKey(d), instance: d.instance, contact: d.contact, pubGruu: d.pubGruu, tags: featureTags(d.params), expiresAt: d.expiresAt,
        })),
      }))
      .filter((u) => u.devices.length > 0);
  }

  state(now = Date.now()): LiveState {
    const s = this.store.stats;
    const c = this.collector.counts;
    return {
      now, hepPort: this.hepPort, calls: this.store.calls().map(summary), sessions: this.sessions(now), users: this.users(now),
      stats: {
        hepPackets: c.packets, hepBad: c.bad, sip: s.sip, msrp: s.msrp, decisions: s.decisions, untracked: s.untracked + c.ignored,
        unparsed: s.unparsed, dropped: s.dropped, evicted: s.evicted,
      },
    };
  }
}
