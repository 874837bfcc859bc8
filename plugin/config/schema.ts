/**
 * Service configuration: one JSON file plus environment overrides, validated once at
 * startup (docs/service.md). The TypeBox schema is also the TypeScript type.
 */
import { Type, type Static } from '@sinclair/typebox';
import { PolicyConfigSchema } from './policy.js';
import { SharedStateConfigSchema } from './shared-state.js';
import type { Policy } from '../rules/policy.js';

const XdmConfigSchema = Type.Object(
  {
    /** Absent/null: the embedded XCAP store. Otherwise the external XCAP root URL. */
    url: Type.Union([Type.String({ pattern: '^https?://' }), Type.Null()], { default: null }),
    /** Document name under each user's folder. */
    document: Type.String({ minLength: 1, pattern: '^[^/]+$', default: 'index' }),
    maxDocumentBytes: Type.Integer({ minimum: 256, maximum: 16 * 1024 * 1024, default: 256 * 1024 }),
    /** External XCAP fetch timeout; keep it below Kamailio's PF_RPC_TIMEOUT (1000 ms). */
    timeoutMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 500 }),
    /** How long a fetched external document is trusted before revalidation (If-None-Match). */
    cacheTtlMs: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 5000 }),
    /** With `url`: the bearer token the service presents to the XDMS (PF_XDM_TOKEN); empty: none. Never logged. */
    token: Type.String({ default: '', maxLength: 512 }),
    /**
     * Aggregation Proxies whose X-3GPP-Asserted-Identity / X-XCAP-Asserted-Identity the embedded
     * store believes (plugin/http/auth.ts): addresses or CIDR blocks. Default: none.
     */
    trustedProxies: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 256, default: [] }),
    /** The same by client certificate (HTTPS only): SHA-256 fingerprints, hex with or without colons. */
    trustedProxyCertificates: Type.Array(Type.String({ pattern: '^(sha-256 )?([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$' }), {
      maxItems: 256,
      default: [],
    }),
  },
  { additionalProperties: false, default: {} },
);

const RegistrarConfigSchema = Type.Object(
  {
    defaultExpires: Type.Integer({ minimum: 1, default: 3600 }),
    maxExpires: Type.Integer({ minimum: 1, default: 7200 }),
    /** Kamailio registrar `min_expires` (its default 60): shorter expiries are raised to it. */
    minExpires: Type.Integer({ minimum: 0, default: 60 }),
    /** Devices per user (Kamailio registrar `max_contacts`); a REGISTER over it stores nothing. */
    maxContacts: Type.Integer({ minimum: 1, maximum: 10_000, default: 64 }),
    /** Interval of the expired-device purge. */
    purgeIntervalMs: Type.Integer({ minimum: 100, default: 30_000 }),
  },
  { additionalProperties: false, default: {} },
);

const MultiDeviceSchema = Type.Union([Type.Literal('A'), Type.Literal('B'), Type.Literal('C')], { default: 'B' });

/** B2BUA mode (CR 8.3.2.1 step 8; docs/b2bua.md). Started when some served user's mode is b2bua. */
const B2buaConfigSchema = Type.Object(
  {
    /** The B2BUA's SIP listener (TCP, loopback): Kamailio's PF_B2BUA_URI. 0: a free port. */
    sipPort: Type.Integer({ minimum: 0, maximum: 65535, default: 5070 }),
    /** Kamailio's TCP SIP address: every leg and response goes there (outbound proxy). */
    proxyHost: Type.String({ minLength: 1, default: '127.0.0.1' }),
    proxyPort: Type.Integer({ minimum: 1, maximum: 65535, default: 5060 }),
    /** The MSRP relay's control port (docs/media-control.md). */
    relayHost: Type.String({ minLength: 1, default: '127.0.0.1' }),
    relayPort: Type.Integer({ minimum: 1, maximum: 65535, default: 2856 }),
    /** The secret of X-PF-Leg, the same as pf.cfg's PF_B2BUA_TOKEN; required in B2BUA mode. */
    legToken: Type.String({ default: '' }),
    /** CR 8.3.2.1.1 multi-device policy: A first only, B first active, C all. */
    multiDevice: MultiDeviceSchema,
    /** Per served user (its key, e.g. `sip:bob@example.net`): overrides multiDevice. */
    multiDeviceByUser: Type.Record(Type.String({ pattern: '^sip:' }), MultiDeviceSchema, { default: {} }),
    /** CR 8.3.2.1.4: direct delivery of originated chat messages (docs/media-relay.md). */
    directDelivery: Type.Boolean({ default: false }),
    /** RFC 4028 Session-Expires offered to devices and answered to the caller, seconds (raised to minSE). */
    sessionExpires: Type.Integer({ minimum: 90, maximum: 86_400, default: 1800 }),
    /** RFC 4028 Min-SE: a shorter Session-Expires gets 422 (docs/b2bua.md "Session timers"), seconds. */
    minSE: Type.Integer({ minimum: 90, maximum: 86_400, default: 90 }),
    /** Tests only: how long one RFC 4028 second lasts in the B2BUA's timers, ms (the wire keeps seconds). */
    sessionTimerUnitMs: Type.Integer({ minimum: 10, maximum: 1000, default: 1000 }),
    /** A backstop behind the session timers: a session older than this ends (BYE both ways). */
    maxSessionAgeS: Type.Integer({ minimum: 10, maximum: 7 * 86_400, default: 43_200 }),
    /** 3xx from a device: redirects followed per call (CR 8.3.2.1.1). */
    maxRedirects: Type.Integer({ minimum: 0, maximum: 10, default: 3 }),
    /** The PF's CPM release in its User-Agent (CR Appendix D). */
    release: Type.String({ pattern: '^OMA[0-9]+\\.[0-9]+$', default: 'OMA2.2' }),
    /** RFC 3261 T1 (ms): the 2xx retransmission and the transaction timeouts (64*T1). */
    t1Ms: Type.Integer({ minimum: 50, maximum: 10_000, default: 500 }),
    /** Deferred delivery: how long a delivery call stays up after the last message, for the device's IMDNs (ms; docs/deferred.md). */
    deliveryLingerMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 2000 }),
  },
  { additionalProperties: false, default: {} },
);

