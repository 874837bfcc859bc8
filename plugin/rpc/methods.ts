/**
 * The JSON-RPC methods (docs/jsonrpc.md) and their params schemas: this file only adapts
 * the wire to the domain. Params are validated at the boundary by the dispatcher;
 * handlers parse the SIP message once, gather the facts (documents, devices, the
 * session lines Kamailio sent) and call the pure rules.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { method, type RpcMethod } from './server.js';
import { RpcCode } from '../errors.js';
import { RpcError } from '../../wire/errors.js';
import { parseSipMessage, SipParseError, MAX_SIP_MESSAGE_BYTES, type SipRequest } from '../sip/message.js';
import { applyHeaderEdits } from '../sip/edits.js';
import { parseRegister, RegisterError, type RegisterUpdate } from '../sip/register.js';
import { triggersDelivery } from './registered.js';
import { decideInvite } from '../rules/invite.js';
import { selectForkTargets } from '../callerprefs/fork.js';
import { proxyDecisionText } from './decision-text.js';
import { DeviceLimitError, type DeviceStore } from '../devices/store.js';
import { registerKind } from '../devices/register-kind.js';
import { sessionDevices } from '../sessions/lines.js';
import { XdmUnavailableError, type UserDocs } from '../xdm/source.js';
import type { Config } from '../config/schema.js';
import { servedUserKey } from '../config/identity.js';
import type { ServiceMetrics } from '../metrics/metrics.js';
import type { B2buaDecision } from '../rules/decision.js';
import type { B2buaPlan } from '../b2bua/tickets.js';
import { PF_TICKET_HEADER } from '../rules/b2bua-headers.js';
import { reject, withDiagnosticWarning } from '../rules/stages/reject.js';

const V = Type.Literal(1);
const Src = Type.String({ maxLength: 256 });
const Msg = Type.String({ minLength: 1, maxLength: MAX_SIP_MESSAGE_BYTES });

export const SipParams = Type.Object({ v: V, msg: Msg, src: Src });
/**
 * `fork: true`: the result also carries the co-located core's `core.fork` answer.
 * `sessions`: with Session-Replaces, the replaced session's dialogs as Kamailio keeps
 * them (pf.cfg's htable): one line per dialog (plugin/sessions/lines.ts).
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

export interface MethodDeps {
  readonly config: Config;
  readonly devices: DeviceStore;
  readonly xdm: { load(xui: string, now: number): UserDocs | Promise<UserDocs> };
  readonly metrics: ServiceMetrics;
  readonly log: Logger;
  readonly now: () => number;
  /** B2BUA mode (CR 8.3.2.1 step 8): where a `b2bua` decision is handed over; absent when not configured. */
  readonly b2bua?: B2buaHandover;
  /** Session lines pf.cfg recorded with the service (PF_SHARED_SESSIONS, plugin/sessions/store.ts), when it sent none. */
  readonly sessions?: { entry(cid: string, now: number): string | undefined };
}

/** What pf.invite needs of the B2BUA (plugin/b2bua/): a ticket for a decision, and its sessions. */
export interface B2buaHandover {
  issue(plan: B2buaPlan): string;
  /** Step 8 Session-Replaces: device keys connected in the B2BUA's sessions of this Contribution-ID. */
  connectedDevices(contributionId: string): readonly string[] | null;
  /** Deferred delivery (docs/deferred.md "Trigger and order"): Kamailio saved a REGISTER's bindings of this served user (pf.registered). */
  registered?(servedUser: string, devices: ReturnType<DeviceStore['list']>): void;
}

/** Methods `core.fork` forks (RFC 3841 applies to any request; §7.2.2.1 matches `methods`). */
const FORK_METHODS: readonly string[] = ['INVITE', 'OPTIONS', 'MESSAGE'];

function parseRequest(raw: string, expected: string | readonly string[]): SipRequest {
  let msg;
  try {
    msg = parseSipMessage(raw);
  } catch (err) {
    if (err instanceof SipParseError) throw new RpcError(RpcCode.InvalidParams, 'Invalid params', err.code);
    throw err;
  }
  // no array per call: pf.invite names one method
  if (msg.kind !== 'request' || !(typeof expected === 'string' ? msg.method === expected : expected.includes(msg.method))) {
    const names = typeof expected === 'string' ? expected : expected.join(', ');
    throw new RpcError(RpcCode.InvalidParams, 'Invalid params', `msg is not a ${names} request`);
  }
  return msg;
}

