/**
 * URI lists in an INVITE (RFC 5366: a multipart/mixed body with an
 * `application/resource-lists+xml` part of disposition `recipient-list`, RFC 5363) and
 * the recipient-list-history a URI-list service hands on (RFC 5364 §7: the same format,
 * disposition `recipient-list-history; handling=optional`), with the RFC 5364 §4 copy
 * control applied: `bcc` entries left out, `anonymize` entries anonymized.
 * Pure and total: a malformed list is a value, never a throw.
 */
import type { SipRequest } from './message.js';
import { dispositionType, parseMediaType, parseMultipart, partHeader } from './multipart.js';
import { parseXml, XmlError, type XmlElement } from '../xdm/xml.js';

export const RESOURCE_LISTS_TYPE = 'application/resource-lists+xml';
export const RESOURCE_LISTS_NS = 'urn:ietf:params:xml:ns:resource-lists';
export const COPY_CONTROL_NS = 'urn:ietf:params:xml:ns:copycontrol';
/** RFC 5364 §7 (our handling: optional, so a device that does not know it still takes the INVITE). */
export const HISTORY_DISPOSITION = 'recipient-list-history; handling=optional';
/** RFC 3323 §4.1.1.3: what an anonymized entry shows instead of its URI. */
export const ANONYMOUS_URI = 'sip:anonymous@anonymous.invalid';
export const MAX_RECIPIENT_LIST_BYTES = 64 * 1024;

export interface Recipient {
  readonly uri: string;
  readonly displayName: string | null;
  /** RFC 5364 §4 `copyControl`, lower-cased; null when absent or unknown. */
  readonly copyControl: 'to' | 'cc' | 'bcc' | null;
  readonly anonymize: boolean;
}

export type RecipientList =
  | { readonly kind: 'none' }
  | { readonly kind: 'ok'; readonly recipients: readonly Recipient[] }
  | { readonly kind: 'malformed'; readonly why: string };

const COPY_CONTROL = `{${COPY_CONTROL_NS}}copyControl`;
const ANONYMIZE = `{${COPY_CONTROL_NS}}anonymize`;

/**
 * An attribute of the copy-control namespace. The un-namespaced spelling counts too: a
 * sender that forgot the namespace still must not have its `bcc` recipients disclosed.
 */
function ccAttr(e: XmlElement, nsKey: string, local: string): string | undefined {
  return e.attrs[nsKey] ?? e.attrs[local];
}

function recipientOf(e: XmlElement): Recipient | null {
  const uri = e.attrs['uri']?.trim();
  if (!uri) return null;
  const cc = ccAttr(e, COPY_CONTROL, 'copyControl')?.trim().toLowerCase();
  const anon = ccAttr(e, ANONYMIZE, 'anonymize')?.trim().toLowerCase();
  const dn = e.children.find((c) => c.ns === RESOURCE_LISTS_NS && c.local === 'display-name');
  return {
    uri,
    displayName: dn ? dn.text : null,
    copyControl: cc === 'to' || cc === 'cc' || cc === 'bcc' ? cc : null,
    anonymize: anon === 'true' || anon === '1', // xs:boolean
  };
}

/** Every `<entry>` of every `<list>`, nested lists included, in document order. */
function collect(e: XmlElement, out: Recipient[]): void {
  for (const c of e.children) {
    if (c.ns !== RESOURCE_LISTS_NS) continue;
    if (c.local === 'list') collect(c, out);
    else if (c.local === 'entry') {
      const r = recipientOf(c);
      if (r) out.push(r);
    }
    // `entry-ref` and `external` (RFC 4826 §3.2) point elsewhere: not followed.
  }
}

/** Read a resource-lists document (RFC 4826 §3). */
export function parseRecipients(xml: string): RecipientList {
  let root: XmlElement;
  try {
    root = parseXml(xml, MAX_RECIPIENT_LIST_BYTES);
  } catch (err) {
    if (err instanceof XmlError) return { kind: 'malformed', why: `${err.code}: ${err.message}` };
    throw err;
  }
  if (root.ns !== RESOURCE_LISTS_NS || root.local !== 'resource-lists') return { kind: 'malformed', why: 'root is not resource-lists' };
  const recipients: Recipient[] = [];
  collect(root, recipients);
  return { kind: 'ok', recipients };
}

/**
 * The recipient list of an INVITE (RFC 5366 §4): `none` when the body is no
 * multipart/mixed or has no recipient-list part; `malformed` when the multipart body or
 * the list cannot be read.
 */
export function recipientListOf(msg: SipRequest): RecipientList {
  const ct = msg.get('Content-Type');
  const mt = ct === undefined ? null : parseMediaType(ct);
  if (!ct || !mt || mt.type !== 'multipart' || mt.subtype !== 'mixed') return { kind: 'none' };
  const mp = parseMultipart(ct, msg.body);
  if (mp.kind === 'error') return { kind: 'malformed', why: `multipart ${mp.code}: ${mp.why}` };
  const part = mp.parts.find((p) => {
    const pt = parseMediaType(partHeader(p, 'Content-Type') ?? '');
    return pt !== null && `${pt.type}/${pt.subtype}` === RESOURCE_LISTS_TYPE && dispositionType(partHeader(p, 'Content-Disposition')) === 'recipient-list';
  });
  if (!part) return { kind: 'none' };
  const cte = partHeader(part, 'Content-Transfer-Encoding')?.toLowerCase();
  if (cte !== undefined && cte !== '7bit' && cte !== '8bit' && cte !== 'binary') return { kind: 'malformed', why: `Content-Transfer-Encoding ${cte}` };
  return parseRecipients(part.body);
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"'\t\n\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The recipient-list-history document (RFC 5364 §7) for these recipients: `bcc` entries
 * left out, `anonymize` ones shown as ANONYMOUS_URI without display name (RFC 5364 §4).
 * Null when no entry is left (no history part is sent then).
 */
export function recipientListHistory(recipients: readonly Recipient[]): string | null {
  const kept = recipients.filter((r) => r.copyControl !== 'bcc');
  if (kept.length === 0) return null;
  let xml = `<?xml version="1.0" encoding="UTF-8"?>\r\n<resource-lists xmlns="${RESOURCE_LISTS_NS}" xmlns:cp="${COPY_CONTROL_NS}">\r\n<list>\r\n`;
  for (const r of kept) {
    let attrs = `uri="${escapeXml(r.anonymize ? ANONYMOUS_URI : r.uri)}"`;
    if (r.copyControl) attrs += ` cp:copyControl="${r.copyControl}"`;
    if (r.anonymize) attrs += ' cp:anonymize="true"';
    xml += r.displayName !== null && !r.anonymize ? `<entry ${attrs}><display-name>${escapeXml(r.displayName)}</display-name></entry>\r\n` : `<entry ${attrs}/>\r\n`;
  }
  return `${xml}</list>\r\n</resource-lists>\r\n`;
}
