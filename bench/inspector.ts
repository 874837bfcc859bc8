/**
 * Memory readings of another Node process for the benchmarks: a full GC, then its
 * `process.memoryUsage()`, over the Chrome DevTools protocol on its `--inspect` WebSocket
 * (Node 20 has no WebSocket client: a minimal RFC 6455 client, text frames only). The
 * process must be started with `--inspect=127.0.0.1:0` (NODE_OPTIONS) so that its output
 * names the URL. Used by bench/b2bua.ts and bench/b2bua-soak.ts.
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Proc } from '../lab/proc.js';

export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/**
 * Full GC in another Node process, then its process.memoryUsage(), over the Chrome
 * DevTools protocol on its `--inspect` WebSocket (Node 20 has no WebSocket client).
 */
const inspectorUrls = new WeakMap<Proc, RegExpExecArray>();

export async function inspectMemory(proc: Proc): Promise<MemoryUsage> {
  // kept per process: a long run's output buffer may no longer hold the first lines
  const url = inspectorUrls.get(proc) ?? /Debugger listening on ws:\/\/([\d.]+):(\d+)(\/\S+)/.exec(proc.output);
  if (!url) throw new Error(`${proc.name}: no inspector URL in its output`);
  inspectorUrls.set(proc, url);
  const sock: Socket = connect(Number(url[2]), url[1]!);
  await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
  let buf = Buffer.alloc(0);
  const pending = new Map<number, (r: unknown) => void>();
  let upgraded = false;
  const opened = new Promise<void>((res, rej) => {
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!/^HTTP\/1\.1 101/.test(buf.subarray(0, end).toString('latin1'))) return rej(new Error('inspector: no upgrade'));
        upgraded = true;
        buf = buf.subarray(end + 4);
        res();
      }
      // server frames are unmasked (RFC 6455 §5.1); the answers here are single frames
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0]! & 0x0f;
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) return;
        const payload = buf.subarray(off, off + len).toString('utf8');
        buf = buf.subarray(off + len);
        if (opcode !== 1) continue;
        const msg = JSON.parse(payload) as { id?: number; result?: unknown };
        if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
      }
    });
  });
  sock.write(
    `GET ${url[3]} HTTP/1.1\r\nHost: ${url[1]}:${url[2]}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  await opened;
  let id = 0;
  const call = (method: string, params: Record<string, unknown> = {}): Promise<unknown> => {
    const n = ++id;
    const body = Buffer.from(JSON.stringify({ id: n, method, params }));
    const mask = randomBytes(4);
    const head =
      body.length < 126
        ? Buffer.from([0x81, 0x80 | body.length])
        : Buffer.from([0x81, 0x80 | 126, body.length >> 8, body.length & 0xff]);
    const masked = Buffer.from(body.map((b, i) => b ^ mask[i % 4]!));
    sock.write(Buffer.concat([head, mask, masked]));
    return new Promise((res) => pending.set(n, res));
  };
  try {
    await call('HeapProfiler.collectGarbage');
    const r = (await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
      result: { value: string };
    };
    return JSON.parse(r.result.value) as MemoryUsage;
  } finally {
    sock.destroy();
  }
}
