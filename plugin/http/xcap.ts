/**
 * XCAP routes (RFC 4825) over the embedded store: whole-document GET, PUT, DELETE under
 * `/xcap-root/<auid>/users/<xui>/<document>`, with strong ETags and the conditional
 * headers of RFC 9110 §13. Node selectors (`~~`) and global documents are not served (404).
 * Every request is authorised first (auth.ts): the operator, or the user whose XUI it is,
 * as a trusted Aggregation Proxy asserts it; a refusal is 401/403 with an XCAP error body
 * and changes nothing. A write the shared-state engine cannot take (unreachable, timed out,
 * refusing writes) is 503 with Retry-After (RFC 9110 §15.6.4, §10.2.3): the document is
 * unchanged, the client may try again (docs/deployment.md §11).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AUIDS, XcapRejectError, etagOf, type DocumentStore, type StoredDocument } from '../xdm/store.js';
import { SharedStateError } from '../shared-state/redis.js';
import { challenge, type Access } from './auth.js';

export interface XcapRouteOptions {
  readonly store: DocumentStore;
  /** XUI -> served-user key (URL-decoded by the router first); null when invalid. */
  readonly normaliseXui: (xui: string) => string | null;
  readonly now: () => number;
  /**
   * Who may do this (auth.ts access()): `xui` is the document's served-user key (null when
   * not a user), `anyUser` for the capabilities document every user may read.
   */
  readonly authorise: (req: FastifyRequest, target: { readonly xui: string | null; readonly anyUser: boolean }) => Access;
}

const XCAP_ERROR_MIME = 'application/xcap-error+xml';

/**
 * Seconds a client should wait after a 503 from the engine: a Redis Cluster promotes a
 * replica after cluster-node-timeout plus an election (a few seconds, docs/deployment.md §11).
 */
export const ENGINE_RETRY_AFTER_S = 5;

/** The 503 of a write the shared-state engine did not take; null for any other error. */
function engineUnavailable(err: unknown, req: FastifyRequest, reply: FastifyReply, t: Target): FastifyReply | null {
  if (!(err instanceof SharedStateError)) return null;
  req.log.warn({ err: err.message, method: req.method, auid: t.auid, xui: t.xui }, 'xcap write failed: shared state engine unavailable');
  return reply
    .code(503)
    .header('retry-after', String(ENGINE_RETRY_AFTER_S))
    .type('text/plain; charset=utf-8')
    .send('document store unavailable: the shared state engine did not take the write; the document is unchanged, retry later\n');
}

const XCAP_CAPS =
  '<?xml version="1.0" encoding="UTF-8"?>\n' +
  '<xcap-caps xmlns="urn:ietf:params:xml:ns:xcap-caps">\n' +
  `  <auids>${['xcap-caps', ...Object.keys(AUIDS)].map((a) => `<auid>${a}</auid>`).join('')}</auids>\n` +
  '  <extensions/>\n' +
  `  <namespaces>${['urn:ietf:params:xml:ns:xcap-caps', ...Object.values(AUIDS).map((a) => a.rootNs)]
    .map((n) => `<namespace>${n}</namespace>`)
    .join('')}</namespaces>\n` +
  '</xcap-caps>\n';

/** RFC 4825 §11 error document. */
function xcapError(condition: string, phrase?: string): string {
  const attr = phrase ? ` phrase="${phrase.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`)}"` : '';
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error"><${condition}${attr}/></xcap-error>\n`
  );
}

/** Parse an If-Match / If-None-Match value: `*` or a list of entity tags. */
function etagList(h: string | string[] | undefined): '*' | string[] | null {
  if (h === undefined) return null;
  const v = Array.isArray(h) ? h.join(',') : h;
  if (v.trim() === '*') return '*';
  return v.match(/(?:W\/)?"[^"]*"/g) ?? [];
}

