// The deferred store on the shared-state engine (media/deferred/store.ts; docs/deferred.md
// "On Redis"; docs/decisions/0003-shared-state-engine.md): one Redis or a Redis Cluster, so
// that what a relay stored survives the loss of that relay's node and disk.
//
// Keys, T = {base64url(deferred-id)} (a hash tag: one deferred-id's keys share a slot, so
// each change below is one script, atomic on the master of that slot):
//
//   <p>:dfr:T:r   hash    the record: callId, servedUser, expiresAt
//   <p>:dfr:T:s   string  the last seq given out
//   <p>:dfr:T:m   zset    messages, member and score the seq (the order)
//   <p>:dfr:T:n   zset    notifications, likewise
//   <p>:dfr:T:i   hash    <seq> the item's JSON, b<seq> its payload bytes, t<seq> storedAt
//   <p>:dfr:T:x   zset    expiry index, member m<seq> / n<seq>, score expiresAt
//   <p>:dfr:tot   hash    totals (items, bytes) for the whole-store bounds
//   <p>:dfr:due   zset    deferred-ids, score the earliest expiry of their items or record
//
// Totals and the due index are in other slots than an id's keys, so they cannot change in
// the same script: totals are reserved before an append and given back after a removal
// (a crash in between over-counts: the store refuses earlier, it never drops); the due
// index is lowered (ZADD LT) before and after an append and re-checked after a sweep sets
// it, so no item is left out of the sweep by a race. Every id key also carries an engine
// TTL, the latest expiry it holds plus `ttlGraceMs` (PEXPIREAT in the relay's clock: a
// skew to the engine's is nothing against a day of grace): a safety net for keys no sweep
// reaches (every relay gone), never the normal path, since only the sweep generates the
// failed-delivery notifications (CR 8.3.2.9).
//
// Durability: a script is acknowledged by the master once applied; with `replicas` > 0
// each write is followed by WAIT on that master and fails (the SEND gets 500) unless that
// many replicas acknowledged it (WAIT holds that master's connection meanwhile: commands
// behind it wait up to `waitMs` when a replica lags). Persistence on the master is the engine's configuration
// (appendonly yes, appendfsync everysec or always: docs/deployment.md §12).

import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { EngineError, keyPart, type RedisEngine } from '../../lib/redis-engine.js';
import {
  DEFAULT_BOUNDS,
  type AppendResult, type DeferredBounds, type DeferredCounts, type DeferredRecord, type DeferredStore, type ExpiredBatch,
  type ExpiryNotice, type ItemKind, type NewItem, type StoredItem,
} from './store.js';

type Code = 'm' | 'n';
const code = (k: ItemKind): Code => (k === 'messages' ? 'm' : 'n');

const ItemSchema = Type.Object({
  p: Type.String(), ct: Type.String(), mid: Type.Optional(Type.String()), neg: Type.Boolean(), from: Type.Optional(Type.String()),
  e: Type.Number(), t: Type.Number(),
});
type ItemJson = Static<typeof ItemSchema>;
const isItem = TypeCompiler.Compile(ItemSchema);

function toJson(item: NewItem, storedAt: number): string {
  const j: ItemJson = {
    p: item.payload.toString('base64'), ct: item.contentType, neg: item.negativeDelivery, e: item.expiresAt, t: storedAt,
    ...(item.imdnMessageId === undefined ? {} : { mid: item.imdnMessageId }),
    ...(item.sender === undefined ? {} : { from: item.sender }),
  };
  return JSON.stringify(j);
}

function fromJson(seq: number, text: unknown): StoredItem | undefined {
  if (typeof text !== 'string') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isItem.Check(v)) return undefined;
  return {
    seq, storedAt: v.t, expiresAt: v.e, payload: Buffer.from(v.p, 'base64'), contentType: v.ct, negativeDelivery: v.neg,
    ...(v.mid === undefined ? {} : { imdnMessageId: v.mid }),
    ...(v.from === undefined ? {} : { sender: v.from }),
  };
}

