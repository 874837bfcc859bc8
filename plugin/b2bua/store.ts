/**
 * What the B2BUA keeps of a confirmed call across a restart (docs/b2bua.md "Restart"):
 * one small versioned JSON record per call, keyed by the caller's Call-ID (which is also
 * the relay's session key), written at each change and checked against `StoredCallSchema`
 * on load. Only plain data: the call machine's state (./call/machine.ts, with the
 * multi-device policy and its choice), each side's dialog (./sip/dialog.ts), session
 * timer and absolute deadline (epoch ms), and the SDP given and received on each side.
 * Transactions are never stored (decision 0001): they last at most 64*T1.
 *
 * `CallStore` is what the driver needs; `LmdbCallStore` keeps the records in their own
 * LMDB environment under the service's dataDir (one host, the default), `MemoryCallStore`
 * in a map (tests), `RedisCallStore` (./redis-store.ts) on the shared-state engine
 * (sharedState.engine: redis; plugin/shared-state/stores.ts chooses).
 * A record that is not JSON or does not fit the schema is reported and skipped on load;
 * the others load.
 *
 * Ownership (docs/deployment.md §12): each store belongs to one node (`node`) and stamps
 * it on every record it writes as the record's `owner`. `load` gives this node's records
 * (a restart takes back its own calls); `owners` lists every node's, and `claim` moves one
 * from a node whose lease ran out to this node, at most once (./takeover.ts).
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { DialogSchema } from './sip/dialog.js';
import type { Call } from './call/machine.js';
import { DeferredRecordSchema } from './deferred/record.js';
import { settlesWithin } from '../../lib/lmdb-commit-guard.js';

/**
 * The record format. Version 1 (before deferral) loads as version 2 with the call not
 * deferred (`upgrade`); a record of another version is skipped (reported) on load.
 */
export const STORE_VERSION = 2;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const PolicySchema = Type.Union([Type.Literal('A'), Type.Literal('B'), Type.Literal('C')]);
const SideTimerSchema = Type.Object({ interval: Type.Integer({ minimum: 1 }), weRefresh: Type.Boolean() }, { additionalProperties: false });

const LegTargetSchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('device'), Type.Literal('redirect'), Type.Literal('isf')]),
    ruri: Type.String({ minLength: 1 }),
    device: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

const LegSchema = Type.Object(
  {
    id: Type.String({ minLength: 1 }),
    target: LegTargetSchema,
    state: Type.Union([Type.Literal('calling'), Type.Literal('early'), Type.Literal('cancelling'), Type.Literal('up'), Type.Literal('releasing'), Type.Literal('closed')]),
    status: Nullable(Type.Integer()),
    media: Type.Boolean(),
    timer: Nullable(SideTimerSchema),
  },
  { additionalProperties: false },
);

