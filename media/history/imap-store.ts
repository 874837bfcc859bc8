// The Message Storage Server client over IMAP (RFC 3501; CR 8.5; docs/history.md): the
// layout of mss.ts on a real IMAP server, through imapflow (docs/decisions/0002-mss-imap-client.md).
//
// One connection, one operation at a time, each bounded by `commandTimeoutMs`. A connection
// that errs, closes or times out is dropped, and the next operation opens a new one
// (an ImapFlow instance is single use). Failures are MssError: `permanent` when retrying
// the same request cannot help (docs/history.md "Errors"). Writes are not queued here:
// the relay writes through the write queue (queue.ts), which retries.

import type { Logger } from 'pino';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { ImapFlow, type ImapFlowError } from 'imapflow';
import { componentProblem, decodeComponent, encodeComponent } from './mailbox-name.js';
import {
  formatSessionInfo, MssError, SESSION_INFO_TYPE,
  type AppendItem, type AppendOptions, type FolderRef, type MessageStore, type SessionInfo, type StoredObject,
} from './mss.js';
import { buildObject, parseObject } from './object.js';

export interface ImapStoreOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  /** `tls`: implicit TLS (imaps); `starttls`: required upgrade; `none`: plain (loopback tests). Default `starttls`. */
  tls?: 'none' | 'starttls' | 'tls';
  /** tls.connect options (ca, servername, rejectUnauthorized). */
  tlsOptions?: TlsOptions;
  /** Longest wait for one operation, connecting included. Default 10 s. */
  commandTimeoutMs?: number;
  /** Largest object stored or read back whole. Default 8 MiB. */
  maxObjectBytes?: number;
  log?: Logger;
}

/** Session folders whose info object UID is kept in memory. */
const INFO_CACHE = 10_000;

/** Server response codes (RFC 5530) after which the same command cannot succeed. */
const PERMANENT_CODES = new Set(['CANNOT', 'TOOBIG', 'LIMIT', 'BADCHARSET', 'PARSE', 'CLIENTBUG', 'NOPERM']);

function isImapError(err: unknown): err is ImapFlowError {
  return err instanceof Error;
}

/** An imapflow or socket error as MssError. */
export function classifyImapError(what: string, err: unknown): MssError {
  if (err instanceof MssError) return err;
  if (!isImapError(err)) return new MssError(`${what}: ${String(err)}`, false, err);
  const code = err.serverResponseCode?.toUpperCase();
  const status = err.responseStatus?.toUpperCase();
  // BAD: the server did not accept the command as sent; sending it again will not change that.
  const permanent = status === 'BAD' || (status === 'NO' && code !== undefined && PERMANENT_CODES.has(code));
  const detail = err.responseText ?? err.message;
  return new MssError(`${what}: ${status ? `${status}${code ? ` [${code}]` : ''} ` : ''}${detail}`, permanent, err);
}

export class ImapMessageStore implements MessageStore {
  private conn: ImapFlow | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Session info object UIDs found or stored (CR 8.5: kept once the folder exists). */
  private readonly infoUids = new Map<string, number>();
  private readonly timeoutMs: number;
  private readonly maxObject: number;

  constructor(private readonly o: ImapStoreOptions) {
    this.timeoutMs = o.commandTimeoutMs ?? 10_000;
    this.maxObject = o.maxObjectBytes ?? 8 * 1024 * 1024;
  }

  async ensureSessionFolder(ref: FolderRef, info: SessionInfo): Promise<{ created: boolean; infoUid: number }> {
    const path = this.path(ref);
    const cacheKey = path.join('\0');
    return this.op('ensure folder', async c => {
      const known = this.infoUids.get(cacheKey);
      if (known !== undefined) return { created: false, infoUid: known };
      // CR 8.5 step 8a: look the folder up before creating it.
      if (await this.exists(c, path)) {
        const uid = await this.searchHeader(c, path, 'content-type', SESSION_INFO_TYPE);
        if (uid !== undefined) {
          this.remember(cacheKey, uid);
          return { created: false, infoUid: uid };
        }
        // The folder without its info object: an earlier attempt stopped between CREATE and APPEND.
      } else {
        await this.create(c, path);
      }
      const raw = buildObject(ref, SESSION_INFO_TYPE, Buffer.from(formatSessionInfo(ref, info), 'utf8'), {
        ...(info.from ? { from: info.from } : {}), ...(info.to ? { to: info.to } : {}),
        ...(info.startedAt ? { date: new Date(info.startedAt) } : {}),
      });
      const uid = await this.appendRaw(c, path, raw);
      this.remember(cacheKey, uid);
      return { created: true, infoUid: uid };
    });
  }

