/**
 * The text form of a proxy decision (docs/jsonrpc.md, `pf.invite` `text: true`), which
 * pf.cfg applies with string operations instead of a JSON decode:
 *
 *   proxy|<stage>|<remove, comma-separated>|<failover statuses, comma-separated>|<failover R-URI>|<fork>|<hdrs>
 *
 * `fork` is the `fork` member as JSON text ('' when not asked for). The only characters
 * JSON must escape in it are `"` and the CRLF line ends of `hdrs`, so Kamailio undoes
 * the escaping with two replacements. A decision that cannot be carried so (a field with
 * `|`, a backslash, a control character other than the CRLFs of `hdrs`, or a non-ASCII
 * character) gets null: the JSON object is sent instead.
 */
import type { ProxyDecision } from '../rules/decision.js';
import type { ForkResult } from '../callerprefs/fork.js';

/** Printable ASCII without `|` and `\`. */
const PLAIN = /^[\x20-\x5b\x5d-\x7b\x7d\x7e]*$/;
/** Header lines: PLAIN text, each line ending in CRLF. */
const LINES = /^(?:[\x20-\x5b\x5d-\x7b\x7d\x7e]*\r\n)*$/;

export function proxyDecisionText(d: ProxyDecision, fork: ForkResult | undefined): string | null {
  const fields = [
    d.action,
    d.stage,
    d.remove.join(','),
    d.failover ? d.failover.statuses.join(',') : '',
    d.failover ? d.failover.ruri : '',
    fork === undefined ? '' : JSON.stringify(fork),
  ];
  for (const f of fields) if (!PLAIN.test(f)) return null;
  // names that a comma would split or that JSON would escape stay in the JSON form
  if (d.remove.some((n) => n === '' || n.includes(',') || n.includes('"'))) return null;
  if (!LINES.test(d.hdrs)) return null;
  fields.push(d.hdrs);
  return fields.join('|');
}
