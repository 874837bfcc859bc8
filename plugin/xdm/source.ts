/**
 * How the PF reads a served user's two XDM documents (CR 8.4.1): from the embedded
 * store in-process (default), or over XCAP from an external XDMS. Parsed documents are
 * cached by ETag, so the INVITE path does not re-parse XML. A document that fails to
 * parse or has the wrong schema leaves the last good one in force, with a warning
 * (docs/policy.md "XDM documents").
 */
import type { Logger } from 'pino';
import { AUIDS, checkDocument, type DocumentStore } from './store.js';
import { XcapClientError, type XcapClient } from './client.js';
import { parseBlacklist, parseRuleset, type Blacklist, type Ruleset } from './documents.js';
import type { ServiceMetrics } from '../metrics/metrics.js';
import type { XdmUnavailableErrorCode } from '../errors.js';

const BLACKLIST_AUID = 'resource-lists';
const RULES_AUID = 'org.openmobilealliance.access-rules';

export interface UserDocs {
  readonly blacklist: Blacklist | null;
  readonly ruleset: Ruleset | null;
}

/** Thrown when a document cannot be obtained and no good copy is cached (JSON-RPC -32001). */
export class XdmUnavailableError extends Error {
  override readonly name = 'XdmUnavailableError';
  readonly code: XdmUnavailableErrorCode = 'XDM_UNAVAILABLE';
}

interface Cached<T> {
  /** ETag of the document the parsed value came from (null when absent). */
  readonly etag: string | null;
  readonly value: T | null;
  /** When the document was last checked against its source (external only). */
  readonly checkedAt: number;
}

export interface XdmSourceOptions {
  readonly document: string;
  readonly blacklistList: string;
  readonly maxBytes: number;
  readonly log: Logger;
  readonly metrics: ServiceMetrics;
}

/** Parsed documents kept per AUID (the oldest user's entry goes first). */
const MAX_CACHED = 100_000;

function remember<T>(cache: Map<string, Cached<T>>, xui: string, entry: Cached<T>): void {
  if (cache.size >= MAX_CACHED && !cache.has(xui)) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(xui, entry);
}

abstract class CachingSource {
  protected readonly blacklists = new Map<string, Cached<Blacklist>>();
  protected readonly rulesets = new Map<string, Cached<Ruleset>>();

  constructor(protected readonly opts: XdmSourceOptions) {}

  /** Parse a document body; on failure keep `last` (logged), return it. */
  protected parse<T>(
    auid: string,
    xui: string,
    etag: string | null,
    body: string,
    last: Cached<T> | undefined,
    now: number,
  ): Cached<T> {
    const def = AUIDS[auid];
    try {
      if (!def) throw new Error(`unknown auid ${auid}`);
      const root = checkDocument(def, body, this.opts.maxBytes);
      const value =
        auid === BLACKLIST_AUID ? parseBlacklist(root, this.opts.blacklistList) : parseRuleset(root);
      this.opts.metrics.xdmLoads.inc({ auid, outcome: 'parsed' });
      return { etag, value: value as T, checkedAt: now };
    } catch (err) {
      this.opts.metrics.xdmLoads.inc({ auid, outcome: 'rejected' });
      this.opts.log.warn(
        { err, auid, xui, etag, keeping: last?.etag ?? null },
        'xdm document rejected, last good document stays in force',
      );
      // Remember the bad ETag so it is not re-parsed on every request.
      return { etag, value: last?.value ?? null, checkedAt: now };
    }
  }
}

/**
 * The embedded store, read synchronously. Each load reads only the two ETags; a
 * document is fetched and parsed only when its ETag changed (also when another
 * instance sharing `dataDir` changed it).
 */
export class EmbeddedXdmSource extends CachingSource {
  constructor(
    private readonly store: DocumentStore,
    opts: XdmSourceOptions,
  ) {
    super(opts);
  }

  load(xui: string, now: number): UserDocs {
    return {
      blacklist: this.one(BLACKLIST_AUID, xui, this.blacklists, now),
      ruleset: this.one(RULES_AUID, xui, this.rulesets, now),
    };
  }

  private one<T>(auid: string, xui: string, cache: Map<string, Cached<T>>, now: number): T | null {
    const cached = cache.get(xui);
    const etag = this.store.etag(auid, xui, this.opts.document) ?? null;
    if (cached && cached.etag === etag) return cached.value;
    const stored = etag === null ? undefined : this.store.get(auid, xui, this.opts.document);
    let next: Cached<T>;
    if (!stored) next = { etag: null, value: null, checkedAt: now };
    else next = this.parse<T>(auid, xui, stored.etag, stored.body, cached, now);
    remember(cache, xui, next);
    return next.value;
  }
}

/** An external XDMS over XCAP; documents are revalidated after `ttlMs`. */
export class RemoteXdmSource extends CachingSource {
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly client: XcapClient,
    private readonly ttlMs: number,
    opts: XdmSourceOptions,
  ) {
    super(opts);
  }

  async load(xui: string, now: number): Promise<UserDocs> {
    const [blacklist, ruleset] = await Promise.all([
      this.one(BLACKLIST_AUID, xui, this.blacklists, now),
      this.one(RULES_AUID, xui, this.rulesets, now),
    ]);
    return { blacklist, ruleset };
  }

  /**
   * A fresh cached document is used as is. A stale one is used too while it is
   * revalidated in the background (the INVITE never waits for the XDMS once a user's
   * document has been seen); only a first load waits for the fetch.
   */
  private one<T>(auid: string, xui: string, cache: Map<string, Cached<T>>, now: number): T | null | Promise<T | null> {
    const cached = cache.get(xui);
    if (cached && now - cached.checkedAt < this.ttlMs) return cached.value;
    const key = `${auid}\u0000${xui}`;
    let running = this.inflight.get(key) as Promise<T | null> | undefined;
    if (!running) {
      running = this.refresh(auid, xui, cache, cached, now).finally(() => this.inflight.delete(key));
      this.inflight.set(key, running);
    }
    if (cached) {
      running.catch(() => undefined); // logged in refresh()
      return cached.value;
    }
    return running;
  }

  /** Resolves when every background revalidation started so far has finished. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()]);
  }

  private async refresh<T>(
    auid: string,
    xui: string,
    cache: Map<string, Cached<T>>,
    cached: Cached<T> | undefined,
    now: number,
  ): Promise<T | null> {
    try {
      const out = await this.client.fetch(auid, xui, this.opts.document, cached?.etag ?? null);
      let next: Cached<T>;
      if (out.status === 'not-modified' && cached) next = { ...cached, checkedAt: now };
      else if (out.status === 'absent' || out.status === 'not-modified') {
        next = { etag: null, value: null, checkedAt: now };
      } else if (cached && out.etag !== null && cached.etag === out.etag) next = { ...cached, checkedAt: now };
      else next = this.parse<T>(auid, xui, out.etag, out.body, cached, now);
      remember(cache, xui, next);
      return next.value;
    } catch (err) {
      if (!(err instanceof XcapClientError)) throw err;
      this.opts.metrics.xdmLoads.inc({ auid, outcome: 'unavailable' });
      if (cached) {
        this.opts.log.warn({ err, auid, xui }, 'xdm fetch failed, using the cached document');
        // Retry after another TTL, not on every request.
        remember(cache, xui, { ...cached, checkedAt: now });
        return cached.value;
      }
      throw new XdmUnavailableError(err.message);
    }
  }
}

export type XdmSource = EmbeddedXdmSource | RemoteXdmSource;
