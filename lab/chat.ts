/**
 * What the lab's chat phones and chat caller say and read, as pure functions:
 * - the MSRP media of a chat SDP (RFC 4975 §8) and who connects (RFC 4145 §4.1, RFC 6135 §4);
 * - CPIM chat messages (RFC 3862) asking for a delivery notification (RFC 5438 §6.2),
 *   isComposing (RFC 3994 §3), delivery notifications (RFC 5438 §7.2.1.1);
 * - reading a received MSRP message, and the line a CLI prints for it;
 * - the call states of the phone and of the caller (inboundStep, outboundStep: one guarded
 *   transition each, diagrams at their tables) and the `--script` steps.
 * The MSRP and SIP wiring is lab/chat-phone.ts.
 */
import { Buffer } from 'node:buffer';
import sdpTransform from 'sdp-transform';
import { buildCpim } from '../media/client/peer.js';
import { newMessageId } from '../media/msrp/serializer.js';
import { classify, cpimAddress, headerValue, parseCpimHead, IMDN_TYPE, ISCOMPOSING_TYPE } from '../media/cpim/head.js';

// ---------------------------------------------------------------- SDP

/** RFC 4145 §4 values; holdconn is not offered by chat clients. */
export type Setup = 'active' | 'passive' | 'actpass';
/** Who opens the TCP connection of the MSRP session. */
export type Role = 'active' | 'passive';

/** Types a chat client takes (RCS practice: CPIM at the top, text and IMDN wrapped in it). */
export const ACCEPT_TYPES = 'message/cpim application/im-iscomposing+xml';
export const ACCEPT_WRAPPED_TYPES = 'text/plain message/imdn+xml application/im-iscomposing+xml';

/**
 * The chat SDP: one `m=message` line over TCP/MSRP with our MSRP URI as `a=path` (RFC 4975
 * §8.1, §8.2), the accepted types (§8.6) and our `a=setup` (RFC 6135 §4).
 */
export function chatSdp(o: { path: string; setup: Setup; sessionVersion?: number }): string {
  const u = new URL(o.path.replace(/^msrps?:/, 'http:'));
  const host = u.hostname;
  const port = u.port || '2855';
  const v = o.sessionVersion ?? 1;
  return [
    'v=0',
    `o=- ${v} ${v} IN IP4 ${host}`,
    's=-',
    `c=IN IP4 ${host}`,
    't=0 0',
    `m=message ${port} TCP/MSRP *`,
    `a=path:${o.path}`,
    `a=accept-types:${ACCEPT_TYPES}`,
    `a=accept-wrapped-types:${ACCEPT_WRAPPED_TYPES}`,
    `a=setup:${o.setup}`,
    '',
  ].join('\r\n');
}

export interface ChatMedia {
  /** a=path URIs in order; the last one is the peer itself (RFC 4975 §8.2). */
  readonly path: readonly string[];
  /** a=setup as written, lower-cased; undefined when absent. */
  readonly setup: string | undefined;
}

/** The first active `m=message ... TCP/MSRP` line of an SDP; throws when there is none or it has no path. */
export function readChatSdp(sdp: string): ChatMedia {
  const parsed = sdpTransform.parse(sdp);
  const m = (parsed.media ?? []).find((x) => x.type === 'message' && /^TCP(\/TLS)?\/MSRP$/i.test(x.protocol) && x.port !== 0);
  if (!m) throw new Error('no active m=message TCP/MSRP line');
  const attr = (name: string): string | undefined =>
    (m.invalid ?? []).find((a) => a.value.toLowerCase().startsWith(`${name}:`))?.value.slice(name.length + 1).trim();
  const path = (attr('path') ?? '').split(/\s+/).filter((s) => s !== '');
  if (path.length === 0) throw new Error('m=message line without a=path');
  // sdp-transform knows a=setup and lifts it out of `invalid`
  const setup = (m.setup ?? attr('setup'))?.toLowerCase();
  return { path, setup };
}

/**
 * The answerer's a=setup for an offer's (RFC 4145 §4.1 table; RFC 6135 §4 for MSRP):
 * active -> passive, passive -> active; actpass -> passive (the answerer may pick either;
 * passive keeps the RFC 4975 model, in which the offerer connects); no a=setup means the
 * offerer is active (RFC 4145 §4.1 default), so passive as well.
 */
export function answerSetup(offer: string | undefined): Role {
  switch (offer) {
    case undefined:
    case 'active':
    case 'actpass':
      return 'passive';
    case 'passive':
      return 'active';
    default:
      throw new Error(`a=setup:${offer} is not answerable by a chat client`);
  }
}

/**
 * The offerer's role once the answer is in (RFC 4145 §4.1): the opposite of the answer's;
 * an answer without a=setup is passive (the default of an answer), so the offerer connects.
 */
export function offererRole(offered: Setup, answer: string | undefined): Role {
  const a = answer ?? 'passive';
  if (a !== 'active' && a !== 'passive') throw new Error(`answer a=setup:${a} is not active or passive`);
  const role: Role = a === 'active' ? 'passive' : 'active';
  if (offered !== 'actpass' && offered === a) throw new Error(`offer a=setup:${offered} answered with the same role`);
  return role;
}

