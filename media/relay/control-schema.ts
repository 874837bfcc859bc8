// The relay's control protocol as TypeBox schemas (docs/media-control.md): params of each
// verb, replies and events. media/relay/types.ts derives the TypeScript types from them;
// the server checks params against them (wire/dispatcher.ts) and the client checks
// replies and events (media/relay/control-client.ts). Field names are the wire names.

import { Type, type TSchema } from '@sinclair/typebox';

const CallId = Type.String({ minLength: 1, maxLength: 256 });
const LegTag = Type.String({ minLength: 1, maxLength: 256 });
const Sdp = Type.String({ minLength: 1, maxLength: 65536 });

/** CR 8.3.2.1.1: A first only, B first active, C all. */
export const MultiDevicePolicySchema = Type.Union([Type.Literal('A'), Type.Literal('B'), Type.Literal('C')]);

export const OfferParamsSchema = Type.Object({
  'call-id': CallId,
  /** The originator's SDP offer. */
  sdp: Sdp,
  /** The served user's public identity (for direct delivery: CPIM From matching). */
  'served-user': Type.Optional(Type.String({ maxLength: 1024 })),
  policy: Type.Optional(MultiDevicePolicySchema),
  /** Direct delivery of originated chat messages (CR 8.3.2.1.4 step 3.C / 4.B). */
  'direct-delivery': Type.Optional(Type.Boolean()),
  /** Record history (CR 8.5): <allow-offline-storage> or recording on. */
  record: Type.Optional(Type.Boolean()),
  'conversation-id': Type.Optional(Type.String({ maxLength: 256 })),
  'contribution-id': Type.Optional(Type.String({ maxLength: 256 })),
});

export const AnswerParamsSchema = Type.Object({
  'call-id': CallId,
  /** The device leg's tag, chosen by the B2BUA (for example the To-tag of its 200). */
  leg: LegTag,
  /** The device's SDP answer. */
  sdp: Sdp,
});

export const DropParamsSchema = Type.Object({ 'call-id': CallId, leg: LegTag });

/**
 * CR 8.3.2.4: the B2BUA ended a group session on expiry; the relay stores its Group State
 * Object in the session's history folder (docs/history.md), since the history store is
 * the relay's. The session itself may already be gone: the folder is named here.
 */
export const GroupStateParamsSchema = Type.Object({
  'call-id': CallId,
  'conversation-id': Type.String({ minLength: 1, maxLength: 256 }),
  'contribution-id': Type.String({ minLength: 1, maxLength: 256 }),
  /** The Controlling Function's focus URI (lastfocussessionid). */
  focus: Type.String({ maxLength: 1024 }),
  participants: Type.Optional(
    Type.Array(Type.Object({ uri: Type.String({ minLength: 1, maxLength: 1024 }), name: Type.Optional(Type.String({ maxLength: 256 })) }), { maxItems: 1000 }),
  ),
});
export const KeyParamsSchema = Type.Object({ 'call-id': CallId });
const EmptyParamsSchema = Type.Object({});

// ---- Deferred delivery (CR 8.3.2.1.1 step 3 i, 8.3.2.9; docs/media-control.md, "Deferred delivery")

/** Names a deferred session's stored items: 128 random bits as lower-case hex, chosen by the B2BUA. */
export const DeferredIdSchema = Type.String({ pattern: '^[0-9a-f]{32}$' });
/** What a delivery session sends: the stored messages (to the device) or the pending notifications (to the sender). */
export const DeliverWhatSchema = Type.Union([Type.Literal('messages'), Type.Literal('notifications')]);
const EpochMs = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/** Store every complete message of the session's originator under `deferred-id` from now on. */
export const DeferParamsSchema = Type.Object({
  'call-id': CallId,
  'deferred-id': DeferredIdSchema,
  /** The served user's public identity: From of the IMDNs the relay generates on expiry. */
  'served-user': Type.String({ minLength: 1, maxLength: 1024 }),
  /** The stored messages expire at this time (ms since the epoch). */
  'expires-at': EpochMs,
});

