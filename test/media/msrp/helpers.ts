// Shared test helpers for the MSRP suites.
import { Buffer } from 'node:buffer';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { MsrpFrameParser } from '../../../media/msrp/parser.js';
import type { Frame } from '../../../media/msrp/types.js';

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/msrp');

export function loadFixtures(): Array<{ name: string; raw: Buffer }> {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.msrp'))
    .sort()
    .map((f) => ({ name: f.replace(/\.msrp$/, ''), raw: readFileSync(join(FIXTURE_DIR, f)) }));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Snapshot-friendly view of a frame: UTF-8 bodies as text, others as base64. */
export function describeFrame(f: Frame): Record<string, unknown> {
  let body: string;
  try {
    body = `utf8:${utf8.decode(f.body)}`;
  } catch {
    body = `base64:${f.body.toString('base64')}`;
  }
  const h = f.head;
  return {
    kind: h.kind,
    transactionId: h.transactionId,
    ...(h.kind === 'request' ? { method: h.method } : { status: h.status, comment: h.comment }),
    headers: h.headers.map((x) => `${x.name}: ${x.value}`),
    hasBody: h.hasBody,
    rawHeadBytes: h.raw.length,
    bodyBytes: f.body.length,
    body,
    flag: f.flag,
  };
}

/** A bare TCP peer that speaks raw bytes and parses what comes back. */
export interface RawClient {
  socket: net.Socket;
  frames: Frame[];
  send(data: string | Buffer): void;
  nextFrame(timeoutMs?: number): Promise<Frame>;
  closed(timeoutMs?: number): Promise<void>;
}

export async function rawClient(port: number): Promise<RawClient> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const parser = new MsrpFrameParser({ maxBodySize: 1 << 24 });
  const frames: Frame[] = [];
  let taken = 0;
  const waiters: Array<() => void> = [];
  let isClosed = false;
  socket.on('data', (c: Buffer) => {
    frames.push(...parser.feed(c));
    for (const w of waiters.splice(0)) w();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    isClosed = true;
    for (const w of waiters.splice(0)) w();
  });
  const until = (cond: () => boolean, timeoutMs: number, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout waiting for ${what}`)), timeoutMs);
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else waiters.push(check);
      };
      check();
    });
  return {
    socket,
    frames,
    send: (d) => socket.write(typeof d === 'string' ? Buffer.from(d, 'utf8') : d),
    nextFrame: async (timeoutMs = 3000) => {
      await until(() => frames.length > taken || isClosed, timeoutMs, 'frame');
      if (frames.length <= taken) throw new Error('closed before a frame arrived');
      return frames[taken++]!;
    },
    closed: (timeoutMs = 3000) => until(() => isClosed, timeoutMs, 'close'),
  };
}

/** `MSRP <tid> SEND` to a session, with optional extra headers and body. */
export function sendFrame(tid: string, toSession: string, port: number, extra = '', body?: string): string {
  const head = `MSRP ${tid} SEND\r\nTo-Path: msrp://127.0.0.1:${port}/${toSession};tcp\r\nFrom-Path: msrp://127.0.0.1:1/peer${tid};tcp\r\nMessage-ID: m-${tid}\r\n${extra}`;
  return body === undefined
    ? `${head}-------${tid}$\r\n`
    : `${head}Byte-Range: 1-${Buffer.byteLength(body)}/${Buffer.byteLength(body)}\r\nContent-Type: text/plain\r\n\r\n${body}\r\n-------${tid}$\r\n`;
}

/** Resolve on the first emission of `event`, reject after timeoutMs. */
export function once<T extends unknown[]>(em: { once(ev: string, fn: (...a: T) => void): unknown }, event: string, timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), timeoutMs);
    em.once(event, (...a: T) => {
      clearTimeout(timer);
      resolve(a);
    });
  });
}