// ---------------------------------------------------------------- CPIM payloads

export interface ChatMessage {
  /** CPIM body (message/cpim). */
  readonly body: Buffer;
  /** imdn.Message-ID (RFC 5438 §6.3), what a notification names. */
  readonly imdnId: string;
}

/** A chat message: CPIM wrapping text/plain, asking for a positive delivery notification (RFC 5438 §6.2). */
export function chatMessage(o: { from: string; to: string; text: string; imdnId?: string; dateTime?: string }): ChatMessage {
  const imdnId = o.imdnId ?? newMessageId();
  const body = buildCpim({
    from: o.from,
    to: o.to,
    body: o.text,
    contentType: 'text/plain;charset=UTF-8',
    imdnMessageId: imdnId,
    dispositionNotification: ['positive-delivery'],
    ...(o.dateTime ? { dateTime: o.dateTime } : {}),
  });
  return { body, imdnId };
}

/** isComposing (RFC 3994 §3), wrapped in CPIM as chat clients send it. */
export function isComposing(o: { from: string; to: string; state: 'active' | 'idle'; dateTime?: string }): Buffer {
  const xml = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">',
    `  <state>${o.state}</state>`,
    '  <contenttype>text/plain</contenttype>',
    ...(o.state === 'active' ? ['  <refresh>60</refresh>'] : []),
    '</isComposing>',
    '',
  ].join('\r\n');
  return buildCpim({ from: o.from, to: o.to, body: xml, contentType: ISCOMPOSING_TYPE, ...(o.dateTime ? { dateTime: o.dateTime } : {}) });
}

const xmlEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * A positive delivery notification for a received chat message (RFC 5438 §7.2.1.1), in CPIM
 * with `Content-Disposition: notification` (§7.1.1.2); From is the recipient, To the sender.
 */
export function deliveryNotification(o: {
  from: string;
  to: string;
  /** imdn.Message-ID and DateTime of the message notified about. */
  messageId: string;
  messageDateTime: string;
  dateTime?: string;
  imdnId?: string;
}): Buffer {
  const xml = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<imdn xmlns="urn:ietf:params:xml:ns:imdn">',
    `  <message-id>${xmlEscape(o.messageId)}</message-id>`,
    `  <datetime>${xmlEscape(o.messageDateTime)}</datetime>`,
    `  <recipient-uri>${xmlEscape(o.from)}</recipient-uri>`,
    `  <original-recipient-uri>${xmlEscape(o.from)}</original-recipient-uri>`,
    '  <delivery-notification><status><delivered/></status></delivery-notification>',
    '</imdn>',
    '',
  ].join('\r\n');
  const payload = Buffer.from(xml, 'utf8');
  const head = [
    `From: <${o.from}>`,
    `To: <${o.to}>`,
    `DateTime: ${o.dateTime ?? new Date().toISOString()}`,
    'NS: imdn <urn:ietf:params:imdn>',
    `imdn.Message-ID: ${o.imdnId ?? newMessageId()}`,
    '',
    `Content-Type: ${IMDN_TYPE}`,
    'Content-Disposition: notification',
    `Content-Length: ${payload.length}`,
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'utf8'), payload]);
}

// ---------------------------------------------------------------- reading

export type ChatEvent =
  | {
      readonly kind: 'chat';
      /** CPIM From as an addr-spec (media/cpim/head.ts cpimAddress). */
      readonly from: string;
      readonly text: string;
      /** Message-Direction (CR Appendix C), when present. */
      readonly direction: string | undefined;
      readonly imdnId: string | undefined;
      readonly dateTime: string | undefined;
      /** imdn.Disposition-Notification values, lower-cased. */
      readonly notify: readonly string[];
    }
  | { readonly kind: 'composing'; readonly from: string; readonly state: string }
  | { readonly kind: 'imdn'; readonly from: string; readonly messageId: string; readonly status: string }
  | { readonly kind: 'other'; readonly contentType: string; readonly bytes: number };

const tag = (xml: string, name: string): string | undefined => new RegExp(`<${name}>\\s*([^<]*?)\\s*</${name}>`).exec(xml)?.[1];

/** What a received MSRP message holds (classified as media/cpim/head.ts does for the relay). */
export function readChatEvent(contentType: string | undefined, body: Buffer): ChatEvent {
  const other: ChatEvent = { kind: 'other', contentType: contentType ?? '', bytes: body.length };
  const parsed = parseCpimHead(body);
  if (parsed.state !== 'complete') return other;
  const head = parsed.head;
  const kind = classify(contentType, head);
  const from = cpimAddress(headerValue(head.headers, 'From')) ?? '';
  const payload = body.subarray(head.bodyOffset).toString('utf8');
  if (kind === 'chat') {
    const notify = (headerValue(head.headers, 'imdn.Disposition-Notification') ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== '');
    return {
      kind: 'chat',
      from,
      text: payload,
      direction: headerValue(head.headers, 'Message-Direction'),
      imdnId: headerValue(head.headers, 'imdn.Message-ID'),
      dateTime: headerValue(head.headers, 'DateTime'),
      notify,
    };
  }
  if (kind === 'isComposing') return { kind: 'composing', from, state: tag(payload, 'state') ?? '' };
  if (kind === 'imdn') {
    const status = /<(delivery|display|processing)-notification>\s*<status>\s*<([a-z-]+)\s*\/>/.exec(payload);
    return { kind: 'imdn', from, messageId: tag(payload, 'message-id') ?? '', status: status ? `${status[1]}:${status[2]}` : 'unknown' };
  }
  return other;
}

