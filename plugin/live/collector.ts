/**
 * The live view's HEP3 collector (docs/lab.md "Live view"): a UDP socket on loopback that
 * takes what Kamailio's siptrace mirrors (SIP) and what the MSRP relay sends for its
 * frames (wire/hep3.ts), and files each into the trace store. A packet that is not HEP3,
 * or whose chunks do not fit, is counted and dropped; nothing a packet holds can throw
 * out of here.
 */
import dgram from 'node:dgram';
import type { Logger } from 'pino';
import { decodeHep3, HEP_PROTO_MSRP, HEP_PROTO_SDP, HEP_PROTO_SIP, type HepPacket } from '../../wire/hep3.js';
import type { TraceStore } from './store.js';

export interface CollectorCounts {
  packets: number;
  bad: number;
  /** HEP3 packets of another protocol type, or without a payload. */
  ignored: number;
}

const TRANSPORT: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

function addr(ip: string | null, port: number | null): string {
  const host = ip === null ? '?' : ip.includes(':') ? `[${ip}]` : ip;
  return `${host}:${port ?? 0}`;
}

/** File one decoded packet; the clock gives the time when the packet has none. */
export function fileHep(store: TraceStore, p: HepPacket, now: () => number): boolean {
  if (p.payload === null) return false;
  const t = p.timeMs ?? now();
  if (p.protoType === HEP_PROTO_SIP) {
    store.sip({
      t, src: addr(p.srcIp, p.srcPort), dst: addr(p.dstIp, p.dstPort), transport: TRANSPORT[p.ipProto ?? 17] ?? String(p.ipProto),
      payload: p.payload.toString('utf8'),
    });
    return true;
  }
  if (p.protoType === HEP_PROTO_SDP && p.correlationId !== null) {
    store.relaySession(p.correlationId, t, p.payload.toString('utf8'));
    return true;
  }
  if (p.protoType === HEP_PROTO_MSRP) {
    store.msrp(t, p.payload.toString('utf8'));
    return true;
  }
  return false;
}

export class HepCollector {
  readonly counts: CollectorCounts = { packets: 0, bad: 0, ignored: 0 };
  #socket: dgram.Socket | null = null;
  #port = 0;

  constructor(
    private readonly store: TraceStore,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  get port(): number {
    return this.#port;
  }

  /** One datagram: decoded, filed, or counted as bad. */
  take(msg: Buffer): void {
    this.counts.packets++;
    const d = decodeHep3(msg);
    if (!d.ok) {
      this.counts.bad++;
      if (this.counts.bad <= 10) this.log.warn({ error: d.error, bytes: msg.length }, 'live view: HEP packet dropped');
      return;
    }
    try {
      if (!fileHep(this.store, d.packet, this.now)) this.counts.ignored++;
    } catch (err) {
      // a bug in filing costs the packet, never the service
      this.counts.bad++;
      this.log.error({ err }, 'live view: HEP packet not filed');
    }
  }

  async listen(host: string, port: number): Promise<number> {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.on('message', (m) => this.take(m));
    s.on('error', (err) => this.log.error({ err }, 'live view: HEP socket error'));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, host, () => {
        s.off('error', reject);
        resolve();
      });
    });
    this.#socket = s;
    this.#port = s.address().port;
    return this.#port;
  }

  async close(): Promise<void> {
    const s = this.#socket;
    this.#socket = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
