/**
 * The embedded XCAP-compatible document store (RFC 4825), whole documents only:
 * `/xcap-root/<auid>/users/<xui>/<document>`, GET / PUT / DELETE with strong ETags.
 * Documents are checked before they replace the previous one: well-formed, no DTD or
 * entities, within the size limit, and the right root element for the AUID. A rejected
 * PUT leaves the previous document in force. Persisted in lmdb.
 */
import { createHash } from 'node:crypto';
import type { Database } from 'lmdb';
import { parseXml, XmlError, type XmlElement } from './xml.js';

export interface Auid {
  readonly mime: string;
  /** Root element the document must have (namespace + local name). */
  readonly rootNs: string;
  readonly rootLocal: string;
}

/** The AUIDs served (RFC 4826 §3, OMA XDM access-rules / RFC 4745); others are 404. */
export const AUIDS: Readonly<Record<string, Auid>> = {
  'resource-lists': {
    mime: 'application/resource-lists+xml',
    rootNs: 'urn:ietf:params:xml:ns:resource-lists',
    rootLocal: 'resource-lists',
  },
  'org.openmobilealliance.access-rules': {
    mime: 'application/auth-policy+xml',
    rootNs: 'urn:ietf:params:xml:ns:common-policy',
    rootLocal: 'ruleset',
  },
};

export interface StoredDocument {
  readonly body: string;
  /** Strong entity tag, quoted (RFC 9110 §8.8.3). */
  readonly etag: string;
  readonly mime: string;
  readonly updatedAt: number;
}

/** Why a PUT was refused (maps to RFC 4825 §11 error conditions). */
export type XcapRejectCode = 'XCAP_NOT_WELL_FORMED' | 'XCAP_DTD_FORBIDDEN' | 'XCAP_TOO_LARGE' | 'XCAP_SCHEMA';

export class XcapRejectError extends Error {
  override readonly name = 'XcapRejectError';
  constructor(
    readonly code: XcapRejectCode,
    message: string,
  ) {
    super(message);
  }
}

export function etagOf(body: string): string {
  return `"${createHash('sha256').update(body, 'utf8').digest('base64url').slice(0, 27)}"`;
}

function storeKey(auid: string, xui: string, doc: string): string {
  return `${auid}\u0000${xui}\u0000${doc}`;
}

/** Check a document for an AUID; returns its parsed root. @throws XcapRejectError */
export function checkDocument(auid: Auid, body: string, maxBytes: number): XmlElement {
  let root: XmlElement;
  try {
    root = parseXml(body, maxBytes);
  } catch (err) {
    if (!(err instanceof XmlError)) throw err;
    switch (err.code) {
      case 'XML_TOO_LARGE':
        throw new XcapRejectError('XCAP_TOO_LARGE', err.message);
      case 'XML_DTD_FORBIDDEN':
        throw new XcapRejectError('XCAP_DTD_FORBIDDEN', err.message);
      default:
        throw new XcapRejectError('XCAP_NOT_WELL_FORMED', err.message);
    }
  }
  // RFC 4825 §8.2.5: the document must be valid for the AUID; we check the root only.
  if (root.ns !== auid.rootNs || root.local !== auid.rootLocal) {
    throw new XcapRejectError(
      'XCAP_SCHEMA',
      `root element must be {${auid.rootNs}}${auid.rootLocal}, not {${root.ns}}${root.local}`,
    );
  }
  return root;
}

export type DocumentListener = (auid: string, xui: string, doc: string) => void;

export class XcapStore {
  private readonly listeners: DocumentListener[] = [];
  private open = true;

  constructor(
    private readonly db: Database<StoredDocument, string>,
    readonly maxBytes: number,
  ) {}

  get isOpen(): boolean {
    return this.open;
  }

  /** Synchronous read (lmdb reads are memory-mapped). */
  get(auid: string, xui: string, doc: string): StoredDocument | undefined {
    return this.db.get(storeKey(auid, xui, doc));
  }

  /**
   * Replace (or create) a document after checking it. Resolves once durable.
   * @throws XcapRejectError (the previous document stays)
   */
  async put(auidName: string, xui: string, doc: string, body: string, now: number): Promise<StoredDocument> {
    const auid = AUIDS[auidName];
    if (!auid) throw new Error(`unknown auid ${auidName}`);
    checkDocument(auid, body, this.maxBytes);
    const stored: StoredDocument = { body, etag: etagOf(body), mime: auid.mime, updatedAt: now };
    await this.db.put(storeKey(auidName, xui, doc), stored);
    await this.db.flushed;
    this.emit(auidName, xui, doc);
    return stored;
  }

  async delete(auid: string, xui: string, doc: string): Promise<boolean> {
    const removed = await this.db.remove(storeKey(auid, xui, doc));
    await this.db.flushed;
    if (removed) this.emit(auid, xui, doc);
    return removed;
  }

  /** Called after every change (the XDM source drops its cache entry). */
  onChange(l: DocumentListener): void {
    this.listeners.push(l);
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    await this.db.flushed;
  }

  private emit(auid: string, xui: string, doc: string): void {
    for (const l of this.listeners) l(auid, xui, doc);
  }
}