/** A session with no originator whose backlog is the stored items of `deferred-id`. */
export const DeliverParamsSchema = Type.Object({
  /** The delivery dialog's own Call-ID (a new relay session). */
  'call-id': CallId,
  'deferred-id': DeferredIdSchema,
  what: DeliverWhatSchema,
  'served-user': Type.Optional(Type.String({ maxLength: 1024 })),
  /**
   * CR 8.5: the deferred session was recorded. A messages delivery then records each
   * disposition notification from its peer in the session's history folder, named by
   * the original session's ids (as in `offer`); the stored messages are not recorded again.
   */
  record: Type.Optional(Type.Boolean()),
  'conversation-id': Type.Optional(Type.String({ maxLength: 256 })),
  'contribution-id': Type.Optional(Type.String({ maxLength: 256 })),
});

export const DeferredKeyParamsSchema = Type.Object({ 'deferred-id': DeferredIdSchema });

/** Params of every verb, by verb name. */
export const ParamsSchemas = {
  offer: OfferParamsSchema,
  answer: AnswerParamsSchema,
  drop: DropParamsSchema,
  delete: KeyParamsSchema,
  query: KeyParamsSchema,
  'group-state': GroupStateParamsSchema,
  ping: EmptyParamsSchema,
  defer: DeferParamsSchema,
  deliver: DeliverParamsSchema,
  discard: DeferredKeyParamsSchema,
  'deferred-state': DeferredKeyParamsSchema,
} satisfies Record<string, TSchema>;

/** Stable error codes of a verb's `result: "error"` reply. */
export const ControlErrorCodeSchema = Type.Union([
  Type.Literal('BAD_PARAMS'),
  Type.Literal('BAD_SDP'),
  Type.Literal('UNKNOWN_SESSION'),
  Type.Literal('UNKNOWN_LEG'),
  Type.Literal('SESSION_EXISTS'),
  Type.Literal('LEG_EXISTS'),
  Type.Literal('POLICY_REJECTED'),
  /** Deferred verbs: the relay has no deferred store, or the store failed (docs/media-control.md). */
  Type.Literal('STORE_UNAVAILABLE'),
]);

const Warnings = Type.Optional(Type.Array(Type.String()));

export const OkSchema = Type.Object({ result: Type.Literal('ok'), warnings: Warnings });

export const FailureSchema = Type.Object({
  result: Type.Literal('error'),
  'error-reason': Type.String(),
  'error-code': ControlErrorCodeSchema,
  warnings: Warnings,
});

const OfferOkSchema = Type.Composite([
  OkSchema,
  Type.Object({
    sdp: Type.String(),
    'device-sdp': Type.String(),
    'relay-uri': Type.String(),
    'device-relay-uri': Type.String(),
    /** With TLS configured: the device offer for each transport (any device may get either). */
    'device-sdp-tcp': Type.Optional(Type.String()),
    'device-sdp-tls': Type.Optional(Type.String()),
    'device-relay-uri-tcp': Type.Optional(Type.String()),
    'device-relay-uri-tls': Type.Optional(Type.String()),
  }),
]);
export const OfferReplySchema = Type.Union([OfferOkSchema, FailureSchema]);

export const AnswerReplySchema = Type.Union([
  Type.Composite([OkSchema, Type.Object({ leg: Type.String() })]),
  FailureSchema,
]);

export const SimpleReplySchema = Type.Union([OkSchema, FailureSchema]);

/** `offer`'s reply minus the originator's fields: the offer for the peer of a delivery session. */
export const DeliverReplySchema = Type.Union([
  Type.Composite([
    OkSchema,
    Type.Object({
      'device-sdp': Type.String(),
      'device-relay-uri': Type.String(),
      'device-sdp-tcp': Type.Optional(Type.String()),
      'device-sdp-tls': Type.Optional(Type.String()),
      'device-relay-uri-tcp': Type.Optional(Type.String()),
      'device-relay-uri-tls': Type.Optional(Type.String()),
    }),
  ]),
  FailureSchema,
]);

export const DiscardReplySchema = Type.Union([
  Type.Composite([OkSchema, Type.Object({ discarded: Type.Integer({ minimum: 0 }) })]),
  FailureSchema,
]);