// Lua shared by the id scripts. KEYS: r s m n i x (one slot).
const LIB = `
local function keep(at)
  for k = 1, #KEYS do
    if redis.call('EXISTS', KEYS[k]) == 1 and redis.call('PEXPIRETIME', KEYS[k]) < at then
      redis.call('PEXPIREAT', KEYS[k], at)
    end
  end
end
local function remove(c, seq)
  local list = KEYS[4]
  if c == 'm' then list = KEYS[3] end
  if redis.call('ZREM', list, seq) == 0 then return -1 end
  local b = tonumber(redis.call('HGET', KEYS[5], 'b' .. seq) or '0')
  redis.call('HDEL', KEYS[5], seq, 'b' .. seq, 't' .. seq)
  redis.call('ZREM', KEYS[6], c .. seq)
  return b
end
local function put(c, json, expiresAt, bytes, storedAt)
  local list = KEYS[4]
  if c == 'm' then list = KEYS[3] end
  local seq = redis.call('INCR', KEYS[2])
  redis.call('ZADD', list, seq, seq)
  redis.call('HSET', KEYS[5], seq, json, 'b' .. seq, bytes, 't' .. seq, storedAt)
  redis.call('ZADD', KEYS[6], expiresAt, c .. seq)
  return seq
end
local function nextDue()
  local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  return { first[2] or false, redis.call('HGET', KEYS[1], 'expiresAt') or false }
end
`;

// ARGV: callId servedUser expiresAt keepAt
const PUT_RECORD = `${LIB}
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'callId', ARGV[1], 'servedUser', ARGV[2], 'expiresAt', ARGV[3])
keep(tonumber(ARGV[4]))
return 1`;

// ARGV: code json expiresAt maxPerId(0: unbounded) keepAt bytes storedAt
const APPEND = `${LIB}
local maxPer = tonumber(ARGV[4])
if maxPer > 0 and redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) + 1 > maxPer then return -1 end
local seq = put(ARGV[1], ARGV[2], ARGV[3], ARGV[6], ARGV[7])
keep(tonumber(ARGV[5]))
return seq`;

// ARGV: code seq -> payload bytes removed, -1 when not there
const MARK_DONE = `${LIB}
return remove(ARGV[1], ARGV[2])`;

// -> { messages, items, bytes }
const DISCARD = `${LIB}
local m, items, bytes = 0, 0, 0
for _, c in ipairs({ 'm', 'n' }) do
  local list = KEYS[4]
  if c == 'm' then list = KEYS[3] end
  for _, seq in ipairs(redis.call('ZRANGE', list, 0, -1)) do
    bytes = bytes + tonumber(redis.call('HGET', KEYS[5], 'b' .. seq) or '0')
    items = items + 1
    if c == 'm' then m = m + 1 end
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return { m, items, bytes }`;

// ARGV: code stop -> { seq, json, seq, json, ... }
const PENDING = `
local list = KEYS[2]
if ARGV[1] == 'm' then list = KEYS[1] end
local out = {}
for _, seq in ipairs(redis.call('ZRANGE', list, 0, tonumber(ARGV[2]))) do
  out[#out + 1] = seq
  out[#out + 1] = redis.call('HGET', KEYS[3], seq) or ''
end
return out`;

// -> { messages, notifications, storedAt of the first message or '', of the first notification or '' }
const COUNTS = `
local out = { redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]) }
for k = 1, 2 do
  local first = redis.call('ZRANGE', KEYS[k], 0, 0)[1]
  out[#out + 1] = (first and redis.call('HGET', KEYS[3], 't' .. first)) or ''
end
return out`;

// ARGV: now -> { callId or '', servedUser or '', expiresAt or '', member, json or '', ... } (messages only carry json)
const DUE = `
local out = { redis.call('HGET', KEYS[1], 'callId') or '', redis.call('HGET', KEYS[1], 'servedUser') or '',
  redis.call('HGET', KEYS[1], 'expiresAt') or '' }
for _, mem in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', ARGV[1])) do
  out[#out + 1] = mem
  if string.sub(mem, 1, 1) == 'm' then out[#out + 1] = redis.call('HGET', KEYS[5], string.sub(mem, 2)) or ''
  else out[#out + 1] = '' end
end
return out`;

