/**
 * Service-provider policy for the PF rules (docs/policy.md, "PF policy").
 * The schema is the TypeScript type: config loading validates against it once.
 */
import { Type, type Static } from '@sinclair/typebox';

export const MediaRuleSchema = Type.Object(
  {
    /** SDP media type of the m= line, e.g. `message`. */
    media: Type.String({ minLength: 1 }),
    /** SDP transport protocols allowed for that media, e.g. `TCP/MSRP`, `TCP/TLS/MSRP`. */
    protos: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  },
  { additionalProperties: false },
);

export const ModeSchema = Type.Union([Type.Literal('proxy'), Type.Literal('b2bua')]);

export const PolicySchema = Type.Object(
  {
    /** PF mode: proxy (CR 8.3.2.1 step 9) or B2BUA (step 8). */
    mode: ModeSchema,
    /**
     * Per served user (its canonical key, `sip:user@domain` as Device.aor), a mode other
     * than `mode`; users not listed get `mode` (modeFor).
     */
    modeByUser: Type.Record(Type.String({ pattern: '^sip:[^@;:\\s]+@[^@;:\\s]+$' }), ModeSchema, { additionalProperties: false }),
    /** CR step 1: release versions accepted in User-Agent, e.g. `OMA2.2`. Empty: no check. */
    supportedVersions: Type.Array(Type.String({ pattern: '^OMA[0-9]+\\.[0-9]+$' })),
    /** CR step 2: whether anonymous invitations are accepted. */
    allowAnonymity: Type.Boolean(),
    /** CR step 5: what SDP may offer. */
    media: Type.Object(
      {
        /** Allowed m= lines (media + proto). */
        allowed: Type.Array(MediaRuleSchema, { minItems: 1 }),
        /** Allowed MIME types in a=accept-types (`type/*` wildcards allowed); null: any. */
        acceptTypes: Type.Union([Type.Array(Type.String({ minLength: 1 })), Type.Null()]),
      },
      { additionalProperties: false },
    ),
    /** CR step 6: when no suitable client is registered: 480, or send to the ISF. */
    noSuitableDevice: Type.Union([Type.Literal('reject'), Type.Literal('isf')]),
    /** The ISF's SIP URI (CR 6.5). */
    isfUri: Type.String({ pattern: '^sips?:' }),
    /** CR 8.3.2.1.1: on 480/408/487/500/503/504 from every client, send to the ISF. */
    interworkingOnFailure: Type.Boolean(),
    /** CR step 7 iii: a non-CPM service value in P-Preferred/Asserted-Service. */
    foreignService: Type.Union([Type.Literal('reject'), Type.Literal('allow')]),
    /** CR step 3: the list name in the user's resource-lists document. */
    blacklistListName: Type.String({ minLength: 1 }),
    /**
     * Not in the CR (a lab aid, docs/policy.md): a rejection that carries no Warning gets
     * `Warning: 399 <pfHost> "<stage>"` naming the stage that decided.
     */
    diagnosticWarning: Type.Boolean(),
    /**
     * CR 8.3.2.1 step 8 a ii and 8.3.2.1.1 (8.3.6 delivery policies): deferred delivery.
     * No suitable device, or every device leg failed with 480/408/487/500/503/504: the
     * B2BUA answers the caller itself and the relay stores the messages for later
     * (docs/deferred.md). Needs the media path: a proxy-mode user's deferred session goes
     * through the B2BUA too (docs/policy.md "Deferred delivery").
     */
    deferredDelivery: Type.Boolean(),
    /** Per served user (its key, as modeByUser), a `deferredDelivery` other than the global one. */
    deferredDeliveryByUser: Type.Record(Type.String({ pattern: '^sip:[^@;:\\s]+@[^@;:\\s]+$' }), Type.Boolean(), { additionalProperties: false }),
    /** How long deferred messages are kept for delivery, seconds (the relay's `expires-at`). */
    deferredTtlS: Type.Integer({ minimum: 60, maximum: 366 * 86_400 }),
    /**
     * CR 8.5 / 8.3.2.1.4 step 2: record every B2BUA session in the history, whatever the
     * served user's `<allow-offline-storage>` (which records that user's sessions alone).
     */
    recordHistory: Type.Boolean(),
  },
  { additionalProperties: false },
);

export type Policy = Static<typeof PolicySchema>;
export type MediaRule = Static<typeof MediaRuleSchema>;
export type Mode = Static<typeof ModeSchema>;

export const defaultPolicy: Policy = {
  mode: 'proxy',
  modeByUser: {},
  supportedVersions: [],
  allowAnonymity: true,
  media: {
    allowed: [{ media: 'message', protos: ['TCP/MSRP', 'TCP/TLS/MSRP'] }],
    acceptTypes: null,
  },
  noSuitableDevice: 'reject',
  isfUri: 'sip:isf@127.0.0.1:5090',
  interworkingOnFailure: false,
  foreignService: 'reject',
  blacklistListName: 'oma_blockedcontacts',
  diagnosticWarning: false,
  deferredDelivery: false,
  deferredDeliveryByUser: {},
  deferredTtlS: 7 * 86_400,
  recordHistory: false,
};

/** The mode for one served user: its `modeByUser` entry, else `mode`. */
export function modeFor(policy: Policy, servedUser: string): Mode {
  return Object.hasOwn(policy.modeByUser, servedUser) ? policy.modeByUser[servedUser]! : policy.mode;
}

/** Whether deferred delivery is on for one served user: its `deferredDeliveryByUser` entry, else `deferredDelivery`. */
export function deferralFor(policy: Policy, servedUser: string): boolean {
  return Object.hasOwn(policy.deferredDeliveryByUser, servedUser) ? policy.deferredDeliveryByUser[servedUser]! : policy.deferredDelivery;
}
