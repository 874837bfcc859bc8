// Public types of the relay's control surface (docs/media-control.md), derived from the
// schemas in media/relay/control-schema.ts. Field names are the wire names.

import type { Static } from '@sinclair/typebox';
import type {
  AnswerParamsSchema,
  AnswerReplySchema,
  ControlErrorCodeSchema,
  DeferParamsSchema,
  DeferredKeyParamsSchema,
  DeferredStateReplySchema,
  DeliverParamsSchema,
  DeliverReplySchema,
  DeliverWhatSchema,
  DiscardReplySchema,
  DropParamsSchema,
  FailureSchema,
  GroupStateParamsSchema,
  KeyParamsSchema,
  LegInfoSchema,
  MultiDevicePolicySchema,
  OfferParamsSchema,
  OfferReplySchema,
  OkSchema,
  PingReplySchema,
  QueryReplySchema,
  RelayEventSchema,
  SimpleReplySchema,
} from './control-schema.js';

/** CR 8.3.2.1.1: A first only, B first active, C all. */
export type MultiDevicePolicy = Static<typeof MultiDevicePolicySchema>;

export type OfferParams = Static<typeof OfferParamsSchema>;
export type AnswerParams = Static<typeof AnswerParamsSchema>;
export type DropParams = Static<typeof DropParamsSchema>;
export type KeyParams = Static<typeof KeyParamsSchema>;
export type GroupStateParams = Static<typeof GroupStateParamsSchema>;

export type Ok = Static<typeof OkSchema>;
export type Failure = Static<typeof FailureSchema>;
export type ControlErrorCode = Static<typeof ControlErrorCodeSchema>;

export type OfferReply = Static<typeof OfferReplySchema>;
export type AnswerReply = Static<typeof AnswerReplySchema>;
export type SimpleReply = Static<typeof SimpleReplySchema>;
export type LegInfo = Static<typeof LegInfoSchema>;
export type QueryReply = Static<typeof QueryReplySchema>;
export type PingReply = Static<typeof PingReplySchema>;

export type RelayEvent = Static<typeof RelayEventSchema>;

// Deferred delivery (docs/media-control.md, "Deferred delivery")
export type DeferParams = Static<typeof DeferParamsSchema>;
export type DeliverParams = Static<typeof DeliverParamsSchema>;
export type DeliverWhat = Static<typeof DeliverWhatSchema>;
export type DeferredKeyParams = Static<typeof DeferredKeyParamsSchema>;
export type DeliverReply = Static<typeof DeliverReplySchema>;
export type DiscardReply = Static<typeof DiscardReplySchema>;
export type DeferredStateReply = Static<typeof DeferredStateReplySchema>;