export const DeferredStateReplySchema = Type.Union([
  Type.Composite([
    OkSchema,
    Type.Object({
      /** Stored messages not yet delivered. */
      messages: Type.Integer({ minimum: 0 }),
      /** Disposition notifications pending for the original sender. */
      notifications: Type.Integer({ minimum: 0 }),
      /** Arrival time (ms since the epoch) of the oldest undelivered item; absent when none. */
      oldest: Type.Optional(Type.Integer({ minimum: 0 })),
    }),
  ]),
  FailureSchema,
]);

export const LegInfoSchema = Type.Object({
  leg: Type.String(),
  role: Type.Union([Type.Literal('originator'), Type.Literal('device')]),
  /** tls: msrps on the TLS listener (TCP/TLS/MSRP). */
  transport: Type.Union([Type.Literal('tcp'), Type.Literal('tls')]),
  state: Type.Union([Type.Literal('waiting'), Type.Literal('connected'), Type.Literal('closed')]),
  path: Type.Array(Type.String()),
  'frames-in': Type.Number(),
  'frames-out': Type.Number(),
  'bytes-in': Type.Number(),
  'bytes-out': Type.Number(),
  dropped: Type.Number(),
});

export const QueryReplySchema = Type.Union([
  Type.Composite([
    OkSchema,
    Type.Object({
      'call-id': Type.String(),
      policy: MultiDevicePolicySchema,
      'direct-delivery': Type.Boolean(),
      record: Type.Boolean(),
      'first-active': Type.Optional(Type.String()),
      legs: Type.Array(LegInfoSchema),
    }),
  ]),
  FailureSchema,
]);

export const PingReplySchema = Type.Composite([
  OkSchema,
  Type.Object({
    sessions: Type.Number(),
    /** Network transport only, once any: control connections closed on accept since start (peer not allowed). */
    'refused-connections': Type.Optional(Type.Number()),
  }),
]);

/** Replies of every verb, by verb name (`subscribe` is the network transport's own). */
export const ReplySchemas = {
  offer: OfferReplySchema,
  answer: AnswerReplySchema,
  drop: SimpleReplySchema,
  delete: SimpleReplySchema,
  query: QueryReplySchema,
  'group-state': SimpleReplySchema,
  ping: PingReplySchema,
  defer: SimpleReplySchema,
  deliver: DeliverReplySchema,
  discard: DiscardReplySchema,
  'deferred-state': DeferredStateReplySchema,
  subscribe: OkSchema,
} satisfies Record<string, TSchema>;

export const RelayEventSchema = Type.Union([
  Type.Object({ event: Type.Literal('leg-connected'), 'call-id': Type.String(), leg: Type.String() }),
  Type.Object({ event: Type.Literal('leg-closed'), 'call-id': Type.String(), leg: Type.String(), reason: Type.String() }),
  Type.Object({
    event: Type.Literal('first-active'),
    'call-id': Type.String(),
    leg: Type.String(),
    kind: Type.Union([Type.Literal('chat'), Type.Literal('isComposing')]),
  }),
  /** A delivery session's backlog (or a deferred session's, on its first device leg) got every 200. */
  Type.Object({
    event: Type.Literal('delivered'),
    'call-id': Type.String(),
    /** The leg the backlog went to (its `answer` tag). */
    leg: Type.String(),
    'deferred-id': Type.String(),
    what: DeliverWhatSchema,
    sent: Type.Integer({ minimum: 0 }),
    remaining: Type.Integer({ minimum: 0 }),
  }),
  /** The expiry sweep removed stored messages of `deferred-id`. */
  Type.Object({
    event: Type.Literal('deferred-expired'),
    /** The Call-ID of the call that deferred these messages (`defer`), which may have ended. */
    'call-id': Type.String(),
    'deferred-id': Type.String(),
    expired: Type.Integer({ minimum: 0 }),
    notifications: Type.Integer({ minimum: 0 }),
  }),
]);

/** The JSON-RPC method of the notifications that carry events to subscribers. */
export const EVENT_METHOD = 'event';
