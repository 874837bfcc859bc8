// Conversation-ID and Contribution-ID as IMAP mailbox name components (docs/history.md
// "Folder names"). RFC 3501 §5.1 leaves the hierarchy delimiter, `%` and `*` (LIST
// wildcards) and `&` (the modified UTF-7 shift, §5.1.3) special, and servers add their own
// rules (Dovecot refuses `/` and, with maildir, uses `.` as the delimiter). So a component
// keeps only [A-Za-z0-9] and `-_+@,:!`; every other UTF-8 byte becomes `=` and two
// upper-case hex digits (`=` itself included), and the first letter of any spelling of
// INBOX. The mapping is one-to-one and reversible.

const KEEP = /^[A-Za-z0-9\-_+@,:!]$/;

/** Longest encoded component: two of them, a delimiter and Dovecot's maildir `.` fit one 255-byte directory name. */
export const MAX_COMPONENT = 120;

export function encodeComponent(id: string): string {
  let out = '';
  // RFC 3501 §5.1: INBOX is case-insensitive, so `inbox` and `Inbox` would name one folder;
  // its first letter is escaped, and each spelling keeps its own name.
  if (id.toUpperCase() === 'INBOX') return `=${id.charCodeAt(0).toString(16).toUpperCase()}${id.slice(1)}`;
  for (const ch of id) {
    if (KEEP.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of Buffer.from(ch, 'utf8')) out += `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The id back, or undefined when `name` is not an encoded component. */
export function decodeComponent(name: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const ch = name[i]!;
    if (ch === '=') {
      const hex = name.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (KEEP.test(ch)) {
      bytes.push(ch.charCodeAt(0));
    } else {
      return undefined;
    }
  }
  const buf = Buffer.from(bytes);
  const text = buf.toString('utf8');
  // Reject byte sequences that are not UTF-8 (they cannot come from encodeComponent).
  return Buffer.from(text, 'utf8').equals(buf) ? text : undefined;
}

/** Why an id cannot name a folder, or undefined when it can. */
export function componentProblem(id: string): string | undefined {
  if (id === '') return 'empty';
  const n = encodeComponent(id).length;
  return n > MAX_COMPONENT ? `encoded name is ${n} characters, more than ${MAX_COMPONENT}` : undefined;
}