  async append(ref: FolderRef, contentType: string, data: Buffer, opts: AppendOptions = {}): Promise<number> {
    const path = this.path(ref);
    const raw = buildObject(ref, contentType, data, opts);
    if (raw.length > this.maxObject) {
      throw new MssError(`object of ${raw.length} bytes is over the ${this.maxObject}-byte limit`, true);
    }
    return this.op('append', async c => {
      if (opts.key !== undefined && opts.retry) {
        const had = await this.searchHeader(c, path, 'message-id', `<${opts.key}>`);
        if (had !== undefined) return had;
      }
      return this.appendRaw(c, path, raw);
    });
  }

  /** One APPEND after the other, in order (a failure stops there: the objects before it are stored). */
  async appendMany(items: readonly AppendItem[]): Promise<number[]> {
    const uids: number[] = [];
    for (const it of items) uids.push(await this.append(it.ref, it.contentType, it.data, it.opts));
    return uids;
  }

  async list(ref: FolderRef): Promise<StoredObject[]> {
    const path = this.path(ref);
    return this.op('list', async c => {
      if (!(await this.exists(c, path))) return [];
      const lock = await c.getMailboxLock(path);
      try {
        // A mailbox selected earlier on this connection: NOOP makes the server report what was appended since (RFC 3501 §6.1.2).
        await c.noop();
        const out: StoredObject[] = [];
        const heads = await c.fetchAll('1:*', { uid: true, size: true, internalDate: true });
        for (const m of heads.sort((a, b) => a.uid - b.uid)) {
          const storedAt = m.internalDate instanceof Date ? m.internalDate.toISOString() : new Date(String(m.internalDate)).toISOString();
          if ((m.size ?? 0) > this.maxObject) {
            out.push({ uid: m.uid, contentType: '', data: Buffer.alloc(0), storedAt, problem: 'too-large' });
            continue;
          }
          const full = await c.fetchOne(String(m.uid), { uid: true, source: true }, { uid: true });
          const parsed = full && full.source ? parseObject(full.source) : undefined;
          if (!parsed) {
            out.push({ uid: m.uid, contentType: '', data: Buffer.alloc(0), storedAt, problem: 'malformed' });
            continue;
          }
          out.push({
            uid: m.uid, contentType: parsed.contentType, data: parsed.data, storedAt,
            ...(parsed.key !== undefined ? { key: parsed.key } : {}),
          });
        }
        return out;
      } finally {
        lock.release();
      }
    });
  }

