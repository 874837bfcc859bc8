/**
 * Header names and values of B2BUA mode (CR 8.3.2.1 step 8, "200 OK procedure";
 * docs/policy.md "Step 8 (B2BUA mode)"), shared by the rules, pf.cfg and the B2BUA.
 */
import { normaliseVersion } from './facts.js';

/** Internal: pf.cfg's ticket for an INVITE it hands to the B2BUA. Never leaves the PF. */
export const PF_TICKET_HEADER = 'X-PF-Ticket';
/** Internal: marks an INVITE the B2BUA sends towards a device. Never leaves the PF. */
export const PF_LEG_HEADER = 'X-PF-Leg';
export const INTERNAL_HEADERS: readonly string[] = [PF_TICKET_HEADER, PF_LEG_HEADER];

/** CR 8.3.2.1: the session identifiers copied to each device INVITE and to the 200 OK. */
export const SESSION_ID_HEADERS: readonly string[] = ['Conversation-ID', 'Contribution-ID', 'InReplyTo-Contribution-ID'];

/**
 * Header fields of the caller's INVITE that are not carried to a device INVITE (lower
 * case): the SIP layer's own (Via, Route, Record-Route, Max-Forwards, From, To, Call-ID,
 * CSeq, Content-Length), the ones the PF replaces with its own (Contact, Supported,
 * Allow, Session-Expires, Min-SE, User-Agent, Content-Type; the caller's Allow says what
 * the caller takes, the leg's says what the B2BUA takes, RFC 3311 §5), the ones that describe the caller's
 * body, which the B2BUA replaces (Content-Disposition, Content-Encoding,
 * Content-Language, MIME-Version), and the internal ones. `Require` is filtered per
 * token instead (REQUIRE_DROPPED).
 */
export const NOT_CARRIED: ReadonlySet<string> = new Set(
  [
    'Via', 'Route', 'Record-Route', 'Max-Forwards', 'From', 'To', 'Call-ID', 'CSeq', 'Content-Length',
    'Contact', 'Supported', 'Allow', 'Session-Expires', 'Min-SE', 'User-Agent', 'Content-Type',
    'Content-Disposition', 'Content-Encoding', 'Content-Language', 'MIME-Version',
    ...INTERNAL_HEADERS,
  ].map((h) => h.toLowerCase()),
);

/**
 * Require tokens of the caller that the B2BUA itself terminates, so they are not asked
 * of the device: `timer` (RFC 4028: the caller's session timer is the B2BUA's; towards
 * the device it offers its own) and `recipient-list-invite` (RFC 5366: the B2BUA
 * consumed the list; the device gets only the optional history).
 */
export const REQUIRE_DROPPED: ReadonlySet<string> = new Set(['timer', 'recipient-list-invite']);

/** CR step 8: Supported of each device INVITE (RFC 4028, RFC 5366). */
export const DEVICE_SUPPORTED = 'timer, recipient-list-invite';

/** RFC 4028 §5: the smallest Session-Expires / Min-SE. */
export const MIN_SE = 90;

const RELEASE = /^OMA[0-9]+\.[0-9]+$/;

/**
 * The PF's User-Agent (CR Appendix D): `CPM-serv/OMA<major>.<minor>`, then any other
 * product tokens. `release` as in policy `supportedVersions` (`OMA2.2`); null when it is
 * not of that form.
 */
export function pfUserAgent(release: string, products: readonly string[] = []): string | null {
  const v = normaliseVersion(release);
  if (!RELEASE.test(v) || products.some((p) => !/^[\x21-\x7e]+$/.test(p))) return null;
  return [`CPM-serv/${v}`, ...products].join(' ');
}
