/**
 * The B2BUA driver's deferred calls (CR 8.3.2.1 step 8 a ii, 8.3.2.1.1 "deferred
 * delivery"; docs/b2bua.md "Deferred sessions"), kept out of ./b2bua.ts:
 * - `Deferrals`: the relay's `defer` and `discard` for the machine's effects, the index of
 *   live deferred calls by served user (a device that registers joins them), the hand-over
 *   of a call that ended deferred (`onDeferredEnded`), and a deferral as the call store
 *   keeps it;
 * - pure helpers: the deferred record handed to the delivery module (./deferred/record.ts);
 *   the leg source, what a device INVITE needs once the call's setup is gone (the caller's
 *   INVITE, step 7's edit, the relay's device offer, the devices met so far), printable for
 *   the call store; whether a device that registers can take the session (CR step 6
 *   "suitable", and addressable on its own as step 8 needs).
 */
import type { Logger } from 'pino';
import type { Device } from '../devices/types.js';
import { parseSipMessage, type SipRequest } from '../sip/message.js';
import { sdpOffer } from '../sip/sdp.js';
import { inviteFacts } from '../rules/facts.js';
import { suitableDevices } from '../rules/stages/no-suitable-device.js';
import { deviceAddress } from '../rules/stages/device-invites.js';
import type { ServiceEdit } from '../rules/stages/service-identification.js';
import type { DeferredEndedListener, DeferredRecord } from './deferred/record.js';
import type { DeferParams, DeferredKeyParams, DiscardReply, SimpleReply } from '../../media/relay/types.js';
import type { Call, CallEvent, LegTarget } from './call/machine.js';
import type { StoredCall, StoredDeferral } from './store.js';
import { deviceKey } from '../devices/identity.js';
import { randomHex } from '../../lib/random.js';

/** What a device leg's INVITE is built from (plugin/rules/stages/device-invites.ts). */
export interface LegSource {
  readonly invite: SipRequest;
  readonly service: ServiceEdit;
  /** The relay's offer for device legs (`device-sdp` of its `offer` reply). */
  readonly deviceSdp: string;
  /** Devices by key (deviceKey): the plan's targets and those that registered since. */
  readonly devices: Map<string, Device>;
}

/** A header value (From, To) without its `tag` parameter (RFC 3261 §19.3: a header parameter, after the URI). */
export function withoutTag(value: string): string {
  const end = value.lastIndexOf('>');
  const head = end >= 0 ? value.slice(0, end + 1) : '';
  const params = end >= 0 ? value.slice(end + 1) : value;
  return (head + params.replace(/;\s*tag\s*=\s*[^;]*/gi, '')).trim();
}

export interface DeferredCallFacts {
  readonly deferredId: string;
  readonly callId: string;
  readonly servedUser: string;
  readonly invite: SipRequest;
  readonly group: boolean;
  /** The caller's Contact URI (the Controlling Function's, for a group session). */
  readonly focus: string;
  readonly expiresAt: number;
  /** CR 8.5: the call's relay session records history (the plan's `record`). */
  readonly record: boolean;
}

/** The record of a deferred call, from its INVITE (CR 8.3.2.1 step 8 c iv: the ids a delivery INVITE copies). */
export function deferredRecordOf(f: DeferredCallFacts): DeferredRecord {
  const h = (name: string): string | null => {
    const v = f.invite.get(name);
    return v === undefined || v === '' ? null : v;
  };
  return {
    deferredId: f.deferredId,
    servedUser: f.servedUser,
    callId: f.callId,
    from: withoutTag(f.invite.get('From') ?? '') || `<${f.servedUser}>`,
    pAssertedIdentity: [...f.invite.getValues('P-Asserted-Identity')],
    to: withoutTag(f.invite.get('To') ?? '') || `<${f.servedUser}>`,
    conversationId: h('Conversation-ID'),
    contributionId: h('Contribution-ID'),
    inReplyToContributionId: h('InReplyTo-Contribution-ID'),
    group: f.group,
    focus: f.group && f.focus !== '' ? f.focus : null,
    expiresAt: f.expiresAt,
    record: f.record,
  };
}

