/**
 * The JSON-RPC methods (docs/jsonrpc.md) and their params schemas. Params are validated
 * at the boundary by the dispatcher; handlers parse the SIP message once, gather the
 * facts (documents, devices, sessions) and call the pure rules.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { Logger } from 'pino';
import { method, type RpcMethod } from './server.js';
import { RpcCode, RpcError } from './errors.js';
import { canonicalHeaderName, editedRequest, parseSipMessage, SipParseError, MAX_SIP_MESSAGE_BYTES, type SipRequest } from '../sip/message.js';
import { parseRegister, RegisterError } from '../sip/register.js';
import { parseNameAddr, type NameAddr } from '../sip/uri.js';
import { decideInvite } from '../rules/invite.js';
import { selectForkTargets } from '../callerprefs/fork.js';
import { proxyDecisionText } from './decision-text.js';
import { DeviceLimitError, deviceKeyOf, type DeviceStore } from '../devices/store.js';
import type { SessionTracker } from '../sessions/tracker.js';
import { XdmUnavailableError, type UserDocs } from '../xdm/source.js';
import type { Config } from '../config/schema.js';
import { servedUserKey } from '../config/identity.js';
import type { ServiceMetrics } from '../metrics/metrics.js';

const V = Type.Literal(1);
const Src = Type.String({ maxLength: 256 });
const Msg = Type.String({ minLength: 1, maxLength: MAX_SIP_MESSAGE_BYTES });

export const SipParams = Type.Object({ v: V, msg: Msg, src: Src });
/**
 * `fork: true`: the result also carries the co-located core's `core.fork` answer.
 * `sessions`: with Session-Replaces, the replaced session's dialogs as Kamailio keeps
 * them (pf.cfg's htable): one line per dialog (`sessionDialogs`).
 * (docs/jsonrpc.md)
 */
export const InviteParams = Type.Object({
  v: V,
  msg: Msg,
  src: Src,
  fork: Type.Optional(Type.Boolean()),
  text: Type.Optional(Type.Boolean()),
  sessions: Type.Optional(Type.String({ maxLength: 256 * 1024 })),
});
export const PingParams = Type.Object({ v: Type.Optional(V) });
const Str = Type.String({ maxLength: 4096 });
export const DialogParams = Type.Object({
  v: V,
  event: Type.Union([Type.Literal('confirmed'), Type.Literal('terminated')]),
  callId: Type.String({ minLength: 1, maxLength: 1024 }),
  fromTag: Str,
  toTag: Str,
  ruri: Type.Optional(Str),
  contributionId: Type.Optional(Str),
  contact: Type.Optional(Str),
});

export type DialogEvent = Static<typeof DialogParams>;
/** `pf.dialog` params check, also for dialog events from evapi. */
export const checkDialog = TypeCompiler.Compile(DialogParams);

export interface MethodDeps {
  readonly config: Config;
  readonly devices: DeviceStore;
  readonly sessions: SessionTracker;
  readonly xdm: { load(xui: string, now: number): UserDocs | Promise<UserDocs> };
  readonly metrics: ServiceMetrics;
  readonly log: Logger;
  readonly now: () => number;
}

function parseRequest(raw: string, expected: string): SipRequest {
  let msg;
  try {
    msg = parseSipMessage(raw);
  } catch (err) {
    if (err instanceof SipParseError) throw new RpcError(RpcCode.InvalidParams, 'Invalid params', err.code);
    throw err;
  }
  if (msg.kind !== 'request' || msg.method !== expected) {
    throw new RpcError(RpcCode.InvalidParams, 'Invalid params', `msg is not a ${expected} request`);
  }
  return msg;
}

/**
 * The INVITE as Kamailio forwards it after a proxy decision: `remove` header fields
 * dropped (remove_hf), `hdrs` appended after the others (append_hf), i.e. the `msg`
 * `core.fork` gets as `$mbu`. Built from the parsed INVITE (editedRequest); the text is
 * printed and parsed again only when that cannot give the same result.
 */
export function applyDecisionEdits(msg: SipRequest, remove: readonly string[], hdrs: string): SipRequest {
  return editedRequest(msg, remove, hdrs) ?? reparseDecisionEdits(msg, remove, hdrs);
}