/** The call machine's state (./call/machine.ts Call), as it is. */
export const MachineSchema = Type.Object(
  {
    state: Type.Union([Type.Literal('offering'), Type.Literal('answered'), Type.Literal('confirmed'), Type.Literal('ending'), Type.Literal('ended')]),
    caller: Type.Union([Type.Literal('invited'), Type.Literal('rejected'), Type.Literal('up'), Type.Literal('bye-held'), Type.Literal('bye-sent'), Type.Literal('gone')]),
    settings: Type.Object(
      {
        policy: PolicySchema, isfUri: Nullable(Type.String()), maxRedirects: Type.Integer({ minimum: 0 }), group: Type.Optional(Type.Boolean()),
        deferral: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false },
    ),
    legs: Type.Array(LegSchema),
    chosen: Nullable(Type.String()),
    rung: Type.Boolean(),
    redirects: Type.Integer({ minimum: 0 }),
    isfTried: Type.Boolean(),
    nextLeg: Type.Integer({ minimum: 1 }),
    callerTimer: Nullable(SideTimerSchema),
    groupStored: Type.Boolean(),
    deferred: Type.Union([Type.Literal('off'), Type.Literal('asked'), Type.Literal('on'), Type.Literal('flushing')]),
    byeReason: Type.Optional(Type.String()),
    flushLeg: Type.Optional(Type.String()),
    relayGone: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** One side's timer deadline: what fires (refresh-due or expired) and when (epoch ms). */
export const DeadlineSchema = Type.Object(
  { due: Type.Union([Type.Literal('refresh'), Type.Literal('expire')]), at: Type.Number() },
  { additionalProperties: false },
);
export type Deadline = Static<typeof DeadlineSchema>;

/** One side's mid-session state (the caller's, or a leg's): what a refresh needs. */
export const StoredSideSchema = Type.Object(
  {
    interval: Type.Integer({ minimum: 1 }),
    useUpdate: Type.Boolean(),
    localSdp: Type.String(),
    remoteSdp: Type.String(),
    deadline: Nullable(DeadlineSchema),
  },
  { additionalProperties: false },
);
export type StoredSide = Static<typeof StoredSideSchema>;

export const StoredLegSchema = Type.Object(
  { id: Type.String({ minLength: 1 }), dialog: Nullable(DialogSchema), side: Nullable(StoredSideSchema) },
  { additionalProperties: false },
);

/**
 * A deferred call (docs/b2bua.md "Deferred sessions"): its deferred record, and what a
 * device leg's INVITE is built from once a device registers (./deferral.ts LegSource;
 * the devices are not kept: the one that registers brings its own).
 */
export const StoredDeferralSchema = Type.Object(
  {
    record: DeferredRecordSchema,
    /** The caller's INVITE as received (./deferral.ts printInvite). */
    invite: Type.String({ minLength: 1 }),
    /** CR step 7's edit (plugin/rules/stages/service-identification.ts ServiceEdit). */
    service: Type.Object({ remove: Type.Array(Type.String()), hdrs: Type.String() }, { additionalProperties: false }),
    deviceSdp: Type.String(),
  },
  { additionalProperties: false },
);
export type StoredDeferral = Static<typeof StoredDeferralSchema>;

export const StoredCallSchema = Type.Object(
  {
    v: Type.Literal(STORE_VERSION),
    /** The caller's Call-ID: the call's key here and the relay's session key. */
    callId: Type.String({ minLength: 1 }),
    servedUser: Type.String({ minLength: 1 }),
    contributionId: Nullable(Type.String()),
    conversationId: Nullable(Type.String()),
    /** The caller's Contact URI (the focus of a group session's Group State Object, CR 8.3.2.4). */
    focus: Type.String(),
    /** When the call began (epoch ms): b2bua.maxSessionAgeS counts from it. */
    startedAt: Type.Number(),
    relayHeld: Type.Boolean(),
    machine: MachineSchema,
    caller: Type.Object({ dialog: Nullable(DialogSchema), side: Nullable(StoredSideSchema) }, { additionalProperties: false }),
    legs: Type.Array(StoredLegSchema),
    /** A deferred call only. */
    deferral: Type.Optional(StoredDeferralSchema),
    /**
     * The node that holds the call's dialogs and relay session (docs/deployment.md §12),
     * stamped by the store on write; absent in records of before ownership (this node's).
     */
    owner: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);
export type StoredCall = Static<typeof StoredCallSchema>;

// the stored machine is the machine's own type (a compile-time check both ways)
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const machineFits: Same<Static<typeof MachineSchema>['legs'][number]['state'], Call['legs'][number]['state']> = true;
const storedIsCall = (m: Static<typeof MachineSchema>): Call => m;
void machineFits;
void storedIsCall;

const check = TypeCompiler.Compile(StoredCallSchema);

/** A version 1 record as version 2: the call is not deferred. Anything else as it is. */
function upgrade(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || !('v' in v) || v.v !== 1) return v;
  const machine = 'machine' in v && typeof v.machine === 'object' && v.machine !== null ? { deferred: 'off', ...v.machine } : undefined;
  return { ...v, v: STORE_VERSION, ...(machine ? { machine } : {}) };
}

/** A stored record back, or why it cannot be used. Pure. */
export function parseStoredCall(text: string): { ok: true; call: StoredCall } | { ok: false; why: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, why: 'not JSON' };
  }
  v = upgrade(v);
  if (typeof v === 'object' && v !== null && 'v' in v && v.v !== STORE_VERSION) return { ok: false, why: `version ${String(v.v)}` };
  if (!check.Check(v)) {
    const e = check.Errors(v).First();
    return { ok: false, why: e ? `${e.path || '/'}: ${e.message}` : 'does not fit the schema' };
  }
  return { ok: true, call: v };
}

