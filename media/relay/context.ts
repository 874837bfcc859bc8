// The relay's options, and what its modules share: limits, the log and the event sink.

import type { ConnectionOptions as TlsConnectOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { ConnectionOptions } from '../msrp/index.js';
import type { HistoryWriter } from '../history/mss.js';
import type { DialOptions } from './dial.js';
import type { RelayEvent } from './types.js';
import type { FrameTrace } from './hep-trace.js';
import type { DeferralOptions } from './deferral.js';

export interface RelayLimits {
  /** Largest chunk taken whole; larger chunks get 413 (RFC 4975 §7.3.1). */
  readonly maxChunk: number;
  /** Bytes kept for a leg that has not connected yet. */
  readonly maxPending: number;
  /** Largest message reassembled for history. */
  readonly maxHistoryMessage: number;
  /** How long history is gathered before one write to the store. */
  readonly historyBatchMs: number;
  /** REPORT mappings kept per session. */
  readonly maxTracked: number;
  /** A destination above this many queued bytes pauses its sources (flow.ts). */
  readonly highWaterMark: number;
}

export interface RelayContext {
  readonly limits: RelayLimits;
  readonly log: Logger | undefined;
  emit(e: RelayEvent): void;
  /** The live view's frame trace (hep-trace.ts); absent: off. */
  readonly trace?: FrameTrace;
}

export interface RelayOptions {
  host?: string;
  /** MSRP listen port; 0 picks a free one. */
  port?: number;
  /**
   * Serve msrps (RFC 4975 §6, TCP/TLS/MSRP) on a second listener with this key and
   * certificate (PEM). Without it, TLS offers are answered with TCP/MSRP and a warning.
   */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** TLS listen port (with `tls`); 0 picks a free one. Default 0. */
  tlsPort?: number;
  /** tls.connect options when the relay dials an msrps peer (docs/media-relay.md, "Dialing out"). */
  tlsClient?: TlsConnectOptions;
  /** Attempts, backoff and timeout when the relay dials a passive originator. */
  dial?: DialOptions;
  /** History (CR 8.5): the LMDB store or the MSS write queue (docs/history.md). */
  store?: HistoryWriter;
  log?: Logger;
  connection?: ConnectionOptions;
  /** Largest chunk taken whole (bytes); larger chunks get 413 (RFC 4975 §7.3.1). Default 4 MiB. */
  maxChunk?: number;
  /** Bytes kept for a leg that has not connected yet. Default 1 MiB. */
  maxPending?: number;
  /** Largest message reassembled for history. Default 4 MiB. */
  maxHistoryMessage?: number;
  /**
   * How long the recorder gathers messages before it hands them to the store in one write
   * (docs/history.md "Where the cost of history goes"). Default 20 ms; 0: at the end of
   * each event-loop turn.
   */
  historyBatchMs?: number;
  /** REPORT mappings kept per session, the oldest forgotten first (the newest maxTracked / 2 at least). Default 4096. */
  maxTracked?: number;
  /** Report frames to the lab's live view (hep-trace.ts). */
  trace?: FrameTrace;
  /** Deferred delivery (docs/deferred.md "In the relay"): its store and sweep; absent: the deferred verbs answer STORE_UNAVAILABLE. */
  deferred?: DeferralOptions;
}

/** The recorder's default gathering time (RelayOptions.historyBatchMs). */
export const DEFAULT_HISTORY_BATCH_MS = 20;

export function limitsOf(o: RelayOptions): RelayLimits {
  return {
    maxChunk: o.maxChunk ?? 4 * 1024 * 1024,
    maxPending: o.maxPending ?? 1024 * 1024,
    maxHistoryMessage: o.maxHistoryMessage ?? 4 * 1024 * 1024,
    historyBatchMs: o.historyBatchMs ?? DEFAULT_HISTORY_BATCH_MS,
    maxTracked: o.maxTracked ?? 4096,
    highWaterMark: o.connection?.highWaterMark ?? 256 * 1024,
  };
}