  async sessions(conversationId: string): Promise<string[]> {
    const conv = this.component(conversationId);
    return this.op('sessions', async c => {
      const all = await c.list();
      const out: string[] = [];
      for (const m of all) {
        if (m.parent.length === 0 || m.parent[m.parent.length - 1] !== conv) continue;
        if (m.parent.length > 1 && m.parentPath !== [...this.prefixParts(c), conv].join(m.delimiter)) continue;
        const id = decodeComponent(m.name);
        if (id !== undefined) out.push(id);
      }
      return out.sort();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain.catch(() => undefined);
    const c = this.conn;
    this.conn = undefined;
    if (!c) return;
    await Promise.race([c.logout().catch(() => undefined), new Promise(r => setTimeout(r, 1000).unref())]);
    c.close();
  }

  // ---- internals

  /** Keep a folder's info UID; the oldest are forgotten past INFO_CACHE (found again by SEARCH). */
  private remember(key: string, uid: number): void {
    this.infoUids.delete(key);
    this.infoUids.set(key, uid);
    if (this.infoUids.size > INFO_CACHE) this.infoUids.delete(this.infoUids.keys().next().value ?? '');
  }

  private component(id: string): string {
    const problem = componentProblem(id);
    if (problem) throw new MssError(`folder name for ${JSON.stringify(id.slice(0, 64))}: ${problem}`, true);
    return encodeComponent(id);
  }

  private path(ref: FolderRef): string[] {
    return [this.component(ref.conversationId), this.component(ref.contributionId)];
  }

  private prefixParts(c: ImapFlow): string[] {
    const ns = c.namespace;
    if (!ns?.prefix || !ns.delimiter) return [];
    return ns.prefix.split(ns.delimiter).filter(p => p !== '');
  }

  /** Operations one at a time, in call order. */
  private op<T>(what: string, fn: (c: ImapFlow) => Promise<T>): Promise<T> {
    const run = this.chain.then(() => this.run(what, fn));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async run<T>(what: string, fn: (c: ImapFlow) => Promise<T>): Promise<T> {
    if (this.closed) throw new MssError(`${what}: store closed`, false);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new MssError(`${what}: no answer within ${this.timeoutMs} ms`, false)), this.timeoutMs);
    });
    try {
      const c = await Promise.race([this.client(), timeout]);
      return await Promise.race([fn(c), timeout]);
    } catch (err) {
      const e = classifyImapError(what, err);
      // A slow or broken connection is not reused; the next operation opens a new one.
      if (!e.permanent) this.drop();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private async client(): Promise<ImapFlow> {
    if (this.conn?.usable) return this.conn;
    this.drop();
    const tls = this.o.tls ?? 'starttls';
    const c = new ImapFlow({
      host: this.o.host,
      port: this.o.port,
      secure: tls === 'tls',
      doSTARTTLS: tls === 'starttls' ? true : tls === 'none' ? false : undefined,
      ...(this.o.tlsOptions ? { tls: this.o.tlsOptions } : {}),
      auth: { user: this.o.user, pass: this.o.password },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: this.timeoutMs,
      greetingTimeout: this.timeoutMs,
      socketTimeout: Math.max(this.timeoutMs * 3, 30_000),
      maxLiteralSize: this.maxObject + 64 * 1024,
    });
    c.on('error', (err: unknown) => {
      this.o.log?.warn({ err }, 'MSS connection error');
      if (this.conn === c) this.conn = undefined;
    });
    c.on('close', () => {
      if (this.conn === c) this.conn = undefined;
    });
    this.conn = c;
    try {
      await c.connect();
    } catch (err) {
      if (this.conn === c) this.conn = undefined;
      c.close();
      throw err;
    }
    return c;
  }

  private drop(): void {
    const c = this.conn;
    this.conn = undefined;
    c?.close();
  }

  private async exists(c: ImapFlow, path: string[]): Promise<boolean> {
    try {
      const st = await c.status(path, { messages: true });
      return st !== false;
    } catch (err) {
      // imapflow answers a missing mailbox with code NotFound (after its own LIST), or the server's NO [NONEXISTENT].
      if (isImapError(err) && (err.code === 'NotFound' || err.serverResponseCode?.toUpperCase() === 'NONEXISTENT')) return false;
      throw err;
    }
  }

  private async create(c: ImapFlow, path: string[]): Promise<void> {
    // The conversation folder first, so it is a real (selectable) folder, then the session's.
    await c.mailboxCreate(path.slice(0, 1));
    await c.mailboxCreate(path);
  }

  private async appendRaw(c: ImapFlow, path: string[], raw: Buffer): Promise<number> {
    let r;
    try {
      r = await c.append(path, raw);
    } catch (err) {
      // RFC 3501 §6.3.11: TRYCREATE: the folder went away; create it and try once more.
      if (!isImapError(err) || err.serverResponseCode?.toUpperCase() !== 'TRYCREATE') throw err;
      await this.create(c, path);
      r = await c.append(path, raw);
    }
    if (!r) throw new MssError('append: connection not usable', false);
    if (r.uid !== undefined) return r.uid;
    // Without UIDPLUS (RFC 4315) the UID is the highest one now.
    const lock = await c.getMailboxLock(path);
    try {
      const last = await c.fetchOne('*', { uid: true });
      if (!last) throw new MssError('append: no UID after APPEND', false);
      return last.uid;
    } finally {
      lock.release();
    }
  }

  /** UID of the first object whose header `name` holds `value`, or undefined. */
  private async searchHeader(c: ImapFlow, path: string[], name: string, value: string): Promise<number | undefined> {
    if (!(await this.exists(c, path))) return undefined;
    const lock = await c.getMailboxLock(path);
    try {
      await c.noop();
      const uids = await c.search({ header: { [name]: value } }, { uid: true });
      return uids && uids.length > 0 ? Math.min(...uids) : undefined;
    } finally {
      lock.release();
    }
  }
}