/** RFC 9110 §13.1.1 (strong comparison) and §13.1.2 (weak comparison). */
function matches(list: '*' | string[], cur: StoredDocument | undefined, weak: boolean): boolean {
  if (!cur) return false;
  if (list === '*') return true;
  return list.some((t) => (weak ? t.replace(/^W\//, '') : t) === cur.etag);
}

interface Target {
  readonly auid: string;
  readonly xui: string;
  readonly doc: string;
}

interface XcapParams {
  auid: string;
  xui: string;
  '*': string;
}

/**
 * An encapsulated fastify plugin: the XCAP content-type parsers stay inside it. Each
 * registration has its own write queues.
 */
export const xcapRoutes: FastifyPluginAsync<XcapRouteOptions> = async (xcap, deps) => {
  const { store } = deps;
  /** Per-document write queue: a conditional PUT/DELETE checks and writes atomically. */
  const queues = new Map<string, Promise<unknown>>();
  const serial = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const prev = queues.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    queues.set(key, tail);
    void tail.then(() => {
      if (queues.get(key) === tail) queues.delete(key);
    });
    return run;
  };

  const target = (req: FastifyRequest<{ Params: XcapParams }>, reply: FastifyReply): Target | null => {
    const { auid } = req.params;
    const doc = req.params['*'];
    const xui = deps.normaliseXui(req.params.xui);
    if (!AUIDS[auid] || xui === null || doc === '' || doc.includes('/')) {
      void reply.code(404).send();
      return null;
    }
    return { auid, xui, doc };
  };

  /** RFC 9110 §13.2.2 order: If-Match, then If-None-Match. Returns the status to send, or null. */
  const preconditions = (req: FastifyRequest, cur: StoredDocument | undefined, read: boolean): number | null => {
    const ifMatch = etagList(req.headers['if-match']);
    if (ifMatch !== null && !matches(ifMatch, cur, false)) return 412;
    const ifNone = etagList(req.headers['if-none-match']);
    if (ifNone !== null && matches(ifNone, cur, true)) return read ? 304 : 412;
    return null;
  };

  // Before the body is read: a refused request changes nothing.
  xcap.addHook('onRequest', async (req, reply) => {
    const params = req.params as Partial<XcapParams>;
    const xui = params.xui === undefined ? null : deps.normaliseXui(params.xui);
    const a = deps.authorise(req, { xui, anyUser: params.xui === undefined });
    if (a.ok) return;
    req.log.info({ method: req.method, auid: params.auid, xui, reason: a.reason }, 'xcap request refused');
    // RFC 4825 §11 defines no condition for authorisation: the phrase says what was wrong
    return challenge(reply, a).type(XCAP_ERROR_MIME).send(xcapError('constraint-failure', a.reason));
  });

  // Documents arrive as text; the store does the XML checks.
  xcap.addContentTypeParser(
    Object.values(AUIDS).map((a) => a.mime),
    { parseAs: 'string', bodyLimit: store.maxBytes },
    (_req, body, done) => done(null, body),
  );

  // RFC 4825 §12: the server's capabilities, a global read-only document.
  xcap.get('/xcap-root/xcap-caps/global/index', async (_req, reply) =>
    reply.type('application/xcap-caps+xml').header('etag', etagOf(XCAP_CAPS)).send(XCAP_CAPS),
  );

  xcap.get<{ Params: XcapParams }>('/xcap-root/:auid/users/:xui/*', async (req, reply) => {
    const t = target(req, reply);
    if (!t) return reply;
    const cur = store.get(t.auid, t.xui, t.doc);
    const pre = preconditions(req, cur, true);
    if (pre !== null) return reply.code(pre).header('etag', cur?.etag).send();
    if (!cur) return reply.code(404).send();
    return reply.header('etag', cur.etag).type(cur.mime).send(cur.body);
  });

  xcap.put<{ Params: XcapParams; Body: string }>(
    '/xcap-root/:auid/users/:xui/*',
    { bodyLimit: store.maxBytes },
    async (req, reply) => {
      const t = target(req, reply);
      if (!t) return reply;
      const auid = AUIDS[t.auid];
      // RFC 4825 §8.2.1: the MIME type must be the AUID's.
      const ctype = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (!auid || ctype !== auid.mime || typeof req.body !== 'string') {
        return reply.code(415).send();
      }
      const body = req.body;
      return serial(`${t.auid}\u0000${t.xui}\u0000${t.doc}`, async () => {
        const cur = store.get(t.auid, t.xui, t.doc);
        const pre = preconditions(req, cur, false);
        if (pre !== null) return reply.code(pre).send();
        try {
          const stored = await store.put(t.auid, t.xui, t.doc, body, deps.now());
          return reply
            .code(cur ? 200 : 201)
            .header('etag', stored.etag)
            .send();
        } catch (err) {
          const unavailable = engineUnavailable(err, req, reply, t);
          if (unavailable) return unavailable;
          if (!(err instanceof XcapRejectError)) throw err;
          req.log.info({ code: err.code, auid: t.auid, xui: t.xui }, 'xcap put rejected');
          switch (err.code) {
            case 'XCAP_TOO_LARGE':
              return reply.code(413).send();
            case 'XCAP_DTD_FORBIDDEN':
              return reply
                .code(409)
                .type(XCAP_ERROR_MIME)
                .send(xcapError('constraint-failure', 'DTDs and entity declarations are not allowed'));
            case 'XCAP_SCHEMA':
              return reply.code(409).type(XCAP_ERROR_MIME).send(xcapError('schema-validation-error'));
            case 'XCAP_NOT_WELL_FORMED':
              return reply.code(409).type(XCAP_ERROR_MIME).send(xcapError('not-well-formed'));
          }
        }
      });
    },
  );

  xcap.delete<{ Params: XcapParams }>('/xcap-root/:auid/users/:xui/*', async (req, reply) => {
    const t = target(req, reply);
    if (!t) return reply;
    return serial(`${t.auid}\u0000${t.xui}\u0000${t.doc}`, async () => {
      const cur = store.get(t.auid, t.xui, t.doc);
      const pre = preconditions(req, cur, false);
      if (pre !== null) return reply.code(pre).send();
      if (!cur) return reply.code(404).send();
      try {
        await store.delete(t.auid, t.xui, t.doc);
      } catch (err) {
        const unavailable = engineUnavailable(err, req, reply, t);
        if (unavailable) return unavailable;
        throw err;
      }
      return reply.code(200).send();
    });
  });
};
