/**
 * RFC 3840 §9 feature parameters: parsing Contact feature sets and Accept/Reject-Contact
 * predicates (RFC 3841 §9.2). Parsers are single-pass, no backtracking regexes.
 */
import type { FeatureValue } from '../devices/types.js';
import { parseParams, pctDecode } from '../sip/uri.js';

/** One value of a feature tag (RFC 3840 §9 `tag-value` / `string-value`). */
export type FeatureAtom =
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'token'; readonly value: string } // lower-cased, percent-decoded
  | { readonly kind: 'string'; readonly value: string } // case-sensitive, without <>
  | { readonly kind: 'num'; readonly op: '=' | '<=' | '>='; readonly value: number }
  | { readonly kind: 'range'; readonly lo: number; readonly hi: number };

export interface FeatureTermValue {
  readonly atom: FeatureAtom;
  readonly negated: boolean;
}

export interface FeatureTerm {
  readonly tag: string; // lower-cased
  /** Disjunction of values (RFC 3840 §9: a list in a predicate is an OR). */
  readonly values: readonly FeatureTermValue[];
}

/** A caller-preference predicate: one Accept-Contact / Reject-Contact value (RFC 3841 §9.2). */
export interface FeaturePredicate {
  readonly terms: readonly FeatureTerm[];
  readonly require: boolean;
  readonly explicit: boolean;
}

/** A contact's feature set: tag -> the values it has (RFC 3840 §9). */
export type FeatureSet = ReadonlyMap<string, readonly FeatureAtom[]>;

/** RFC 3840 §10 base tags: feature tags that carry no leading `+`. */
const BASE_TAGS = new Set([
  'audio',
  'application',
  'data',
  'control',
  'video',
  'text',
  'automata',
  'class',
  'duplex',
  'mobility',
  'description',
  'events',
  'priority',
  'methods',
  'schemes',
  'extensions',
  'isfocus',
  'actor',
  'language',
  'type',
]);

/** Whether a Contact/Accept-Contact parameter name is a feature tag (RFC 3840 §9 `enc-feature-tag`). */
export function isFeatureTag(name: string): boolean {
  return name.startsWith('+') ? name.length > 1 : BASE_TAGS.has(name);
}

const ENCODED_COMMA = /%2c/i;
const NUMBER = /^[+-]?[0-9]+(?:\.[0-9]+)?$/;

function num(s: string): number | null {
  const t = s.trim();
  return NUMBER.test(t) ? Number(t) : null;
}

/** One `tag-value` without its `!`: boolean, `#`-numeric, or token. Null when unreadable. */
function parseAtom(raw: string): FeatureAtom | null {
  const v = raw.trim();
  if (!v) return null;
  const upper = v.toUpperCase();
  if (upper === 'TRUE') return { kind: 'bool', value: true };
  if (upper === 'FALSE') return { kind: 'bool', value: false };
  if (v[0] === '#') {
    const body = v.slice(1);
    if (body.startsWith('>=')) {
      const n = num(body.slice(2));
      return n === null ? null : { kind: 'num', op: '>=', value: n };
    }
    if (body.startsWith('<=')) {
      const n = num(body.slice(2));
      return n === null ? null : { kind: 'num', op: '<=', value: n };
    }
    if (body.startsWith('=')) {
      const n = num(body.slice(1));
      return n === null ? null : { kind: 'num', op: '=', value: n };
    }
    const colon = body.indexOf(':', 1);
    if (colon !== -1) {
      const lo = num(body.slice(0, colon));
      const hi = num(body.slice(colon + 1));
      return lo === null || hi === null ? null : { kind: 'range', lo, hi };
    }
    const n = num(body);
    return n === null ? null : { kind: 'num', op: '=', value: n };
  }
  return { kind: 'token', value: pctDecode(v).toLowerCase() };
}