export function buildMethods(deps: MethodDeps): Record<string, RpcMethod> {
  const { config, devices, metrics } = deps;
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

  function decide(msg: SipRequest, servedUser: string, now: number, p: Static<typeof InviteParams>, docs: UserDocs): unknown {
    // One read for the decision and the fork (same `now`, same tick).
    const registered = devices.list(servedUser, now);
    const decision = decideInvite({
      msg,
      servedUser,
      docs,
      devices: registered,
      // Session-Replaces: the replaced session's lines (Kamailio keys them by the
      // Contribution-ID, so every line is of that session); without them it is unknown.
      // The B2BUA's own sessions (step 8) are asked when Kamailio knows none.
      sessionDevices: (cid) => {
        const lines = p.sessions ?? deps.sessions?.entry(cid, now);
        return lines !== undefined
          ? sessionDevices(lines, (ruri) => keyOf(ruri) === servedUser, registered)
          : (deps.b2bua?.connectedDevices(cid) ?? null);
      },
      policy: config.policy,
      pfHost: config.pfHost,
      now,
    });
    metrics.decisions.inc({ action: decision.action, stage: decision.stage });
    if (decision.action === 'b2bua') return handOver(decision, msg, servedUser);
    const withFork = p.fork === true && (decision.action === 'proxy' || decision.action === 'pass');
    // One round trip for a co-located core: the same answer core.fork gives on the
    // request as forwarded (the PF's Reject-Contact / Request-Disposition applied).
    const fork = !withFork
      ? undefined
      : selectForkTargets(decision.action === 'proxy' ? applyHeaderEdits(msg, decision.remove, decision.hdrs) : msg, registered, now);
    if (p.text === true && decision.action === 'proxy') {
      const text = proxyDecisionText(decision, fork);
      if (text !== null) return text;
    }
    return fork === undefined ? decision : { ...decision, fork };
  }

  /**
   * A `b2bua` decision goes to Kamailio as a ticket: the INVITE is relayed to the B2BUA
   * with X-PF-Ticket, and the B2BUA takes the plan back (plugin/b2bua/tickets.ts). A
   * ticket the caller put in is removed first.
   */
  function handOver(decision: B2buaDecision, msg: SipRequest, servedUser: string): unknown {
    if (!deps.b2bua) {
      // deferral needs the B2BUA (docs/policy.md "Deferred delivery"): without it, step 8 a ii's 480
      if (decision.defer) {
        deps.log.warn({ servedUser }, 'deferred delivery needs the B2BUA, which is not running (b2bua.legToken): 480');
        const none = reject('no-suitable-device', 480, null, null);
        return config.policy.diagnosticWarning ? withDiagnosticWarning(none, config.pfHost) : none;
      }
      throw new RpcError(RpcCode.DependencyFailed, 'B2BUA not configured');
    }
    const ticket = deps.b2bua.issue({
      callId: msg.get('Call-ID') ?? '', servedUser, targets: decision.targets, service: decision.service, stage: decision.stage,
      defer: decision.defer, deferral: decision.deferral ? { ttlS: config.policy.deferredTtlS } : null, record: decision.record,
    });
    return { action: 'b2bua', stage: decision.stage, remove: [PF_TICKET_HEADER], hdrs: `${PF_TICKET_HEADER}: ${ticket}\r\n` };
  }

  /** The REGISTER in `p` as a change of the user's devices (plugin/sip/register.ts). */
  function registerUpdate(p: Static<typeof SipParams>, now: number): RegisterUpdate {
    const msg = parseRequest(p.msg, 'REGISTER');
    try {
      return parseRegister(msg, p.src, now, {
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
  }

  return {
    'pf.ping': method(PingParams, () => ({ pong: true })),

    /** Store the REGISTER's devices durably before Kamailio saves the binding. */
    'pf.register': method(SipParams, async (p) => {
      const now = deps.now();
      const update = registerUpdate(p, now);
      let result;
      try {
        result = await devices.apply(update, now);
      } catch (err) {
        if (err instanceof DeviceLimitError) throw new RpcError(RpcCode.InvalidParams, 'Invalid params', err.code);
        deps.log.error({ err, aor: update.aor }, 'device store write failed');
        throw new RpcError(RpcCode.DependencyFailed, 'Device store unavailable');
      }
      metrics.registers.inc({ kind: registerKind(update, result) });
      return { aor: update.aor, devices: result.devices };
    }),

    /**
     * Notification: Kamailio saved the REGISTER's bindings (pf.cfg PF_REGISTERED, after
     * save() succeeded). Deferred delivery starts here, not in pf.register, which runs
     * before the registrar has the binding a leg INVITE to the GRUU needs.
     */
    'pf.registered': method(SipParams, (p) => {
      const now = deps.now();
      const update = registerUpdate(p, now);
      const deliver = deps.b2bua?.registered;
      const triggered = deliver !== undefined && triggersDelivery(update);
      if (triggered) deliver.call(deps.b2bua, update.aor, devices.list(update.aor, now));
      return { aor: update.aor, triggered };
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

    /** RFC 3841 forking for the lab core: INVITE, OPTIONS and MESSAGE. */
    'core.fork': method(SipParams, (p) => {
      const msg = parseRequest(p.msg, FORK_METHODS);
      const now = deps.now();
      return selectForkTargets(msg, devices.list(userOf(msg.ruri), now), now);
    }),
  };
}