/** The line a phone or the chat CLI prints for a received event (docs/lab.md "Chat"). */
export function eventLine(e: ChatEvent): string {
  switch (e.kind) {
    case 'chat':
      return `<< ${e.from}: ${e.text}${e.direction === undefined ? '' : ` [Message-Direction: ${e.direction}]`}`;
    case 'composing':
      return `<< ${e.from} is ${e.state === 'active' ? 'composing' : e.state}`;
    case 'imdn':
      return `<< imdn ${e.status} ${e.messageId} from ${e.from}`;
    case 'other':
      return `<< ${e.contentType || 'no content type'} (${e.bytes} bytes)`;
  }
}

// ---------------------------------------------------------------- call states

/**
 * A chat call as the phone sees it (RFC 3261 §13.3, §9.2, §15):
 *
 *   offered --ring--> ringing --answer--> answered --ack--> confirmed --bye--> ended
 *      |                 |                   |                  ^
 *      |                 +--cancel--> cancelled                 |
 *      +--reject--> ended      answered --bye (overtook the ACK)-+--> ended
 *   ringing/answered --hangup--> ended (the phone stops)
 */
export type InboundState = 'offered' | 'ringing' | 'answered' | 'confirmed' | 'cancelled' | 'ended';
export type InboundEvent = 'ring' | 'answer' | 'ack' | 'cancel' | 'bye' | 'reject' | 'hangup';

const INBOUND: Readonly<Record<InboundState, Partial<Record<InboundEvent, InboundState>>>> = {
  offered: { ring: 'ringing', reject: 'ended' },
  ringing: { answer: 'answered', cancel: 'cancelled', hangup: 'ended' },
  answered: { ack: 'confirmed', bye: 'ended', hangup: 'ended' },
  confirmed: { ack: 'confirmed', bye: 'ended', hangup: 'ended' },
  cancelled: {},
  ended: {},
};

/** The one way a phone's call changes state; throws on a move the diagram above does not have. */
export function inboundStep(s: InboundState, e: InboundEvent): InboundState {
  const next = INBOUND[s][e];
  if (next === undefined) throw new Error(`inbound call: no '${e}' in state ${s}`);
  return next;
}

/**
 * A chat call as the caller sees it (RFC 3261 §13.2, §15):
 *
 *   calling --provisional--> proceeding --answered--> confirmed --bye--> ended
 *      |   \______________________/  \--failed--> failed
 *      +--answered--> confirmed      (no 1xx before the 2xx)
 *      +--failed--> failed
 */
export type OutboundState = 'calling' | 'proceeding' | 'confirmed' | 'failed' | 'ended';
export type OutboundEvent = 'provisional' | 'answered' | 'failed' | 'bye';

const OUTBOUND: Readonly<Record<OutboundState, Partial<Record<OutboundEvent, OutboundState>>>> = {
  calling: { provisional: 'proceeding', answered: 'confirmed', failed: 'failed' },
  proceeding: { provisional: 'proceeding', answered: 'confirmed', failed: 'failed' },
  confirmed: { bye: 'ended' },
  failed: {},
  ended: {},
};

/** The one way the caller's call changes state; throws on a move the diagram above does not have. */
export function outboundStep(s: OutboundState, e: OutboundEvent): OutboundState {
  const next = OUTBOUND[s][e];
  if (next === undefined) throw new Error(`outbound call: no '${e}' in state ${s}`);
  return next;
}

// ---------------------------------------------------------------- scripts

/** One line of a `--script` file (docs/lab.md "Chat"). */
export type Step =
  | { readonly kind: 'send'; readonly text: string }
  /** wait for the next chat message (optionally with exactly this text) */
  | { readonly kind: 'wait-message'; readonly text: string | undefined }
  /** wait for the delivery notification of the last message sent */
  | { readonly kind: 'wait-imdn' }
  | { readonly kind: 'bye' };

/** Parse a script: `send <text>`, `wait message [<text>]`, `wait imdn`, `bye`; `#` comments, blank lines. */
export function parseScript(text: string): Step[] {
  const steps: Step[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let m: RegExpExecArray | null;
    if ((m = /^send\s+(.+)$/.exec(line))) steps.push({ kind: 'send', text: m[1]! });
    else if ((m = /^wait\s+message(?:\s+(.+))?$/.exec(line))) steps.push({ kind: 'wait-message', text: m[1] });
    else if (/^wait\s+imdn$/.test(line)) steps.push({ kind: 'wait-imdn' });
    else if (line === 'bye') steps.push({ kind: 'bye' });
    else throw new Error(`script line ${i + 1}: not understood: ${line}`);
  });
  return steps;
}