/** applyDecisionEdits by printing the edited INVITE and parsing it (the reference). */
export function reparseDecisionEdits(msg: SipRequest, remove: readonly string[], hdrs: string): SipRequest {
  const drop = new Set(remove.map((r) => canonicalHeaderName(r).toLowerCase()));
  let head = `${msg.method} ${msg.ruri} SIP/2.0\r\n`;
  for (const h of msg.headers) {
    if (!drop.has(canonicalHeaderName(h.name).toLowerCase())) head += `${h.name}: ${h.value}\r\n`;
  }
  const edited = parseSipMessage(`${head}${hdrs}\r\n${msg.body}`);
  if (edited.kind !== 'request') throw new Error('edited INVITE is not a request');
  return edited;
}

/** One dialog of a session entry as pf.cfg keeps it (htable `pfsess`, docs/jsonrpc.md). */
export interface SessionDialog {
  /** `<Call-ID>;<device tag>` */
  readonly dialog: string;
  readonly ruri: string;
  /** The answering device's Contact header field value, unfolded. */
  readonly contact: string;
}

/**
 * The dialogs of a `sessions` entry: one per line, `<Call-ID>;<device tag> TAB <R-URI>
 * TAB <Contact>`. A line ends at an LF not followed by SP or HTAB (a folded Contact keeps
 * its CRLF + WSP, RFC 3261 §7.3.1); a line without two TABs or with an empty field is
 * skipped.
 */