export interface LoadedCalls {
  readonly calls: StoredCall[];
  /** Records skipped: their key and why. */
  readonly bad: { readonly key: string; readonly why: string }[];
}

/** A record's Call-ID and owner node, as the takeover sweeper lists them. */
export interface OwnedRecord {
  readonly callId: string;
  /** null: a record of before ownership. */
  readonly owner: string | null;
}

/**
 * Where the B2BUA keeps its calls. Writes are queued in order; `flushed` waits for them.
 * `put` stamps `node` as the record's owner.
 */
export interface CallStore {
  /** This node's id (sharedState.nodeId): the owner of what it writes. */
  readonly node: string;
  put(call: StoredCall): void;
  delete(callId: string): void;
  /** This node's records (owned by `node`, or by no one). */
  load(): Promise<LoadedCalls>;
  /** Every record's owner, every node's (damaged records left out). */
  owners(): Promise<OwnedRecord[]>;
  /**
   * Make `callId`'s record this node's if `from` still owns it: the record as taken, or
   * null when it is gone or no longer `from`'s (another node took it first).
   */
  claim(callId: string, from: string): Promise<StoredCall | null>;
  flushed(): Promise<void>;
  close(): Promise<void>;
}

/** Whether a record is `node`'s: stamped with it, or with no owner (before ownership). */
export function ownedBy(call: StoredCall, node: string): boolean {
  return call.owner === undefined || call.owner === node;
}

/** Records as text back, checked; each must sit under its own Call-ID. */
export function loadFrom(entries: Iterable<{ key: string; value: string }>): LoadedCalls {
  const calls: StoredCall[] = [];
  const bad: { key: string; why: string }[] = [];
  for (const { key, value } of entries) {
    const r = parseStoredCall(value);
    if (!r.ok) bad.push({ key, why: r.why });
    else if (r.call.callId !== key) bad.push({ key, why: 'key and Call-ID differ' });
    else calls.push(r.call);
  }
  return { calls, bad };
}

export function ownersOf(loaded: LoadedCalls): OwnedRecord[] {
  return loaded.calls.map((c) => ({ callId: c.callId, owner: c.owner ?? null }));
}

/** In memory (tests): the records as text, so a test can damage one. */
export class MemoryCallStore implements CallStore {
  /** Several stores may share one map (nodes on one engine, in tests). */
  constructor(
    readonly node = 'local',
    readonly records = new Map<string, string>(),
  ) {}
  put(call: StoredCall): void {
    this.records.set(call.callId, JSON.stringify({ ...call, owner: this.node }));
  }
  delete(callId: string): void {
    this.records.delete(callId);
  }
  async load(): Promise<LoadedCalls> {
    const all = this.#all();
    return { calls: all.calls.filter((c) => ownedBy(c, this.node)), bad: all.bad };
  }
  async owners(): Promise<OwnedRecord[]> {
    return ownersOf(this.#all());
  }
  async claim(callId: string, from: string): Promise<StoredCall | null> {
    const text = this.records.get(callId);
    const r = text === undefined ? null : parseStoredCall(text);
    if (!r?.ok || r.call.owner !== from) return null;
    const taken = { ...r.call, owner: this.node };
    this.records.set(callId, JSON.stringify(taken));
    return taken;
  }
  #all(): LoadedCalls {
    return loadFrom([...this.records].map(([key, value]) => ({ key, value })));
  }
  async flushed(): Promise<void> {}
  async close(): Promise<void> {}
}

/**
 * In LMDB (the repo's embedded store, as the device and XCAP stores): its own
 * environment, string values (a damaged record is still readable text to report). A
 * write is not awaited by the call (the next change overwrites it); a crash loses at most
 * the writes LMDB had not committed yet.
 *
 * A refused commit (a full disk, an I/O error, lmdb-js's free-list check) is reported
 * through `onError`, and the call's latest record (or its deletion) is written again
 * after a back-off (0.5 s doubling to 30 s), until it lands or a newer write of the same
 * call supersedes it; `close` tries the ones still waiting once more.
 */
