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
import { DurableLmdbStore } from '../lmdb/durable.js';
import type { XcapRejectCode } from '../errors.js';

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

/** Documents under `d\0auid\0xui\0doc`; their ETags alone under `e\0...` (cheap to check). */
function docKey(auid: string, xui: string, doc: string): string {
  return `d\u0000${auid}\u0000${xui}\u0000${doc}`;
}

function etagKey(auid: string, xui: string, doc: string): string {
  return `e\u0000${auid}\u0000${xui}\u0000${doc}`;
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

/** What the XCAP server and the embedded XDM source need from a document store; lmdb or the shared engine. */
export interface DocumentStore {
  readonly maxBytes: number;
  /** Synchronous read (hot path). */
  get(auid: string, xui: string, doc: string): StoredDocument | undefined;
  /** The current ETag only, or undefined when there is no document. */
  etag(auid: string, xui: string, doc: string): string | undefined;
  /** Replace (or create) after checking; resolves once stored. @throws XcapRejectError */
  put(auid: string, xui: string, doc: string, body: string, now: number): Promise<StoredDocument>;
  /** Resolves with whether there was a document. */
  delete(auid: string, xui: string, doc: string): Promise<boolean>;
  readonly isOpen: boolean;
  close(): Promise<void>;
}

/** A PUT's document after checking it for its AUID. @throws XcapRejectError, Error on an unknown AUID */
export function checkedDocument(auidName: string, body: string, maxBytes: number, now: number): StoredDocument {
  const auid = AUIDS[auidName];
  if (!auid) throw new Error(`unknown auid ${auidName}`);
  checkDocument(auid, body, maxBytes);
  return { body, etag: etagOf(body), mime: auid.mime, updatedAt: now };
}

/**
 * Documents in lmdb. Reads go to lmdb directly, so service instances sharing `dataDir`
 * see each other's changes; `etag()` reads only the tag, for the XDM source's cache check.
 */
export class XcapStore extends DurableLmdbStore<StoredDocument | string, string> implements DocumentStore {
  constructor(
    db: Database<StoredDocument | string, string>,
    readonly maxBytes: number,
  ) {
    super(db);
  }

  /** Synchronous read (lmdb reads are memory-mapped). */
  get(auid: string, xui: string, doc: string): StoredDocument | undefined {
    const v = this.db.get(docKey(auid, xui, doc));
    return typeof v === 'object' ? v : undefined;
  }

  /** The current ETag only, or undefined when there is no document. */
  etag(auid: string, xui: string, doc: string): string | undefined {
    const v = this.db.get(etagKey(auid, xui, doc));
    return typeof v === 'string' ? v : undefined;
  }

  /**
   * Replace (or create) a document after checking it. Resolves once durable.
   * @throws XcapRejectError (the previous document stays)
   */
  async put(auidName: string, xui: string, doc: string, body: string, now: number): Promise<StoredDocument> {
    const stored = checkedDocument(auidName, body, this.maxBytes, now);
    await this.writeDurably(() => {
      this.inTransaction(this.db.put(docKey(auidName, xui, doc), stored));
      this.inTransaction(this.db.put(etagKey(auidName, xui, doc), stored.etag));
    });
    return stored;
  }

  async delete(auid: string, xui: string, doc: string): Promise<boolean> {
    return this.writeDurably(() => {
      const existed = this.db.get(docKey(auid, xui, doc)) !== undefined;
      this.inTransaction(this.db.remove(docKey(auid, xui, doc)));
      this.inTransaction(this.db.remove(etagKey(auid, xui, doc)));
      return existed;
    });
  }
}