export function sessionDialogs(entry: string): SessionDialog[] {
  const out: SessionDialog[] = [];
  for (const raw of entry.split(/\n(?![ \t])/)) {
    const t1 = raw.indexOf('\t');
    const t2 = t1 === -1 ? -1 : raw.indexOf('\t', t1 + 1);
    if (t2 === -1) continue;
    const dialog = raw.slice(0, t1);
    const ruri = raw.slice(t1 + 1, t2).trim();
    const contact = raw.slice(t2 + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
    if (!dialog || !ruri || !contact) continue;
    out.push({ dialog, ruri, contact });
  }
  return out;
}

export function buildMethods(deps: MethodDeps): Record<string, RpcMethod> {
  const { config, devices, sessions, metrics } = deps;
  // Served-user keys by URI text (pure for this config; a user's calls repeat the URI).
  const keys = new Map<string, string | null>();
  function keyOf(uri: string): string | null {
    let key = keys.get(uri);
    if (key !== undefined) return key;
    key = servedUserKey(uri, config.identity, config.domain);
    if (uri.length <= 512) {
      if (keys.size >= 1024) keys.delete(keys.keys().next().value!);
      keys.set(uri, key);
    }
    return key;
  }
  const userOf = (uri: string): string => {
    const key = keyOf(uri);
    if (key === null) throw new RpcError(RpcCode.InvalidParams, 'Invalid params', 'Request-URI has no user');
    return key;
  };

  // Hot-path helpers are declared once here, not as closures per call.
  function xdmUnavailable(err: unknown, servedUser: string): unknown {
    if (!(err instanceof XdmUnavailableError)) return err;
    deps.log.warn({ err, servedUser }, 'xdm unavailable');
    return new RpcError(RpcCode.DependencyFailed, 'XDM unavailable');
  }

  /** The device that answered a dialog, by its Contact (see `pf.dialog`). */
  function answeringDevice(aor: string, contact: NameAddr, now: number): string {
    const instance = contact.params['+sip.instance'];
    if (typeof instance === 'string') return instance;
    // The answering Contact may omit +sip.instance: find the registered device by its
    // Contact URI or its public GRUU (RFC 5627 §5.1: a UA may use its GRUU as Contact).
    const registered = devices.list(aor, now).find((d) => d.contact === contact.uri || d.pubGruu === contact.uri);
    return registered ? deviceKeyOf(registered) : contact.uri;
  }

  /**
   * CR 8.3.2.1 step 9: the devices of `servedUser` connected in a session, from the
   * dialogs Kamailio sent with the INVITE (`sessions`: the replaced session's entry),
   * else from the dialog events.
   */
  function sessionDevicesOf(servedUser: string, now: number, lines: string | undefined): (contributionId: string) => readonly string[] | null {
    if (lines === undefined) return (cid) => sessions.devicesIn(servedUser, cid, now);
    return () => {
      const out: string[] = [];
      for (const dialog of sessionDialogs(lines)) {
        if (keyOf(dialog.ruri) !== servedUser) continue;
        const na = parseNameAddr(dialog.contact);
        if (!na) continue;
        const device = answeringDevice(servedUser, na, now);
        if (!out.includes(device)) out.push(device);
      }
      return out.length > 0 ? out : null;
    };
  }

  function decide(msg: SipRequest, servedUser: string, now: number, p: Static<typeof InviteParams>, docs: UserDocs): unknown {
    // One read for the decision and the fork (same `now`, same tick).
    const registered = devices.list(servedUser, now);
    const decision = decideInvite({
      msg,
      servedUser,
      docs,
      devices: registered,
      sessionDevices: sessionDevicesOf(servedUser, now, p.sessions),
      policy: config.policy,
      pfHost: config.pfHost,
      now,
    });
    metrics.decisions.inc({ action: decision.action, stage: decision.stage });
    const withFork = p.fork === true && (decision.action === 'proxy' || decision.action === 'pass');
    // One round trip for a co-located core: the same answer core.fork gives on the
    // request as forwarded (the PF's Reject-Contact / Request-Disposition applied).
    const fork = !withFork
      ? undefined
      : selectForkTargets(decision.action === 'proxy' ? applyDecisionEdits(msg, decision.remove, decision.hdrs) : msg, registered, now);
    if (p.text === true && decision.action === 'proxy') {
      const text = proxyDecisionText(decision, fork);
      if (text !== null) return text;
    }
    return fork === undefined ? decision : { ...decision, fork };
  }

  return {
    'pf.ping': method(PingParams, () => ({ pong: true })),

    /** Store the REGISTER's devices durably before Kamailio saves the binding. */
    'pf.register': method(SipParams, async (p) => {
      const msg = parseRequest(p.msg, 'REGISTER');
      const now = deps.now();
      let update;
      try {
        update = parseRegister(msg, p.src, now, {
          defaultExpires: config.registrar.defaultExpires,
          maxExpires: config.registrar.maxExpires,
          minExpires: config.registrar.minExpires,
          identity: config.identity,
          domain: config.domain,
        });
      } catch (err) {
        if (err instanceof RegisterError) throw new RpcError(RpcCode.InvalidParams, 'Invalid params', err.code);
        throw err;
      }
      let result;
      try {
        result = await devices.apply(update, now);
      } catch (err) {
        if (err instanceof DeviceLimitError) throw new RpcError(RpcCode.InvalidParams, 'Invalid params', err.code);
        deps.log.error({ err, aor: update.aor }, 'device store write failed');
        throw new RpcError(RpcCode.DependencyFailed, 'Device store unavailable');
      }
      const kind =
        update.kind === 'fetch'
          ? 'fetch'
          : update.kind === 'remove-all' || (result.removed > 0 && result.added + result.refreshed === 0)
            ? 'deregister'
            : result.added > 0
              ? 'register'
              : 'refresh';
      metrics.registers.inc({ kind });
      return { aor: update.aor, devices: result.devices };
    }),

    /** CR 8.3.2.1: decide an incoming session invitation. */
    'pf.invite': method(InviteParams, (p) => {
      const msg = parseRequest(p.msg, 'INVITE');
      const servedUser = userOf(msg.ruri);
      const now = deps.now();
      // The embedded XDM answers synchronously: then so does pf.invite (no await), and
      // its answer leaves before the next request of the same read is handled.
      let loaded: UserDocs | Promise<UserDocs>;
      try {
        loaded = deps.xdm.load(servedUser, now);
      } catch (err) {
        throw xdmUnavailable(err, servedUser);
      }
      if (!(loaded instanceof Promise)) return decide(msg, servedUser, now, p, loaded);
      return loaded.then(
        (docs) => decide(msg, servedUser, now, p, docs),
        (err: unknown) => {
          throw xdmUnavailable(err, servedUser);
        },
      );
    }),

    /** RFC 3841 forking for the lab core. */
    'core.fork': method(SipParams, (p) => {
      const msg = parseRequest(p.msg, 'INVITE');
      const now = deps.now();
      return selectForkTargets(msg, devices.list(userOf(msg.ruri), now), now);
    }),

    /** Dialog events: which device is in which session (CR 8.3.2.1 step 9, Session-Replaces). */
    'pf.dialog': method(DialogParams, (p) => {
      if (p.event === 'terminated') {
        return { tracked: sessions.terminated(p) };
      }
      const aor = p.ruri ? keyOf(p.ruri) : null;
      const na = p.contact ? parseNameAddr(p.contact) : null;
      if (!aor || !na || !p.contributionId) return { tracked: false };
      const now = deps.now();
      const device = answeringDevice(aor, na, now);
      sessions.confirmed({
        aor,
        contributionId: p.contributionId,
        device,
        callId: p.callId,
        fromTag: p.fromTag,
        toTag: p.toTag,
        confirmedAt: now,
      });
      return { tracked: true };
    }),
  };
}
