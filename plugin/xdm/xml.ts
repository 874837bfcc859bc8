/**
 * Strict, namespace-aware XML parsing for untrusted XDM documents (CR 8.4.1;
 * docs/policy.md "XDM documents"): well-formedness via saxes, no DOCTYPE/DTD at all, no
 * entity references besides the five predefined ones and character references,
 * and a byte limit checked before parsing.
 */
import { SaxesParser } from 'saxes';
import type { XmlErrorCode } from '../errors.js';


export class XmlError extends Error {
  override readonly name = 'XmlError';
  constructor(
    readonly code: XmlErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface XmlElement {
  /** Namespace URI ('' when none). */
  readonly ns: string;
  /** Local name, without prefix. */
  readonly local: string;
  /** Attributes keyed by local name when un-namespaced, else `{ns}local`. */
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: readonly XmlElement[];
  /** Concatenated character data directly inside this element. */
  readonly text: string;
}

interface Building {
  ns: string;
  local: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/** Maximum element nesting; XDM documents are shallow. */
const MAX_DEPTH = 64;

/**
 * Parse a whole XML document into an element tree.
 * @throws XmlError
 */
export function parseXml(text: string, maxBytes: number): XmlElement {
  if (text.length > maxBytes || Buffer.byteLength(text, 'utf8') > maxBytes) {
    throw new XmlError('XML_TOO_LARGE', `document larger than ${maxBytes} bytes`);
  }
  const parser = new SaxesParser({ xmlns: true, position: true });
  const stack: Building[] = [];
  let root: XmlElement | null = null;
  let failure: XmlError | null = null;
  const fail = (e: XmlError): void => {
    failure ??= e;
  };

  parser.on('doctype', () => {
    // No DTDs at all: this also rules out external and internal entity declarations.
    fail(new XmlError('XML_DTD_FORBIDDEN', 'DOCTYPE is not allowed in XDM documents'));
  });
  parser.on('error', (err) => {
    fail(new XmlError('XML_NOT_WELL_FORMED', err.message));
  });
  parser.on('opentag', (tag) => {
    if (stack.length >= MAX_DEPTH) {
      fail(new XmlError('XML_NOT_WELL_FORMED', `nesting deeper than ${MAX_DEPTH}`));
      return;
    }
    const attrs: Record<string, string> = {};
    for (const a of Object.values(tag.attributes)) {
      if (a.prefix === 'xmlns' || a.name === 'xmlns') continue;
      attrs[a.uri ? `{${a.uri}}${a.local}` : a.local] = a.value;
    }
    stack.push({ ns: tag.uri, local: tag.local, attrs, children: [], text: '' });
  });
  parser.on('text', (t) => {
    const top = stack[stack.length - 1];
    if (top) top.text += t;
  });
  parser.on('cdata', (t) => {
    const top = stack[stack.length - 1];
    if (top) top.text += t;
  });
  parser.on('closetag', () => {
    const b = stack.pop();
    if (!b) return;
    const el: XmlElement = { ns: b.ns, local: b.local, attrs: b.attrs, children: b.children, text: b.text };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else root = el;
  });

  try {
    parser.write(text);
    if (!failure) parser.close();
  } catch (err) {
    // saxes throws when no error handler consumed the error; normalise.
    fail(new XmlError('XML_NOT_WELL_FORMED', err instanceof Error ? err.message : String(err)));
  }
  if (failure) throw failure;
  if (!root) throw new XmlError('XML_NOT_WELL_FORMED', 'no root element');
  return root;
}