/** The operator HTTP interface (docs/service.md "HTTP", docs/deployment.md "Threat model"). */
const HttpConfigSchema = Type.Object(
  {
    /**
     * The operator's bearer token (PF_OPERATOR_TOKEN): /users, /sessions, the live view's data
     * and every user's XCAP documents. Empty: nobody is the operator. Never logged.
     */
    operatorToken: Type.String({ default: '', maxLength: 512, pattern: '^([A-Za-z0-9\\-._~+/]{16,}=*)?$' }),
    /** /metrics: open to whoever reaches the port, or the operator's only. */
    metrics: Type.Union([Type.Literal('open'), Type.Literal('operator')], { default: 'open' }),
    /** HTTPS with this PEM certificate and key (file paths); absent: plain HTTP. */
    tls: Type.Optional(Type.Object({ cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }) }, { additionalProperties: false })),
  },
  { additionalProperties: false, default: {} },
);

/** The lab's live view (docs/service.md "Live view", docs/lab.md "Live view"). Off unless asked for. */
const LiveConfigSchema = Type.Object(
  {
    /** Serve the page and its JSON (/lab/live, /sessions) and record decisions. */
    enabled: Type.Boolean({ default: false }),
    /** UDP port of the HEP3 collector on `host` (Kamailio's siptrace, the relay's frames); 0: no collector. */
    hepPort: Type.Integer({ minimum: 0, maximum: 65535, default: 0 }),
    /** Kamailio's SIP addresses as siptrace writes them (`ip:port`); empty: learned from the first request. */
    kamailio: Type.Array(Type.String({ pattern: '^\\S+:[0-9]+$' }), { maxItems: 16, default: [] }),
    /** Calls kept (the oldest finished one goes first). */
    maxCalls: Type.Integer({ minimum: 1, maximum: 10_000, default: 200 }),
    /** Messages kept per call. */
    maxMessagesPerCall: Type.Integer({ minimum: 10, maximum: 10_000, default: 200 }),
  },
  { additionalProperties: false, default: {} },
);

export const ConfigSchema = Type.Object(
  {
    /** Listen host for both servers; loopback by default. */
    host: Type.String({ minLength: 1, default: '127.0.0.1' }),
    rpcPort: Type.Integer({ minimum: 0, maximum: 65535, default: 9090 }),
    httpPort: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    /** Host written in Warning headers (`Warning: 399 <pfHost> "..."`). */
    pfHost: Type.String({ minLength: 1, default: 'pf.example.net' }),
    /** Canonical domain of served users. */
    domain: Type.String({ minLength: 1, default: 'example.net' }),
    /**
     * `user`: users are keyed by the user part, any host is local, the key is
     * `sip:<user>@<domain>` (lab default). `uri`: the full `sip:user@host` is the key.
     */
    identity: Type.Union([Type.Literal('user'), Type.Literal('uri')], { default: 'user' }),
    /** Where lmdb keeps devices and XCAP documents. */
    dataDir: Type.String({ minLength: 1, default: 'run/pf-data' }),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    rpc: Type.Object(
      {
        /** Largest accepted netstring payload (bytes). */
        maxFrameBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 1024 * 1024 }),
        /** Peers (addresses or CIDR blocks) that may connect: Kamailio's hosts (docs/deployment.md). */
        allowedPeers: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 256, default: ['127.0.0.1', '::1'] }),
        /** Open connections at most (janssonrpcc opens one per server entry and worker); more are closed at once. */
        maxConnections: Type.Integer({ minimum: 1, maximum: 100_000, default: 256 }),
        /** Requests awaiting an asynchronous answer per connection; one more is answered -32002 (busy). */
        maxInflight: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1024 }),
      },
      { additionalProperties: false, default: {} },
    ),
    xdm: XdmConfigSchema,
    registrar: RegistrarConfigSchema,
    policy: PolicyConfigSchema,
    b2bua: B2buaConfigSchema,
    live: LiveConfigSchema,
    http: HttpConfigSchema,
    sharedState: SharedStateConfigSchema,
  },
  { additionalProperties: false },
);

/** The validated config, with `policy` completed from the rules' defaults. */
export type Config = Omit<Static<typeof ConfigSchema>, 'policy'> & { readonly policy: Policy };
