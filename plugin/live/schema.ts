/**
 * What the live view's JSON routes answer (plugin/http/live.ts; docs/service.md "Live
 * view"). The TypeBox schemas are the types and the routes' response schemas.
 */
import { Type, type Static } from '@sinclair/typebox';

const CallState = Type.Union(['trying', 'ringing', 'established', 'failed', 'ended'].map((s) => Type.Literal(s)));

export const ParticipantSchema = Type.Object({
  /** `caller`, `kamailio`, `pf`, `relay`, `dev:<device key>`, `addr:<ip:port or URI>` */
  id: Type.String(),
  label: Type.String(),
  /** Address, contact or URI, for the page's tooltip. */
  detail: Type.String(),
});

export const LadderRowSchema = Type.Object({
  /** Epoch ms. */
  t: Type.Number(),
  from: Type.String(),
  to: Type.String(),
  kind: Type.Union([Type.Literal('sip'), Type.Literal('msrp'), Type.Literal('rpc'), Type.Literal('decision')]),
  label: Type.String(),
  /** The message as captured (cut), or the decision's JSON. */
  detail: Type.String(),
  /** A B2BUA leg's Call-ID; null for the caller's. */
  leg: Type.Union([Type.String(), Type.Null()]),
});

export const CallSummarySchema = Type.Object({
  callId: Type.String(),
  started: Type.Number(),
  updated: Type.Number(),
  state: CallState,
  from: Type.Union([Type.String(), Type.Null()]),
  to: Type.Union([Type.String(), Type.Null()]),
  /** pf.invite's action and CR stage, once decided. */
  decision: Type.Union([Type.Object({ action: Type.String(), stage: Type.Union([Type.String(), Type.Null()]) }), Type.Null()]),
  legs: Type.Array(Type.String()),
  messages: Type.Integer(),
  dropped: Type.Integer(),
});

export const LadderSchema = Type.Object({
  call: CallSummarySchema,
  participants: Type.Array(ParticipantSchema),
  rows: Type.Array(LadderRowSchema),
  /** Labels of the devices that answered (a 2xx to an INVITE). */
  answeredBy: Type.Array(Type.String()),
});

export const SessionSchema = Type.Object({
  callId: Type.String(),
  state: CallState,
  /** `proxy` or `b2bua` (the decision's action), null before the decision. */
  mode: Type.Union([Type.Literal('proxy'), Type.Literal('b2bua'), Type.Null()]),
  from: Type.Union([Type.String(), Type.Null()]),
  to: Type.Union([Type.String(), Type.Null()]),
  started: Type.Number(),
  answeredBy: Type.Array(Type.String()),
  legs: Type.Array(Type.String()),
});

export const SessionsSchema = Type.Object({
  /** Where the list comes from: the SIP trace of the live view. */
  source: Type.Literal('trace'),
  sessions: Type.Array(SessionSchema),
  /** The B2BUA's own count of calls in progress, when it runs (a cross-check). */
  b2buaCalls: Type.Union([Type.Integer(), Type.Null()]),
});

export const DeviceViewSchema = Type.Object({
  key: Type.String(),
  instance: Type.Union([Type.String(), Type.Null()]),
  contact: Type.String(),
  pubGruu: Type.Union([Type.String(), Type.Null()]),
  /** Feature tags of the Contact (RFC 3840: `+` parameters and the bare known ones), as registered. */
  tags: Type.Array(Type.String()),
  expiresAt: Type.Number(),
});

export const UserDevicesSchema = Type.Object({
  aor: Type.String(),
  devices: Type.Array(DeviceViewSchema),
});

export const StatsSchema = Type.Object({
  hepPackets: Type.Integer(),
  /** Not HEP3, or chunks that do not fit: dropped. */
  hepBad: Type.Integer(),
  sip: Type.Integer(),
  msrp: Type.Integer(),
  decisions: Type.Integer(),
  untracked: Type.Integer(),
  unparsed: Type.Integer(),
  dropped: Type.Integer(),
  evicted: Type.Integer(),
});

export const LiveStateSchema = Type.Object({
  now: Type.Number(),
  /** The HEP3 listener's port; 0 when off. */
  hepPort: Type.Integer(),
  calls: Type.Array(CallSummarySchema),
  sessions: SessionsSchema,
  users: Type.Array(UserDevicesSchema),
  stats: StatsSchema,
});

export type Participant = Static<typeof ParticipantSchema>;
export type LadderRow = Static<typeof LadderRowSchema>;
export type CallSummary = Static<typeof CallSummarySchema>;
export type Ladder = Static<typeof LadderSchema>;
export type Session = Static<typeof SessionSchema>;
export type Sessions = Static<typeof SessionsSchema>;
export type DeviceView = Static<typeof DeviceViewSchema>;
export type UserDevices = Static<typeof UserDevicesSchema>;
export type LiveStats = Static<typeof StatsSchema>;
export type LiveState = Static<typeof LiveStateSchema>;
