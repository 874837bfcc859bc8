/**
 * Dialog events from Kamailio's `evapi` module (`pf.cfg` with `PF_DIALOG_EVAPI`,
 * docs/jsonrpc.md "Dialog events over evapi"): the service connects to each configured
 * Kamailio endpoint and reads netstring frames, each the params of one `pf.dialog`.
 * evapi sends every event to every connected client, so every service instance tracks
 * every session (CR 8.3.2.1 step 9), and Kamailio relays the frame without parsing it.
 * A lost connection is retried with a doubling delay (100 ms up to 5 s).
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { NetstringDecoder } from '../rpc/netstring.js';
import { checkDialog, type DialogEvent } from '../rpc/methods.js';
import type { EvapiEndpoint } from './endpoint.js';

export type { DialogEvent };

export interface EvapiClientOptions {
  readonly endpoints: readonly EvapiEndpoint[];
  readonly maxFrameBytes: number;
  readonly log: Logger;
  /** A valid dialog event. */
  readonly onEvent: (e: DialogEvent) => void;
  /** A frame that is not a dialog event (counted, then dropped). */
  readonly onInvalid: (reason: string) => void;
}

const MIN_DELAY_MS = 100;
const MAX_DELAY_MS = 5000;

class Link {
  private socket: net.Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private delay = MIN_DELAY_MS;
  private stopped = false;
  connected = false;

  constructor(
    private readonly ep: EvapiEndpoint,
    private readonly opts: EvapiClientOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.socket?.destroy();
    this.socket = null;
    this.connected = false;
  }

  private connect(): void {
    const socket = net.connect({ host: this.ep.host, port: this.ep.port });
    this.socket = socket;
    const decoder = new NetstringDecoder(this.opts.maxFrameBytes);
    socket.setNoDelay(true);
    socket.on('connect', () => {
      this.connected = true;
      this.delay = MIN_DELAY_MS;
      this.log.info('evapi connected');
    });
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) this.frame(frame);
      if (decoder.error) {
        this.log.warn({ code: decoder.error.code }, 'evapi: malformed netstring, reconnecting');
        this.opts.onInvalid('framing');
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.log.debug({ err }, 'evapi socket error'));
    socket.on('close', () => {
      if (this.connected) this.log.warn('evapi connection lost');
      this.connected = false;
      if (this.socket === socket) this.socket = null;
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.stopped) this.connect();
      }, this.delay);
      this.timer.unref();
      this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    });
  }

  private frame(frame: Buffer): void {
    let value: unknown;
    try {
      value = JSON.parse(frame.toString('utf8'));
    } catch {
      this.opts.onInvalid('json');
      return;
    }
    if (!checkDialog.Check(value)) {
      this.opts.onInvalid('schema');
      return;
    }
    this.opts.onEvent(value);
  }
}

/** One link per Kamailio evapi endpoint. */
export class EvapiDialogClient {
  private readonly links: Link[];

  constructor(opts: EvapiClientOptions) {
    this.links = opts.endpoints.map(
      (ep) => new Link(ep, opts, opts.log.child({ evapi: `${ep.host}:${String(ep.port)}` })),
    );
  }

  /** Endpoints connected now. */
  get connected(): number {
    let n = 0;
    for (const l of this.links) if (l.connected) n++;
    return n;
  }

  start(): void {
    for (const l of this.links) l.start();
  }

  stop(): void {
    for (const l of this.links) l.stop();
  }
}
