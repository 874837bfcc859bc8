/**
 * A deferred session as the B2BUA hands it over (CR 8.3.2.1.1 "deferred delivery is
 * enabled ... store all received messages for later delivery", docs/deferred.md).
 *
 * The B2BUA (../b2bua.ts) defers an originating call when no suitable device can take it
 * (CR step 8 a ii) or every device leg failed with 480/408/487/500/503/504; the relay then
 * stores what the originator sends under `deferredId`. While the caller stays, a device
 * that registers joins that call (`B2bua.deviceRegistered`). When the caller leaves (its
 * BYE), the B2BUA hands this record to the delivery module (`B2bua.onDeferredEnded`),
 * which keeps it as "pending delivery" until a device of `servedUser` registers.
 *
 * Plain data, checked by `DeferredRecordSchema` wherever it is read back from a store.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { DeliverParams, DeliverWhat } from '../../../media/relay/types.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/** `deferred-id` (docs/media-control.md): 128 random bits as lower-case hex. */
export const DEFERRED_ID_PATTERN = '^[0-9a-f]{32}$';

export const DeferredRecordSchema = Type.Object(
  {
    /** Names the stored messages in the relay's deferred store (relay `defer`, `deliver`, `discard`). */
    deferredId: Type.String({ pattern: DEFERRED_ID_PATTERN }),
    /** Served-user key (canonical AoR, `sip:bob@example.net`). */
    servedUser: Type.String({ minLength: 1 }),
    /** The original (deferred) call's Call-ID: the caller's, also the relay's session key. */
    callId: Type.String({ minLength: 1 }),
    /** The original INVITE's From header value, its `tag` parameter removed. */
    from: Type.String({ minLength: 1 }),
    /** The original INVITE's P-Asserted-Identity values, in order (RFC 3325: at most a sip and a tel); empty: none. */
    pAssertedIdentity: Type.Array(Type.String({ minLength: 1 })),
    /** The original INVITE's To header value, its `tag` parameter removed (none was there). */
    to: Type.String({ minLength: 1 }),
    /** CR 8.3.2.1 step 8 c iv: copied into the delivery INVITE. */
    conversationId: Nullable(Type.String({ minLength: 1 })),
    contributionId: Nullable(Type.String({ minLength: 1 })),
    inReplyToContributionId: Nullable(Type.String({ minLength: 1 })),
    /** A CPM Group Session (group ICSI, or the Controlling Function's `isfocus`; plugin/rules/facts.ts). */
    group: Type.Boolean(),
    /** For a group session: the Controlling Function's Contact URI (the conference focus, RFC 4575); else null. */
    focus: Nullable(Type.String({ minLength: 1 })),
    /** When the stored messages expire (epoch ms), as given to the relay's `defer` (policy.deferredTtlS). */
    expiresAt: Type.Number(),
    /**
     * CR 8.5: the deferred call was recorded (its plan's `record`, relay `offer`): its
     * delivery records the device's notifications in the same folder (relay `deliver`).
     * Absent in entries stored before it existed: not recorded.
     */
    record: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export type DeferredRecord = Static<typeof DeferredRecordSchema>;

const check = TypeCompiler.Compile(DeferredRecordSchema);

/** Whether a value read back from a store is a DeferredRecord. */
export function isDeferredRecord(v: unknown): v is DeferredRecord {
  return check.Check(v);
}

/** Called when a deferred call ends with its caller gone (its BYE, or the session's end): the record to keep. */
export type DeferredEndedListener = (record: DeferredRecord) => void | Promise<void>;

/**
 * Relay `deliver` params of one delivery call of `r` (docs/media-control.md "deliver").
 * A messages delivery of a recorded session records too (CR 8.5: the device's disposition
 * notifications, in the original session's folder, named by its ids). A notifications
 * delivery goes to the sender and records nothing: the sender's history is the sender's
 * PF's business.
 */
export function deliverParamsOf(r: DeferredRecord, what: DeliverWhat, relayCallId: string): DeliverParams {
  const record = what === 'messages' && r.record === true;
  return {
    'call-id': relayCallId, 'deferred-id': r.deferredId, what, 'served-user': r.servedUser,
    ...(record ? { record: true } : {}),
    ...(record && r.conversationId !== null ? { 'conversation-id': r.conversationId } : {}),
    ...(record && r.contributionId !== null ? { 'contribution-id': r.contributionId } : {}),
  };
}