/** The INVITE as text again (the call store keeps it for a restart). */
export function printInvite(req: SipRequest): string {
  return `${req.method} ${req.ruri} SIP/2.0\r\n${req.headers.map((x) => `${x.name}: ${x.value}\r\n`).join('')}\r\n${req.body}`;
}

/** A stored INVITE back; null when it does not parse as a request (a damaged record). */
export function parseInvite(text: string): SipRequest | null {
  try {
    const m = parseSipMessage(text);
    return m.kind === 'request' ? m : null;
  } catch {
    return null;
  }
}

/**
 * Whether `device` can take the deferred session: suitable for its offered streams and the
 * caller's preferences (CR step 6, ../rules/stages/no-suitable-device.ts), not expired at
 * `now`, and addressable on its own (a GRUU or a usable +sip.instance, as step 8 needs).
 */
export function deviceTakes(invite: SipRequest, servedUser: string, device: Device, now: number): boolean {
  const facts = inviteFacts(invite);
  if (facts.icsi === null) return false;
  const offer = sdpOffer(invite);
  const streams = offer.kind === 'ok' ? offer.streams : [];
  return suitableDevices(facts, facts.icsi, streams, [device], now).length === 1 && deviceAddress(device, servedUser) !== null;
}

/** Live deferred calls (their Call-IDs) by served user. */
export class DeferredIndex {
  readonly #byUser = new Map<string, Set<string>>();

  add(servedUser: string, callId: string): void {
    let s = this.#byUser.get(servedUser);
    if (!s) this.#byUser.set(servedUser, (s = new Set()));
    s.add(callId);
  }

  delete(servedUser: string, callId: string): void {
    const s = this.#byUser.get(servedUser);
    if (!s) return;
    s.delete(callId);
    if (s.size === 0) this.#byUser.delete(servedUser);
  }

  has(servedUser: string, callId: string): boolean {
    return this.#byUser.get(servedUser)?.has(callId) === true;
  }

