/**
 * The request as a proxy forwards it after Kamailio's header edits: `remove_hf` of
 * `remove` (names, compact forms accepted, case-insensitive), then `append_hf` of `hdrs`
 * (whole `Name: value` CRLF lines, appended after the others). It is what Kamailio's
 * `$mbu` holds after a proxy decision, and what the RFC 3841 matcher forks on
 * (docs/jsonrpc.md `pf.invite` `fork`).
 */
import { canonicalHeaderName, editedRequest, parseSipMessage, type SipRequest } from './message.js';

/**
 * The edited request, built from the parsed one (`editedRequest`); the text is printed
 * and parsed again only when that cannot give the same result.
 * @throws SipParseError when `hdrs` holds a line that is no header field
 */
export function applyHeaderEdits(msg: SipRequest, remove: readonly string[], hdrs: string): SipRequest {
  return editedRequest(msg, remove, hdrs) ?? reparseHeaderEdits(msg, remove, hdrs);
}

/** applyHeaderEdits by printing the edited request and parsing it (the reference). */
export function reparseHeaderEdits(msg: SipRequest, remove: readonly string[], hdrs: string): SipRequest {
  const drop = new Set(remove.map((r) => canonicalHeaderName(r).toLowerCase()));
  let head = `${msg.method} ${msg.ruri} SIP/2.0\r\n`;
  for (const h of msg.headers) {
    if (!drop.has(canonicalHeaderName(h.name).toLowerCase())) head += `${h.name}: ${h.value}\r\n`;
  }
  const edited = parseSipMessage(`${head}${hdrs}\r\n${msg.body}`);
  if (edited.kind !== 'request') throw new Error('edited request is not a request');
  return edited;
}