// ARGV: now keepAt, then per due item: member noticeJson('' none) noticeExpiresAt noticeBytes noticeStoredAt
// -> { expired, removedItems, removedBytes, addedItems, addedBytes, notifications, callId, nextItem, recordAt }
const SWEEP = `${LIB}
local now = tonumber(ARGV[1])
local expired, ri, rb, ai, ab = 0, 0, 0, 0, 0
for k = 3, #ARGV, 5 do
  local mem = ARGV[k]
  local c, seq = string.sub(mem, 1, 1), string.sub(mem, 2)
  local b = remove(c, seq)
  if b >= 0 then
    ri = ri + 1
    rb = rb + b
    if c == 'm' then
      expired = expired + 1
      if ARGV[k + 1] ~= '' then
        put('n', ARGV[k + 1], ARGV[k + 2], ARGV[k + 3], ARGV[k + 4])
        ai = ai + 1
        ab = ab + tonumber(ARGV[k + 3])
      end
    end
  end
end
local left = redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4])
local recAt = redis.call('HGET', KEYS[1], 'expiresAt')
if left == 0 and recAt and tonumber(recAt) <= now then redis.call('DEL', KEYS[1], KEYS[2]) end
if ai > 0 then keep(tonumber(ARGV[2])) end
local nd = nextDue()
return { expired, ri, rb, ai, ab, redis.call('ZCARD', KEYS[4]), redis.call('HGET', KEYS[1], 'callId') or '', nd[1], nd[2] }`;

// -> { nextItem, recordAt }
const NEXT_DUE = `${LIB}
return nextDue()`;

// KEYS: tot; ARGV: bytes maxItems maxBytes check(1/0) -> 1 reserved, 0 full
const RESERVE = `
local items = tonumber(redis.call('HGET', KEYS[1], 'items') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
if ARGV[4] == '1' and (items + 1 > tonumber(ARGV[2]) or bytes + tonumber(ARGV[1]) > tonumber(ARGV[3])) then return 0 end
redis.call('HSET', KEYS[1], 'items', items + 1, 'bytes', bytes + tonumber(ARGV[1]))
return 1`;

// KEYS: tot; ARGV: delta items, delta bytes (never below 0)
const ADJUST = `
local items = tonumber(redis.call('HGET', KEYS[1], 'items') or '0') + tonumber(ARGV[1])
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0') + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'items', math.max(0, items), 'bytes', math.max(0, bytes))
return 1`;

export interface RedisDeferredStoreOptions {
  readonly engine: RedisEngine;
  /** Key prefix (no braces); default `pf`. */
  readonly prefix?: string;
  readonly bounds?: Partial<DeferredBounds>;
  /** Replicas that must acknowledge each write (WAIT); 0: the master's reply is enough. */
  readonly replicas?: number;
  /** Bound of that WAIT, ms; default 500. */
  readonly waitMs?: number;
  /** The engine TTL of an id's keys: the latest expiry they hold plus this; default one day. */
  readonly ttlGraceMs?: number;
  readonly now?: () => number;
}

/** Items the sweep takes from the due index at once. */
const DUE_BATCH = 256;

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const str = (v: unknown): string => (typeof v === 'string' ? v : v instanceof Buffer ? v.toString('utf8') : '');
const arr = (v: unknown, what: string): unknown[] => {
  if (!Array.isArray(v)) throw new EngineError(`redis: ${what}: unexpected reply`);
  return v;
};
const optNum = (v: unknown): number | undefined => {
  const s = str(v);
  return s === '' ? undefined : Number(s);
};

export class RedisDeferredStore implements DeferredStore {
  private readonly engine: RedisEngine;
  private readonly p: string;
  private readonly bounds: DeferredBounds;
  private readonly replicas: number;
  private readonly waitMs: number;
  private readonly grace: number;
  private readonly now: () => number;

  constructor(o: RedisDeferredStoreOptions) {
    const p = o.prefix ?? 'pf';
    if (/[{}]/.test(p)) throw new EngineError(`redis: prefix ${JSON.stringify(p)} must not contain braces (hash tags)`);
    this.engine = o.engine;
    this.p = p;
    this.bounds = { ...DEFAULT_BOUNDS, ...o.bounds };
    this.replicas = o.replicas ?? 0;
    this.waitMs = o.waitMs ?? 500;
    this.grace = o.ttlGraceMs ?? 86_400_000;
    this.now = o.now ?? Date.now;
  }

  /** r s m n i x of `id`, one slot. */
  keys(id: string): string[] {
    const t = `${this.p}:dfr:{${keyPart(id)}}`;
    return ['r', 's', 'm', 'n', 'i', 'x'].map(k => `${t}:${k}`);
  }
  private get tot(): string {
    return `${this.p}:dfr:tot`;
  }
  private get due(): string {
    return `${this.p}:dfr:due`;
  }

  /** With replicas: WAIT on the master of `key` for the writes before; fewer acknowledgements fail. */
  private async durable(key: string, what: string): Promise<void> {
    if (this.replicas <= 0) return;
    const acked = num(await this.engine.command(`WAIT ${what}`, key, ['WAIT', String(this.replicas), String(this.waitMs)], this.waitMs + 1000));
    if (!(acked >= this.replicas)) throw new EngineError(`redis: ${what}: ${acked} of ${this.replicas} replicas acknowledged within ${this.waitMs} ms`);
  }