  of(servedUser: string): readonly string[] {
    return [...(this.#byUser.get(servedUser) ?? [])];
  }

  get size(): number {
    let n = 0;
    for (const s of this.#byUser.values()) n += s.size;
    return n;
  }
}

/** A call whose served user has deferred delivery on. */
export interface CallDeferral {
  /** How long stored messages are kept (policy.deferredTtlS). */
  readonly ttlS: number;
  /** Once the relay took `defer`: the record handed over when the call ends deferred. */
  record: DeferredRecord | null;
  /** What a device leg's INVITE is built from once the setup is gone (set with the record). */
  source: LegSource | null;
  /** The hand-over's pending entry write, once the caller side went (awaited before the call record goes). */
  handover?: Promise<void>;
}

/** What `Deferrals` reads of one of the driver's calls. */
export interface DeferrableCall {
  readonly callId: string;
  readonly servedUser: string;
  /** The caller's Contact URI (a group session's focus). */
  readonly focus: string;
  readonly machine: Call;
  deferral: CallDeferral | null;
}

/** A call's setup, as `defer` needs it (the caller's INVITE, step 7's edit, the relay's device offer, the plan's devices). */
export interface DeferSetup {
  readonly invite: SipRequest;
  readonly service: ServiceEdit;
  readonly deviceSdp: string;
  readonly targets: readonly Device[];
  /** CR 8.5: the plan's `record` (the relay session records history). */
  readonly record: boolean;
}

export interface DeferralsDeps {
  readonly relay: {
    defer(p: DeferParams): Promise<SimpleReply>;
    discard(p: DeferredKeyParams): Promise<DiscardReply>;
  };
  readonly log: Logger;
  /** Epoch ms. */
  readonly wallNow: () => number;
}

export class Deferrals {
  readonly #index = new DeferredIndex();
  /** A call was deferred: the relay stores its messages from now on (a group session's conference is followed from here). */
  onDeferred: DeferredEndedListener | null = null;
  /** A deferred call ended with its messages still stored (any end but the user's 603): the record to keep. */
  onDeferredEnded: DeferredEndedListener | null = null;

  constructor(private readonly deps: DeferralsDeps) {}

  /** Deferred (or flushing its backlog to a device), and its caller still there (answered or confirmed): a device that registers joins it. */
  static live(call: DeferrableCall): boolean {
    const m = call.machine;
    return call.deferral?.record != null && Deferrals.storing(call.machine) && m.caller === 'up' && (m.state === 'answered' || m.state === 'confirmed');
  }

  /** The relay holds messages of the call not yet sent to a device (deferred, or its backlog being flushed). */
  static storing(m: Call): boolean {
    return m.deferred === 'on' || m.deferred === 'flushing';
  }

  /** Settles once the call's hand-over (if any) is written: the call's record may go then, not before. */
  static handedOver(call: DeferrableCall): Promise<void> {
    return call.deferral?.handover ?? Promise.resolve();
  }

  /**
   * The machine's `defer` effect (CR 8.3.2.1.1 3 i): the relay stores the originator's
   * messages under a new deferred-id until `expires-at`. The event for the machine:
   * `deferred` (our 200 follows), or `defer-failed` with 500 (refused) or 503 (unreachable).
   */
  async defer(call: DeferrableCall, setup: DeferSetup | null): Promise<CallEvent> {
    const { relay, log, wallNow } = this.deps;
    const deferral = call.deferral;
    if (!setup || !deferral) return { kind: 'defer-failed', status: 500 };
    const deferredId = randomHex(16);
    const expiresAt = wallNow() + deferral.ttlS * 1000;
    try {
      const r = await relay.defer({ 'call-id': call.callId, 'deferred-id': deferredId, 'served-user': call.servedUser, 'expires-at': expiresAt });
      if (r.result === 'error') {
        log.warn({ callId: call.callId, reply: r }, 'b2bua: relay refused defer');
        return { kind: 'defer-failed', status: 500 };
      }
    } catch (err) {
      log.error({ err, callId: call.callId }, 'b2bua: relay defer failed');
      return { kind: 'defer-failed', status: 503 };
    }
    deferral.record = deferredRecordOf({
      deferredId, callId: call.callId, servedUser: call.servedUser, invite: setup.invite, group: call.machine.settings.group === true,
      focus: call.focus, expiresAt, record: setup.record,
    });
    deferral.source = { invite: setup.invite, service: setup.service, deviceSdp: setup.deviceSdp, devices: new Map(setup.targets.map((d) => [deviceKey(d), d])) };
    log.info({ callId: call.callId, servedUser: call.servedUser, deferredId }, 'b2bua: session deferred');
    return { kind: 'deferred' };
  }

  /** The machine's `relay-discard` effect (CR 8.3.2.1.1 603): the stored messages go. */
  async discard(call: DeferrableCall): Promise<void> {
    const id = call.deferral?.record?.deferredId;
    if (id === undefined) return;
    const { relay, log } = this.deps;
    await relay.discard({ 'deferred-id': id }).then(
      (r) => r.result === 'error' && log.warn({ callId: call.callId, reply: r }, 'b2bua: relay discard refused'),
      (err: unknown) => log.warn({ err, callId: call.callId }, 'b2bua: relay discard failed'),
    );
  }

  /**
   * After each step of a call: the index follows the machine; a call that became a normal
   * one (a device answered) or was declined (603) forgets its deferral; a call that ended
   * deferred hands its record over (the caller left, its messages are stored).
   */
  afterStep(call: DeferrableCall): void {
    const deferral = call.deferral;
    if (!deferral?.record) return;
    const rec = deferral.record;
    const wasLive = this.#index.has(call.servedUser, call.callId);
    if (Deferrals.live(call)) {
      if (!wasLive) {
        this.#index.add(call.servedUser, call.callId);
        void this.#tell(this.onDeferred, rec, 'onDeferred');
      }
      return;
    }
    if (wasLive) this.#index.delete(call.servedUser, call.callId);
    const m = call.machine;
    if (m.deferred === 'asked') return; // our 200 follows
    if (Deferrals.storing(m)) {
      // the caller side is going (ending can last 32 s; a crash then must not lose the
      // messages): handed over now, while the relay may still be flushing or storing
      if (m.state !== 'ending' && m.state !== 'ended') return;
      this.deps.log.info({ callId: call.callId, deferredId: rec.deferredId }, 'b2bua: deferred session ending: pending delivery');
      deferral.record = null;
      deferral.handover = this.#tell(this.onDeferredEnded, rec, 'onDeferredEnded');
    } else {
      deferral.record = null;
      deferral.source = null;
    }
  }

  /**
   * A device of `servedUser` registered: for each live deferred call (`calls` looks them up)
   * that the device can take (deviceTakes), the event that invites it.
   */
  registered<C extends DeferrableCall>(servedUser: string, device: Device, calls: (callId: string) => C | undefined): { call: C; ev: CallEvent }[] {
    const out: { call: C; ev: CallEvent }[] = [];
    const now = this.deps.wallNow();
    for (const id of this.#index.of(servedUser)) {
      const call = calls(id);
      const src = call?.deferral?.source;
      if (!call || !src || !Deferrals.live(call) || !deviceTakes(src.invite, servedUser, device, now)) continue;
      const key = deviceKey(device);
      // a new REGISTER Call-ID: the device registered anew (RFC 3261 §10.2.4: one Call-ID per
      // boot cycle), so a device that failed in this call may be tried again; a refresh may not
      const met = src.devices.get(key);
      const fresh = met !== undefined && met.callId !== device.callId;
      src.devices.set(key, device);
      const target: LegTarget = { kind: 'device', ruri: device.pubGruu ?? servedUser, device: key };
      out.push({ call, ev: { kind: 'device-available', target, fresh } });
    }
    return out;
  }

  /** The records of `servedUser`'s live deferred calls. */
  records(servedUser: string, calls: (callId: string) => DeferrableCall | undefined): DeferredRecord[] {
    const out: DeferredRecord[] = [];
    for (const id of this.#index.of(servedUser)) {
      const call = calls(id);
      if (call?.deferral?.record && Deferrals.live(call)) out.push(call.deferral.record);
    }
    return out;
  }

  /** Live deferred calls now. */
  get size(): number {
    return this.#index.size;
  }

  /** A deferred call's record and leg source for the call store (docs/b2bua.md "Restart"). */
  stored(call: DeferrableCall): { deferral?: StoredDeferral } {
    const d = call.deferral;
    if (!d?.record || !d.source) return {};
    const src = d.source;
    return { deferral: { record: d.record, invite: printInvite(src.invite), service: { remove: [...src.service.remove], hdrs: src.service.hdrs }, deviceSdp: src.deviceSdp } };
  }

  /**
   * A stored call's deferral back. Its INVITE unreadable: the call stays up, but no device
   * can join it (it ends deferred and is delivered later).
   */
  restored(r: StoredCall): CallDeferral | null {
    const d = r.deferral;
    if (!d) return null; // past its setup, a call that is not deferred needs no deferral
    const invite = parseInvite(d.invite);
    if (!invite) this.deps.log.warn({ callId: r.callId }, 'b2bua: stored deferred INVITE unreadable: no device can join the call');
    const source: LegSource | null = invite ? { invite, service: d.service, deviceSdp: d.deviceSdp, devices: new Map() } : null;
    return { ttlS: 0, record: d.record, source }; // ttlS: only `defer` reads it, and that was done
  }

  /** A reloaded call: indexed when it is live and deferred. */
  reloaded(call: DeferrableCall): void {
    if (Deferrals.live(call)) this.#index.add(call.servedUser, call.callId);
  }

  #tell(listener: DeferredEndedListener | null, rec: DeferredRecord, name: string): Promise<void> {
    if (!listener) return Promise.resolve();
    const failed = (err: unknown): void => this.deps.log.error({ err, callId: rec.callId, listener: name }, 'b2bua: deferred listener failed');
    try {
      return Promise.resolve(listener(rec)).catch(failed);
    } catch (err) {
      failed(err);
      return Promise.resolve();
    }
  }
}
