/**
 * RFC 3841 §7.2 caller-preference processing against contact feature sets.
 *
 * Our reading of §7.2.4 "Matching" (docs/policy.md, "RFC 3841 matcher"; it agrees with
 * what mature stacks such as Sofia-SIP do):
 * - A contact with no feature tags at all is *immune*: never removed by caller
 *   preferences, Qa = 1.
 * - Reject-Contact: a contact is removed when some predicate matches it AND every
 *   feature tag of that predicate is present in the contact's feature set.
 * - Accept-Contact, per predicate: terms whose tag the contact lacks are left out of the
 *   match; the rest must all be satisfied. No match: the contact is removed if
 *   `require`, else the predicate is left out of Qa. A match scores the share of the
 *   predicate's terms whose tag the contact has; with `explicit`, a score below 1 becomes
 *   0 (and removes the contact if also `require`).
 * - Qa = mean score over the matching predicates (0 when none matched; 1 when the
 *   request has no Accept-Contact). Targets are ordered by Qa, then q, then input order.
 */
import type { SipRequest } from '../sip/message.js';
import { featureSetOf, parsePredicate, type FeatureAtom, type FeaturePredicate, type FeatureSet, type FeatureTerm } from './features.js';
import type { FeatureValue } from '../devices/types.js';

export interface CallerPrefs {
  readonly accept: readonly FeaturePredicate[];
  readonly reject: readonly FeaturePredicate[];
  /** Header values that could not be read and were ignored. */
  readonly ignored: number;
  /**
   * RFC 3841 §7.2.2.1 implicit preference, lower-cased method: a contact whose `methods`
   * tag lacks it is removed. A filter only; it does not count in Qa.
   */
  readonly method: string | null;
}

const INSTANCE = '+sip.instance';

const implicitCache = new Map<string, FeatureTerm>();

function methodTerm(method: string): FeatureTerm {
  let t = implicitCache.get(method);
  if (!t) {
    t = { tag: 'methods', values: [{ atom: { kind: 'token', value: method }, negated: false }] };
    if (implicitCache.size < 64) implicitCache.set(method, t);
  }
  return t;
}

/** RFC 3841 §7.1, §9.1: Request-Disposition directives this matcher uses. */
export interface Disposition {
  readonly fork: boolean;
  readonly parallel: boolean;
}

/** Read the caller's Accept-Contact and Reject-Contact. Unreadable values are skipped and counted. */
export function callerPrefsOf(msg: SipRequest): CallerPrefs {
  const accept: FeaturePredicate[] = [];
  const reject: FeaturePredicate[] = [];
  let ignored = 0;
  for (const v of msg.getValues('Accept-Contact')) {
    const p = parsePredicate(v);
    if (p) accept.push(p);
    else ignored++;
  }
  for (const v of msg.getValues('Reject-Contact')) {
    const p = parsePredicate(v);
    if (p) reject.push(p);
    else ignored++;
  }
  return { accept, reject, ignored, method: msg.method.toLowerCase() };
}

/**
 * RFC 3841 §7.1 and §9.1 Request-Disposition. Defaults (our core's policy): fork, parallel.
 * Unknown directives are ignored.
 */
export function dispositionOf(msg: SipRequest): Disposition {
  let fork = true;
  let parallel = true;
  for (const raw of msg.getValues('Request-Disposition')) {
    const d = raw.trim().toLowerCase();
    if (d === 'fork') fork = true;
    else if (d === 'no-fork') fork = false;
    else if (d === 'parallel') parallel = true;
    else if (d === 'sequential') parallel = false;
  }
  return { fork, parallel };
}

function atomEquals(want: FeatureAtom, have: FeatureAtom): boolean {
  switch (want.kind) {
    case 'bool':
      return have.kind === 'bool' && have.value === want.value;
    case 'token':
      return have.kind === 'token' && have.value === want.value;
    case 'string':
      return have.kind === 'string' && have.value === want.value;
    case 'num': {
      if (have.kind !== 'num' || have.op !== '=') return false;
      if (want.op === '=') return have.value === want.value;
      return want.op === '<=' ? have.value <= want.value : have.value >= want.value;
    }
    case 'range':
      return have.kind === 'num' && have.op === '=' && have.value >= want.lo && have.value <= want.hi;
  }
}