  private async lowerDue(id: string, at: number): Promise<void> {
    await this.engine.command('due index', this.due, ['ZADD', this.due, 'LT', String(at), id]);
  }

  private async adjust(items: number, bytes: number): Promise<void> {
    if (items === 0 && bytes === 0) return;
    await this.engine.eval('totals', ADJUST, [this.tot], [String(items), String(bytes)]);
  }

  async putRecord(id: string, record: DeferredRecord): Promise<void> {
    const k = this.keys(id);
    await this.engine.eval('record write', PUT_RECORD, k,
      [record.callId, record.servedUser, String(record.expiresAt), String(record.expiresAt + this.grace)]);
    await this.durable(k[0]!, 'record write');
    await this.lowerDue(id, record.expiresAt);
  }

  async record(id: string): Promise<DeferredRecord | undefined> {
    const k = this.keys(id)[0]!;
    const v = arr(await this.engine.command('record read', k, ['HMGET', k, 'callId', 'servedUser', 'expiresAt']), 'record read');
    const [callId, servedUser, expiresAt] = v.map(str);
    if (!callId && !servedUser && !expiresAt) return undefined;
    const at = Number(expiresAt);
    return Number.isFinite(at) ? { callId: callId ?? '', servedUser: servedUser ?? '', expiresAt: at } : undefined;
  }

  async append(id: string, kind: ItemKind, item: NewItem, opts: { readonly unbounded?: boolean } = {}): Promise<AppendResult> {
    const bytes = item.payload.length;
    if (bytes > this.bounds.maxItemBytes) return { ok: false, reason: 'too-big' };
    const k = this.keys(id);
    // due first: a crash after the append cannot leave the item out of the sweep
    await this.lowerDue(id, item.expiresAt);
    const reserved = num(await this.engine.eval('totals', RESERVE, [this.tot],
      [String(bytes), String(this.bounds.maxItems), String(this.bounds.maxBytes), opts.unbounded ? '0' : '1']));
    if (reserved !== 1) return { ok: false, reason: 'full' };
    let seq: number;
    try {
      seq = num(await this.engine.eval('append', APPEND, k, [
        code(kind), toJson(item, this.now()), String(item.expiresAt), opts.unbounded ? '0' : String(this.bounds.maxItemsPerId),
        String(item.expiresAt + this.grace), String(bytes), String(this.now()),
      ]));
    } catch (err) {
      // refused (OOM, READONLY, connection gone): the reservation goes back. No answer in
      // time: the append may still land (a duplicate later, never a loss), so it stays
      // counted (an over-count refuses earlier; an under-count could pass the bounds).
      if (!(err instanceof EngineError && err.timedOut)) await this.adjust(-1, -bytes).catch(() => undefined);
      throw err;
    }
    if (seq < 0) {
      await this.adjust(-1, -bytes);
      return { ok: false, reason: 'full' };
    }
    await this.durable(k[0]!, 'append');
    await this.lowerDue(id, item.expiresAt);
    return { ok: true, seq };
  }

  async pending(id: string, kind: ItemKind, limit = Number.MAX_SAFE_INTEGER): Promise<StoredItem[]> {
    if (limit <= 0) return [];
    const k = this.keys(id);
    const stop = limit >= Number.MAX_SAFE_INTEGER ? -1 : limit - 1;
    const v = arr(await this.engine.eval('pending', PENDING, [k[2]!, k[3]!, k[4]!], [code(kind), String(stop)]), 'pending');
    const out: StoredItem[] = [];
    for (let j = 0; j + 1 < v.length; j += 2) {
      const it = fromJson(num(v[j]), str(v[j + 1]));
      if (it) out.push(it);
    }
    return out;
  }

  async markDone(id: string, kind: ItemKind, seq: number): Promise<boolean> {
    const k = this.keys(id);
    const b = num(await this.engine.eval('mark done', MARK_DONE, k, [code(kind), String(seq)]));
    if (b < 0) return false;
    await this.durable(k[0]!, 'mark done');
    await this.adjust(-1, -b);
    return true;
  }

  async discard(id: string): Promise<number> {
    const k = this.keys(id);
    const [m, items, bytes] = arr(await this.engine.eval('discard', DISCARD, k, []), 'discard').map(num);
    await this.durable(k[0]!, 'discard');
    await this.adjust(-(items ?? 0), -(bytes ?? 0));
    await this.engine.command('due index', this.due, ['ZREM', this.due, id]);
    return m ?? 0;
  }

