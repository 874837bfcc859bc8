// Load generator shared by the relay benchmark and the relay fuzzer: plain TCP peers
// that speak MSRP through the stack's parser and serializer, with as little per-frame
// work as possible so the relay under test, not the generator, is measured.

import net from 'node:net';
import { MsrpFrameParser, buildRequest, getHeader, serializeFrame, newMessageId, type Frame } from '../media/msrp/index.js';

export interface PeerStats {
  sends: number;
  bytes: number;
  responses: number;
  reports: number;
  /** Messages completed (last chunk seen), by Message-ID. */
  messages: number;
}

/** A raw MSRP peer over one TCP connection. */
export class LoadPeer {
  readonly stats: PeerStats = { sends: 0, bytes: 0, responses: 0, reports: 0, messages: 0 };
  /** Transaction ids waiting for their hop-by-hop response. */
  private readonly waiting = new Map<string, () => void>();
  private readonly parser = new MsrpFrameParser({ maxBodySize: 64 * 1024 * 1024 });
  private watchers: Array<{ check: () => boolean; resolve: () => void }> = [];
  onFrame?: (f: Frame) => void;
  /** Answer each SEND with 200 (as a real endpoint does). */
  answer = true;
  closed = false;

  private constructor(readonly socket: net.Socket, readonly localUri: string) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      this.poke();
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number, uriFor: (localPort: number) => string): Promise<LoadPeer> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new LoadPeer(socket, uriFor(socket.localPort ?? 0));
  }

  private onData(d: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.parser.feed(d);
    } catch {
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      if (f.head.kind === 'response') {
        this.stats.responses += 1;
        const w = this.waiting.get(f.head.transactionId);
        if (w) {
          this.waiting.delete(f.head.transactionId);
          w();
        }
      } else if (f.head.method === 'SEND') {
        this.stats.sends += 1;
        this.stats.bytes += f.body.length;
        if (f.flag === '$') this.stats.messages += 1;
        if (this.answer) {
          const from = getHeader(f.head.headers, 'From-Path') ?? '';
          const first = from.split(' ')[0] ?? '';
          this.socket.write(`MSRP ${f.head.transactionId} 200 OK\r\nTo-Path: ${first}\r\nFrom-Path: ${this.localUri}\r\n-------${f.head.transactionId}$\r\n`);
        }
      } else if (f.head.method === 'REPORT') {
        this.stats.reports += 1;
      }
      this.onFrame?.(f);
    }
    this.poke();
  }

  private poke(): void {
    if (this.watchers.length === 0) return;
    this.watchers = this.watchers.filter(w => {
      if (!w.check() && !this.closed) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolve when check() holds (re-evaluated on each inbound batch), or reject after ms. */
  until(check: () => boolean, ms: number, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout waiting for ${what}`)), ms);
      this.watchers.push({
        check,
        resolve: () => {
          clearTimeout(timer);
          if (check()) resolve();
          else reject(new Error(`connection closed waiting for ${what}`));
        },
      });
    });
  }

  /** Send a frame; resolves on its hop-by-hop response. */
  request(frame: Frame): Promise<void> {
    return new Promise(resolve => {
      this.waiting.set(frame.head.transactionId, resolve);
      this.socket.write(serializeFrame(frame));
    });
  }

  write(b: Buffer | string): boolean {
    return this.socket.write(b);
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface BlastOptions {
  count: number;
  /** Pre-built body of every message. */
  body: Buffer;
  contentType: string;
  toPath: string;
  fromPath: string;
  /** SENDs in flight before waiting for a 200. */
  window: number;
}

/**
 * Send `count` single-chunk messages, keeping `window` SENDs in flight, each released
 * by its hop-by-hop 200. Frames are pre-serialized per message-id to keep the sender cheap.
 */
export async function blast(peer: LoadPeer, o: BlastOptions): Promise<void> {
  let next = 0;
  await new Promise<void>(resolve => {
    let inFlight = 0;
    let done = 0;
    const pump = (): void => {
      while (inFlight < o.window && next < o.count) {
        next += 1;
        inFlight += 1;
        const f = buildRequest({
          method: 'SEND', toPath: o.toPath, fromPath: o.fromPath,
          headers: [
            { name: 'Message-ID', value: newMessageId() },
            { name: 'Byte-Range', value: `1-${o.body.length}/${o.body.length}` },
          ],
          contentType: o.contentType, body: o.body,
        });
        void peer.request(f).then(() => {
          inFlight -= 1;
          done += 1;
          if (done === o.count) resolve();
          else pump();
        });
      }
    };
    pump();
  });
}

/** Send one message in chunks of `chunk` bytes, each chunk awaiting its 200. */
export async function sendChunked(peer: LoadPeer, body: Buffer, chunk: number, toPath: string, fromPath: string, contentType: string): Promise<string> {
  const messageId = newMessageId();
  for (let off = 0; off < body.length; off += chunk) {
    const end = Math.min(body.length, off + chunk);
    await peer.request(buildRequest({
      method: 'SEND', toPath, fromPath,
      headers: [{ name: 'Message-ID', value: messageId }, { name: 'Byte-Range', value: `${off + 1}-${end}/${body.length}` }],
      contentType, body: body.subarray(off, end), flag: end === body.length ? '$' : '+',
    }));
  }
  return messageId;
}
