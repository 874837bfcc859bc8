/**
 * The conference event package's body (RFC 4575 §5, application/conference-info+xml),
 * read for one thing: the participant list of a group session deferred on behalf of the
 * served user (CR 8.3.2.1.1 step 3 i: "subscribe to the CPM Group Session Participant
 * Information"), which becomes the Group State Object's participants on delivery
 * (docs/deferred.md "Delivery").
 *
 * Pure. The body is untrusted: parsed by the house XML reader (plugin/xdm/xml.ts: size
 * limit before parsing, no DOCTYPE, no entities besides the predefined five), and the
 * list is bounded (MAX_PARTICIPANTS, the relay's `group-state` limit; URI and name
 * lengths likewise). What we keep (RFC 4575 §4.3, kept simple): a `full` document
 * replaces the list; a `partial` one updates users by `entity` (a user with
 * `state="deleted"` leaves); a document whose `version` is not above the last one applied
 * is ignored (§4.2: stale or repeated).
 */
import { parseXml, XmlError, type XmlElement } from '../../xdm/xml.js';

export const CONFERENCE_INFO_TYPE = 'application/conference-info+xml';
export const CONFERENCE_INFO_NS = 'urn:ietf:params:xml:ns:conference-info';
/** A NOTIFY body larger than this is refused before parsing. */
export const MAX_CONFERENCE_INFO_BYTES = 64 * 1024;
/** The relay's `group-state` takes at most this many participants. */
export const MAX_PARTICIPANTS = 1000;
const MAX_URI = 1024;
const MAX_NAME = 256;

export interface Participant {
  readonly uri: string;
  readonly name?: string;
}

/** What we keep of a conference: the last version applied and its participants. */
export interface ConferenceState {
  readonly version: number;
  readonly participants: readonly Participant[];
}

/** One user element as read: `deleted` removes it in a partial document. */
export interface UserUpdate {
  readonly uri: string;
  readonly name?: string;
  readonly deleted: boolean;
}

export interface ConferenceDoc {
  readonly state: 'full' | 'partial' | 'deleted';
  readonly version: number;
  readonly users: readonly UserUpdate[];
}

export type ParseOutcome = { readonly ok: true; readonly doc: ConferenceDoc } | { readonly ok: false; readonly why: string };

const child = (el: XmlElement, local: string): XmlElement | undefined =>
  el.children.find((c) => c.local === local && c.ns === CONFERENCE_INFO_NS);

/** RFC 4575 §5.1: a conference-info document; a bad one says why. Never throws. */
export function parseConferenceInfo(body: string, maxBytes = MAX_CONFERENCE_INFO_BYTES): ParseOutcome {
  let root: XmlElement;
  try {
    root = parseXml(body, maxBytes);
  } catch (err) {
    if (err instanceof XmlError) return { ok: false, why: `${err.code}: ${err.message}` };
    return { ok: false, why: 'unreadable XML' };
  }
  if (root.local !== 'conference-info' || root.ns !== CONFERENCE_INFO_NS) return { ok: false, why: 'not a conference-info document' };
  const state = root.attrs['state'] ?? 'full';
  if (state !== 'full' && state !== 'partial' && state !== 'deleted') return { ok: false, why: `bad state ${JSON.stringify(state.slice(0, 20))}` };
  const vtext = root.attrs['version'] ?? '';
  if (!/^\d{1,15}$/.test(vtext)) return { ok: false, why: 'missing or bad version' };
  const users: UserUpdate[] = [];
  const list = child(root, 'users');
  for (const u of list?.children ?? []) {
    if (u.local !== 'user' || u.ns !== CONFERENCE_INFO_NS) continue;
    const uri = (u.attrs['entity'] ?? '').trim();
    if (uri === '' || uri.length > MAX_URI || /[\s<>"]/.test(uri)) continue; // a user we could not name is skipped
    if (users.length >= MAX_PARTICIPANTS * 2) return { ok: false, why: 'too many users' };
    const text = child(u, 'display-text')?.text.trim();
    users.push({
      uri, deleted: u.attrs['state'] === 'deleted',
      ...(text ? { name: text.slice(0, MAX_NAME) } : {}),
    });
  }
  return { ok: true, doc: { state, version: Number(vtext), users } };
}

/**
 * The state after one document (§4.3, simply): stale versions ignored, `full` replaces,
 * `partial` updates by entity, `deleted` empties. Bounded to MAX_PARTICIPANTS (the first
 * ones kept). Pure.
 */
export function applyConferenceInfo(prev: ConferenceState | null, doc: ConferenceDoc): ConferenceState {
  if (prev !== null && doc.version <= prev.version) return prev;
  const byUri = new Map<string, Participant>();
  if (doc.state === 'partial' && prev) for (const p of prev.participants) byUri.set(p.uri, p);
  if (doc.state !== 'deleted') {
    for (const u of doc.users) {
      if (u.deleted) {
        byUri.delete(u.uri);
        continue;
      }
      // a partial user without display-text keeps the name it had
      const name = u.name ?? (doc.state === 'partial' ? byUri.get(u.uri)?.name : undefined);
      byUri.set(u.uri, name === undefined ? { uri: u.uri } : { uri: u.uri, name });
    }
  }
  return { version: doc.version, participants: [...byUri.values()].slice(0, MAX_PARTICIPANTS) };
}
