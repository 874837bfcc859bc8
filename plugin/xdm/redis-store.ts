/**
 * The XCAP documents on the shared-state engine (docs/decisions/0003-shared-state-engine.md),
 * for several service instances: same DocumentStore contract as the lmdb store
 * (plugin/xdm/store.ts).
 *
 * - Key: `<prefix>:xcap:{<base64url(xui)>}:<base64url(auid)>:<base64url(document)>`,
 *   value: the StoredDocument as JSON (body, strong ETag, MIME type, time). The hash tag
 *   keeps a user's documents in one cluster slot. No TTL: documents live until deleted.
 * - Reads (`get`, `etag`) are synchronous from an in-memory copy of every document,
 *   loaded at start; each write publishes the key's tail on `<prefix>:changed:xcap`, and
 *   every instance reads that document again: a PUT through one instance takes effect
 *   on the others as soon as the notice arrives (the embedded XDM source drops its parsed
 *   document when the ETag changes). No polling.
 * - Engine down: reads answer from the copy, writes fail with SharedStateError.
 */
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { checkedDocument, type DocumentStore, type StoredDocument } from './store.js';
import { CAS_ATTEMPTS, SharedStateError, fromKeyPart, keyPart, type SharedEngine } from '../shared-state/redis.js';

const StoredDocumentSchema = Type.Object({
  body: Type.String(),
  etag: Type.String(),
  mime: Type.String(),
  updatedAt: Type.Number(),
});

// the schema and the StoredDocument type must stay the same shape
const sameShape: (d: StoredDocument) => typeof StoredDocumentSchema.static = (d) => d;
void sameShape;

export interface RedisDocumentStoreOptions {
  readonly maxBytes: number;
  readonly prefix?: string;
  /** A stored value that does not pass the schema (skipped: no document). */
  readonly onBadRecord?: (key: string, why: string) => void;
}

/** Where a document is, as the copy indexes it. */
function copyKey(auid: string, xui: string, doc: string): string {
  return `${keyPart(xui)}:${keyPart(auid)}:${keyPart(doc)}`;
}

export class RedisDocumentStore implements DocumentStore {
  private open = true;
  /** Every document, by copyKey. */
  private readonly copy = new Map<string, StoredDocument>();
  private readonly changeListeners = new Set<(auid: string, xui: string, doc: string) => void>();
  private readonly prefix: string;
  readonly maxBytes: number;

  private constructor(
    private readonly engine: SharedEngine,
    private readonly opts: RedisDocumentStoreOptions,
  ) {
    this.prefix = opts.prefix ?? 'pf';
    this.maxBytes = opts.maxBytes;
  }

  /** Subscribe to change notices, then load every document. */
  static async open(engine: SharedEngine, opts: RedisDocumentStoreOptions): Promise<RedisDocumentStore> {
    const s = new RedisDocumentStore(engine, opts);
    await engine.subscribe(s.channel, (notice) => void s.refresh(notice).catch(() => undefined));
    engine.onResync(() => void s.reload().catch(() => undefined));
    await s.reload();
    return s;
  }

  get isOpen(): boolean {
    return this.open;
  }

  private get channel(): string {
    return `${this.prefix}:changed:xcap`;
  }

  /** `<prefix>:xcap:{xui}:auid:doc`, from the copy's key `xui:auid:doc`. */
  private key(ck: string): string {
    const i = ck.indexOf(':');
    return `${this.prefix}:xcap:{${ck.slice(0, i)}}${ck.slice(i)}`;
  }

  /** Called with each document that changed here or on another instance (tests, metrics). */
  onChange(listener: (auid: string, xui: string, doc: string) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private decode(key: string, raw: string | null): StoredDocument | undefined {
    if (raw === null) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      this.opts.onBadRecord?.(key, 'not JSON');
      return undefined;
    }
    if (!Value.Check(StoredDocumentSchema, parsed)) {
      this.opts.onBadRecord?.(key, 'does not match the document schema');
      return undefined;
    }
    return parsed;
  }

  private set(ck: string, doc: StoredDocument | undefined): void {
    if (doc) this.copy.set(ck, doc);
    else this.copy.delete(ck);
    const [xui, auid, name] = ck.split(':').map(fromKeyPart);
    if (xui === undefined || auid === undefined || name === undefined) return;
    for (const l of this.changeListeners) l(auid, xui, name);
  }

  /** `ck` from a notice: three base64url parts. */
  private async refresh(ck: string): Promise<void> {
    if (!this.open || !/^[\w-]*:[\w-]*:[\w-]*$/.test(ck)) return;
    const key = this.key(ck);
    this.set(ck, this.decode(key, await this.engine.get(key)));
  }

  private async reload(): Promise<void> {
    const prefix = `${this.prefix}:xcap:{`;
    const seen = new Set<string>();
    for await (const keys of this.engine.scan(`${prefix}*`)) {
      for (const key of keys) {
        const m = /^\{([\w-]*)\}(:[\w-]*:[\w-]*)$/.exec(key.slice(prefix.length - 1));
        if (!key.startsWith(prefix) || !m) continue;
        const ck = `${m[1]}${m[2]}`;
        seen.add(ck);
        await this.refresh(ck);
      }
    }
    for (const ck of [...this.copy.keys()]) if (!seen.has(ck)) this.set(ck, undefined);
  }

  get(auid: string, xui: string, doc: string): StoredDocument | undefined {
    return this.copy.get(copyKey(auid, xui, doc));
  }

  etag(auid: string, xui: string, doc: string): string | undefined {
    return this.copy.get(copyKey(auid, xui, doc))?.etag;
  }

  async put(auid: string, xui: string, doc: string, body: string, now: number): Promise<StoredDocument> {
    this.assertOpen();
    const stored = checkedDocument(auid, body, this.maxBytes, now);
    await this.write(copyKey(auid, xui, doc), stored);
    return stored;
  }

  async delete(auid: string, xui: string, doc: string): Promise<boolean> {
    this.assertOpen();
    return this.write(copyKey(auid, xui, doc), undefined);
  }

  /** Compare-and-set until it lands; resolves with whether there was a document before. */
  private async write(ck: string, next: StoredDocument | undefined): Promise<boolean> {
    const key = this.key(ck);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const raw = await this.engine.get(key);
      if (raw === null && next === undefined) {
        this.set(ck, undefined);
        return false;
      }
      if (await this.engine.cas(key, raw, next ? JSON.stringify(next) : null, 0, this.channel, ck)) {
        this.set(ck, next);
        return raw !== null;
      }
    }
    throw new SharedStateError(`document store: ${CAS_ATTEMPTS} concurrent writers on one document, gave up`);
  }

  private assertOpen(): void {
    if (!this.open) throw new Error('xcap store is closed');
  }

  close(): Promise<void> {
    this.open = false;
    this.changeListeners.clear();
    return Promise.resolve();
  }
}