  async counts(id: string): Promise<DeferredCounts> {
    const k = this.keys(id);
    const v = arr(await this.engine.eval('counts', COUNTS, [k[2]!, k[3]!, k[4]!], []), 'counts');
    const firsts = [optNum(v[2]), optNum(v[3])].filter((x): x is number => x !== undefined);
    return { messages: num(v[0]), notifications: num(v[1]), ...(firsts.length === 0 ? {} : { oldest: Math.min(...firsts) }) };
  }

  async expire(now: number, notice: ExpiryNotice, busy: ReadonlySet<string> = new Set()): Promise<ExpiredBatch[]> {
    const out: ExpiredBatch[] = [];
    const seen = new Set<string>();
    for (;;) {
      const ids = arr(await this.engine.command('due index', this.due,
        ['ZRANGEBYSCORE', this.due, '-inf', String(now), 'LIMIT', '0', String(DUE_BATCH)]), 'due index').map(str).filter(id => !seen.has(id));
      if (ids.length === 0) break;
      for (const id of ids) {
        seen.add(id);
        if (busy.has(id)) continue; // its due score stays: the next sweep looks again
        const b = await this.expireId(id, now, notice);
        if (b) out.push(b);
      }
    }
    return out;
  }

  /** One deferred-id: read what is due, decide the notices, remove exactly what is still there. */
  private async expireId(id: string, now: number, notice: ExpiryNotice): Promise<ExpiredBatch | undefined> {
    const k = this.keys(id);
    const v = arr(await this.engine.eval('sweep read', DUE, k, [String(now)]), 'sweep read').map(str);
    const [callId, servedUser, recAt] = v;
    const rec: DeferredRecord | undefined = recAt ? { callId: callId ?? '', servedUser: servedUser ?? '', expiresAt: Number(recAt) } : undefined;
    const args = [String(now), '0'];
    let keepAt = 0;
    for (let j = 3; j + 1 < v.length; j += 2) {
      const mem = v[j]!;
      const msg = mem.startsWith('m') ? fromJson(Number(mem.slice(1)), v[j + 1]) : undefined;
      const n = msg ? notice(msg, rec) : undefined;
      if (n) {
        keepAt = Math.max(keepAt, n.expiresAt + this.grace);
        args.push(mem, toJson(n, this.now()), String(n.expiresAt), String(n.payload.length), String(this.now()));
      } else args.push(mem, '', '0', '0', '0');
    }
    args[1] = String(keepAt);
    const r = arr(await this.engine.eval('sweep', SWEEP, k, args), 'sweep');
    const [expired, ri, rb, ai, ab, notes] = r.slice(0, 6).map(num);
    await this.durable(k[0]!, 'sweep');
    await this.adjust((ai ?? 0) - (ri ?? 0), (ab ?? 0) - (rb ?? 0));
    await this.reindex(id, now, optNum(r[7]), optNum(r[8]));
    if (!expired) return undefined;
    return { id, callId: str(r[6]), expired, notifications: notes ?? 0 };
  }

  /** Set the id's due score from what it holds, then lower it by a fresh read (an append in between). */
  private async reindex(id: string, now: number, nextItem: number | undefined, recordAt: number | undefined): Promise<void> {
    const next = [nextItem, recordAt !== undefined && recordAt > now ? recordAt : undefined].filter((x): x is number => x !== undefined);
    if (next.length === 0) await this.engine.command('due index', this.due, ['ZREM', this.due, id]);
    else await this.engine.command('due index', this.due, ['ZADD', this.due, String(Math.min(...next)), id]);
    const [item, rec] = arr(await this.engine.eval('due check', NEXT_DUE, this.keys(id), []), 'due check').map(optNum);
    const fresh = [item, rec !== undefined && rec > now ? rec : undefined].filter((x): x is number => x !== undefined);
    if (fresh.length > 0) await this.lowerDue(id, Math.min(...fresh));
  }

  async totals(): Promise<{ items: number; bytes: number }> {
    const v = arr(await this.engine.command('totals', this.tot, ['HMGET', this.tot, 'items', 'bytes']), 'totals');
    return { items: Number(str(v[0]) || 0), bytes: Number(str(v[1]) || 0) };
  }

  /** The engine is the caller's: nothing to close here. */
  async close(): Promise<void> {}
}