/** One term against the values a contact has for that tag (RFC 2533 §3 semantics per collection). */
function termSatisfied(term: FeatureTerm, have: readonly FeatureAtom[]): boolean {
  for (const w of term.values) {
    for (const h of have) {
      if (atomEquals(w.atom, h) !== w.negated) return true;
    }
  }
  return false;
}

export interface PredicateResult {
  /** Every term whose tag the contact has is satisfied. */
  readonly matched: boolean;
  /** Share of the predicate's terms whose tag the contact has (1 for an empty predicate). */
  readonly coverage: number;
}

function evaluatePredicate(p: FeaturePredicate, set: FeatureSet): PredicateResult {
  if (p.terms.length === 0) return { matched: true, coverage: 1 };
  let present = 0;
  for (const term of p.terms) {
    const have = set.get(term.tag);
    if (!have) continue;
    present++;
    if (!termSatisfied(term, have)) return { matched: false, coverage: present / p.terms.length };
  }
  return { matched: true, coverage: present / p.terms.length };
}

/** §7.2.4: does this Reject-Contact predicate remove the contact? */
export function rejects(p: FeaturePredicate, set: FeatureSet): boolean {
  if (p.terms.length === 0) return false;
  const r = evaluatePredicate(p, set);
  return r.matched && r.coverage === 1;
}

/** §7.2.4: Qa of a contact, or null when the contact is removed. */
export function acceptScore(accept: readonly FeaturePredicate[], set: FeatureSet): number | null {
  if (accept.length === 0) return 1;
  let sum = 0;
  let matched = 0;
  for (const p of accept) {
    const r = evaluatePredicate(p, set);
    if (!r.matched) {
      if (p.require) return null;
      continue;
    }
    matched++;
    if (p.explicit && r.coverage < 1) {
      if (p.require) return null;
      continue; // scores 0
    }
    sum += r.coverage;
  }
  return matched ? sum / matched : 0;
}

export interface Ranked<T> {
  readonly item: T;
  readonly qa: number;
}

/**
 * RFC 3841 §7.2: drop contacts rejected by Reject-Contact or failing a required
 * Accept-Contact, then order by Qa, q, and input order. Linear in the number of
 * predicates per contact.
 */
export function rankContacts<T extends { readonly params: Readonly<Record<string, FeatureValue>>; readonly q: number }>(
  prefs: CallerPrefs,
  contacts: readonly T[],
): Ranked<T>[] {
  // The common `*;+sip.instance="<...>"` form is looked up in a set (linear overall).
  const rejectedInstances = new Set<string>();
  const otherRejects: FeaturePredicate[] = [];
  for (const r of prefs.reject) {
    const only = r.terms.length === 1 ? r.terms[0]! : null;
    const v = only && only.tag === INSTANCE && only.values.length === 1 ? only.values[0]! : null;
    if (v && !v.negated && v.atom.kind === 'string') rejectedInstances.add(v.atom.value);
    else otherRejects.push(r);
  }
  const kept: { item: T; qa: number; idx: number }[] = [];
  contacts.forEach((c, idx) => {
    const set = featureSetOf(c.params);
    if (set.size === 0) {
      kept.push({ item: c, qa: 1, idx }); // immune (see top of file)
      return;
    }
    if (prefs.method !== null) {
      const methods = set.get('methods');
      if (methods && !termSatisfied(methodTerm(prefs.method), methods)) return;
    }
    const inst = set.get(INSTANCE);
    if (inst && rejectedInstances.size > 0 && inst.some((a) => a.kind === 'string' && rejectedInstances.has(a.value))) return;
    for (const r of otherRejects) if (rejects(r, set)) return;
    const qa = acceptScore(prefs.accept, set);
    if (qa !== null) kept.push({ item: c, qa, idx });
  });
  kept.sort((a, b) => b.qa - a.qa || b.item.q - a.item.q || a.idx - b.idx);
  return kept.map(({ item, qa }) => ({ item, qa }));
}