export class LmdbCallStore implements CallStore {
  #pending: Promise<void> = Promise.resolve();
  /** Each call's latest write: its number, so an older one failing does not undo it. */
  readonly #latest = new Map<string, number>();
  #writes = 0;
  /** Writes waiting to be tried again, by Call-ID. */
  readonly #retries = new Map<string, { timer: NodeJS.Timeout; run: () => void }>();
  #open = true;

  constructor(
    private readonly root: RootDatabase,
    private readonly db: Database<string, string>,
    private readonly onError: (err: unknown) => void,
    readonly node = 'local',
  ) {}

  put(call: StoredCall): void {
    this.#write(call.callId, JSON.stringify({ ...call, owner: this.node }), 0);
  }
  delete(callId: string): void {
    this.#write(callId, null, 0);
  }
  /** Writes waiting for a retry after a refused commit (tests, metrics). */
  get retrying(): number {
    return this.#retries.size;
  }
  async load(): Promise<LoadedCalls> {
    const all = this.#all();
    return { calls: all.calls.filter((c) => ownedBy(c, this.node)), bad: all.bad };
  }
  async owners(): Promise<OwnedRecord[]> {
    return ownersOf(this.#all());
  }
  /** In one write transaction: read, check the owner, write (LMDB serialises writers). */
  async claim(callId: string, from: string): Promise<StoredCall | null> {
    return this.db.transaction(() => {
      const text = this.db.get(callId);
      const r = text === undefined ? null : parseStoredCall(text);
      if (!r?.ok || r.call.owner !== from) return null;
      const taken = { ...r.call, owner: this.node };
      // settles with the transaction, whose own promise reports a refused commit to the caller
      this.db.put(callId, JSON.stringify(taken)).catch(() => undefined);
      return taken;
    });
  }
  #all(): LoadedCalls {
    const entries: { key: string; value: string }[] = [];
    for (const { key, value } of this.db.getRange()) {
      entries.push({ key: String(key), value: typeof value === 'string' ? value : String(value) });
    }
    return loadFrom(entries);
  }
  async flushed(): Promise<void> {
    await this.#pending;
    await settlesWithin(this.db.flushed);
  }
  async close(): Promise<void> {
    this.#open = false;
    for (const callId of [...this.#retries.keys()]) this.#cancelRetry(callId)?.run();
    await this.flushed().catch(this.onError);
    await settlesWithin(this.root.close());
  }
  /** Take `callId`'s waiting retry off its timer; returns it, if there was one. */
  #cancelRetry(callId: string): { run: () => void } | undefined {
    const waiting = this.#retries.get(callId);
    if (!waiting) return undefined;
    clearTimeout(waiting.timer);
    this.#retries.delete(callId);
    return waiting;
  }
  /** Write `text` under `callId` (null: remove it); on a refused commit, again later. */
  #write(callId: string, text: string | null, attempt: number): void {
    const n = ++this.#writes;
    this.#latest.set(callId, n);
    this.#cancelRetry(callId); // this write replaces it
    const written = text === null ? this.db.remove(callId) : this.db.put(callId, text);
    const settled = written.then(
      () => {
        if (this.#latest.get(callId) === n) this.#latest.delete(callId);
      },
      (err: unknown) => {
        this.onError(err);
        if (this.#latest.get(callId) !== n || !this.#open) return; // a newer write of this call supersedes it
        const run = (): void => this.#write(callId, text, attempt + 1);
        const timer = setTimeout(() => {
          this.#retries.delete(callId);
          run();
        }, Math.min(30_000, 500 * 2 ** attempt));
        timer.unref();
        this.#retries.set(callId, { timer, run });
      },
    );
    // `flushed` waits for every write so far; nothing of a settled write is kept
    this.#pending = Promise.all([this.#pending, settled]).then(() => undefined);
  }
}

/** Open (create) the store in `path`, a directory of its own. */
export function openLmdbCallStore(path: string, onError: (err: unknown) => void, node = 'local'): LmdbCallStore {
  mkdirSync(path, { recursive: true });
  const root = open({ path, maxDbs: 1 });
  const db = root.openDB<string, string>({ name: 'calls', encoding: 'string' });
  return new LmdbCallStore(root, db, onError, node);
}