/**
 * Parse a feature parameter value (already unquoted): `<string>`, or a comma list of
 * tag-values each optionally negated with `!`. `true` (a bare flag) is boolean TRUE.
 * Token values are percent-decoded and may themselves hold a comma list after
 * decoding (3GPP `icsi-ref` lists). Null when unreadable.
 */
export function parseFeatureValue(v: FeatureValue): FeatureTermValue[] | null {
  if (v === true) return [{ atom: { kind: 'bool', value: true }, negated: false }];
  const t = v.trim();
  if (t.startsWith('<')) {
    if (!t.endsWith('>') || t.length < 2) return null;
    return [{ atom: { kind: 'string', value: t.slice(1, -1) }, negated: false }];
  }
  const out: FeatureTermValue[] = [];
  for (const part of t.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const negated = p[0] === '!';
    const body = negated ? p.slice(1) : p;
    if (body.startsWith('#') || !ENCODED_COMMA.test(body)) {
      const atom = parseAtom(body);
      if (!atom) return null;
      out.push({ atom, negated });
    } else {
      // Percent-encoded comma inside a token: split after decoding.
      for (const sub of pctDecode(body).split(',')) {
        const atom = parseAtom(sub);
        if (atom) out.push({ atom, negated });
      }
    }
  }
  return out.length ? out : null;
}

const setCache = new WeakMap<object, FeatureSet>();

/**
 * The feature set a Contact advertised (RFC 3840 §9): its feature-tag parameters.
 * Unreadable values are left out (the tag is then absent). Cached per params object.
 */
export function featureSetOf(params: Readonly<Record<string, FeatureValue>>): FeatureSet {
  const hit = setCache.get(params);
  if (hit) return hit;
  const set = new Map<string, FeatureAtom[]>();
  for (const [name, value] of Object.entries(params)) {
    const tag = name.toLowerCase();
    if (!isFeatureTag(tag)) continue;
    const values = parseFeatureValue(value);
    if (!values) continue;
    // Negation has no meaning in a capability set; such values are not capabilities.
    const atoms = values.filter((x) => !x.negated).map((x) => x.atom);
    if (atoms.length) set.set(tag, atoms);
  }
  setCache.set(params, set);
  return set;
}

/** Parsed predicates by header value (a deployment sends few distinct ones); FIFO-capped. */
const predicateCache = new Map<string, FeaturePredicate | null>();
const PREDICATE_CACHE_MAX = 1024;
const PREDICATE_CACHE_VALUE_MAX = 512;

/**
 * Parse one Accept-Contact / Reject-Contact value (RFC 3841 §9.2: `"*" *(SEMI ac-params)`).
 * Non-feature generic parameters are ignored. Null when the value is unreadable.
 * The result is shared (cached per value): read-only.
 */
export function parsePredicate(value: string): FeaturePredicate | null {
  if (value.length > PREDICATE_CACHE_VALUE_MAX) return readPredicate(value);
  const hit = predicateCache.get(value);
  if (hit !== undefined) return hit;
  const p = readPredicate(value);
  if (predicateCache.size >= PREDICATE_CACHE_MAX) {
    const oldest = predicateCache.keys().next();
    if (oldest.done !== true) predicateCache.delete(oldest.value);
  }
  predicateCache.set(value, p);
  return p;
}

function readPredicate(value: string): FeaturePredicate | null {
  const v = value.trim();
  if (v[0] !== '*') return null;
  const rest = v.slice(1).trim();
  if (rest && rest[0] !== ';') return null;
  const params = parseParams(rest);
  if (!params) return null;
  const terms: FeatureTerm[] = [];
  let require = false;
  let explicit = false;
  for (const [name, pv] of Object.entries(params)) {
    if (name === 'require' && pv === true) require = true;
    else if (name === 'explicit' && pv === true) explicit = true;
    else if (isFeatureTag(name)) {
      const values = parseFeatureValue(pv);
      if (!values) return null;
      terms.push({ tag: name, values });
    }
  }
  return { terms, require, explicit };
}
