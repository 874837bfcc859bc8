/**
 * A minimal XCAP client (RFC 4825 §7.1 document fetch) for an external XDMS:
 * conditional GET with If-None-Match and a timeout.
 */
import type { XcapClientErrorCode } from '../errors.js';

export type FetchOutcome =
  | { readonly status: 'ok'; readonly body: string; readonly etag: string | null }
  | { readonly status: 'not-modified' }
  | { readonly status: 'absent' };

export class XcapClientError extends Error {
  override readonly name = 'XcapClientError';
  readonly code: XcapClientErrorCode = 'XCAP_FETCH_FAILED';
}

export interface XcapClientOptions {
  /** XCAP root URL, e.g. `http://127.0.0.1:8080/xcap-root`. */
  readonly root: string;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Sent as `Authorization: Bearer` (config xdm.token): the service's credential at the XDMS. */
  readonly token?: string;
}

export class XcapClient {
  private readonly root: string;

  constructor(private readonly opts: XcapClientOptions) {
    this.root = opts.root.replace(/\/+$/, '');
  }

  documentUrl(auid: string, xui: string, doc: string): string {
    // RFC 4825 §6: the XUI is a path segment, percent-encoded.
    return `${this.root}/${encodeURIComponent(auid)}/users/${encodeURIComponent(xui)}/${encodeURIComponent(doc)}`;
  }

  /** @throws XcapClientError on network failure, timeout, oversize or an unexpected status. */
  async fetch(auid: string, xui: string, doc: string, etag: string | null): Promise<FetchOutcome> {
    const url = this.documentUrl(auid, xui, doc);
    let res: Response;
    try {
      res = await fetch(url, {
        headers: {
          ...(etag ? { 'if-none-match': etag } : {}),
          ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
        },
        signal: AbortSignal.timeout(this.opts.timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      throw new XcapClientError(`GET ${url}: ${(err as Error).message}`);
    }
    if (res.status === 304) return { status: 'not-modified' };
    if (res.status === 404) {
      await res.body?.cancel();
      return { status: 'absent' };
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new XcapClientError(`GET ${url}: status ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > this.opts.maxBytes) {
      await res.body?.cancel();
      throw new XcapClientError(`GET ${url}: document larger than ${this.opts.maxBytes} bytes`);
    }
    let buf: ArrayBuffer;
    try {
      buf = await res.arrayBuffer();
    } catch (err) {
      throw new XcapClientError(`GET ${url}: ${(err as Error).message}`);
    }
    if (buf.byteLength > this.opts.maxBytes) {
      throw new XcapClientError(`GET ${url}: document larger than ${this.opts.maxBytes} bytes`);
    }
    return { status: 'ok', body: Buffer.from(buf).toString('utf8'), etag: res.headers.get('etag') };
  }
}
