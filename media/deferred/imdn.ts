// What the deferred store keeps about a message, read from its CPIM head, and the failed
// delivery notification the relay generates for a message that expired unread
// (RFC 5438 §7.2.1.1, docs/deferred.md "Expiry"). Pure functions.

import { randomBytes } from 'node:crypto';
import { CPIM_TYPE, IMDN_TYPE, classify, mediaType, cpimAddress, headerValue, parseCpimHead, type CpimHeader, type PayloadKind } from '../cpim/head.js';
import type { DeferredRecord, NewItem, StoredItem } from './store.js';

const IMDN_NS = 'urn:ietf:params:imdn';

export interface CpimFacts {
  readonly kind: PayloadKind;
  readonly imdnMessageId?: string;
  /** imdn.Disposition-Notification lists negative-delivery (RFC 5438 §6.2). */
  readonly negativeDelivery: boolean;
  /** CPIM From, as addr-spec. */
  readonly sender?: string;
  /** CPIM To, as addr-spec. */
  readonly recipient?: string;
  readonly dateTime?: string;
}

/** The prefix NS binds to the IMDN namespace (RFC 3862 §3.3.5); `imdn` by default. */
function imdnPrefix(headers: readonly CpimHeader[]): string {
  for (const x of headers) {
    if (x.name.toLowerCase() !== 'ns') continue;
    const m = /^\s*([^\s<]*)\s*<([^>]*)>/.exec(x.value);
    if (m?.[2] === IMDN_NS && m[1]) return m[1];
  }
  return 'imdn';
}

/** Read a complete message's CPIM facts; a payload that is not CPIM gives its kind alone. */
export function cpimFacts(payload: Buffer, contentType: string): CpimFacts {
  const r = mediaType(contentType) === CPIM_TYPE ? parseCpimHead(payload.subarray(0, 64 * 1024)) : undefined;
  if (r?.state !== 'complete') return { kind: classify(contentType, undefined), negativeDelivery: false };
  const h = r.head.headers;
  const prefix = imdnPrefix(h);
  const dn = headerValue(h, `${prefix}.Disposition-Notification`) ?? '';
  const id = headerValue(h, `${prefix}.Message-ID`);
  const sender = cpimAddress(headerValue(h, 'From'));
  const recipient = cpimAddress(headerValue(h, 'To'));
  const dateTime = headerValue(h, 'DateTime');
  return {
    kind: classify(contentType, r.head),
    negativeDelivery: dn.split(',').some(v => v.trim().toLowerCase() === 'negative-delivery'),
    ...(id ? { imdnMessageId: id } : {}),
    ...(sender ? { sender } : {}),
    ...(recipient ? { recipient } : {}),
    ...(dateTime ? { dateTime } : {}),
  };
}

/** XML character data / attribute text (no markup from a CPIM value). */
function xmlText(v: string): string {
  return v.replace(/[<>&'"]/g, c => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!)
    // eslint-disable-next-line no-control-regex
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '');
}

/** A CPIM header value on one line. */
function oneLine(v: string): string {
  // eslint-disable-next-line no-control-regex
  return v.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
}

export interface FailedNotice {
  /** The expired message. */
  readonly message: StoredItem;
  /** The served user (the notification's From); the message's CPIM To when absent. */
  readonly servedUser: string | undefined;
  readonly now: number;
  /** The notification's own expiry (ms since the epoch). */
  readonly expiresAt: number;
  /** imdn.Message-ID of the notification; random when absent. */
  readonly notificationId?: string;
}

/**
 * RFC 5438 §7.2.1.1: the failed delivery notification for an expired message that asked
 * for negative-delivery, From the served user To the original sender; undefined when the
 * message did not ask, or has no imdn.Message-ID or sender to answer.
 */
export function failedDeliveryNotice(n: FailedNotice): NewItem | undefined {
  const m = n.message;
  if (!m.negativeDelivery || m.imdnMessageId === undefined) return undefined;
  const facts = cpimFacts(m.payload, m.contentType);
  const sender = m.sender ?? facts.sender;
  const from = n.servedUser ?? facts.recipient;
  if (sender === undefined || from === undefined) return undefined;
  const now = new Date(n.now).toISOString();
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\r\n' +
    '<imdn xmlns="urn:ietf:params:xml:ns:imdn">\r\n' +
    `<message-id>${xmlText(m.imdnMessageId)}</message-id>\r\n` +
    `<datetime>${xmlText(facts.dateTime ?? new Date(m.storedAt).toISOString())}</datetime>\r\n` +
    `<recipient-uri>${xmlText(oneLine(from))}</recipient-uri>\r\n` +
    `<original-recipient-uri>${xmlText(oneLine(facts.recipient ?? from))}</original-recipient-uri>\r\n` +
    '<delivery-notification><status><failed/></status></delivery-notification>\r\n' +
    '</imdn>\r\n';
  const body = Buffer.from(xml, 'utf8');
  const id = n.notificationId ?? randomBytes(12).toString('base64url');
  const head =
    `From: <${oneLine(from)}>\r\nTo: <${oneLine(sender)}>\r\nNS: imdn <${IMDN_NS}>\r\n` +
    `imdn.Message-ID: ${oneLine(id)}\r\nDateTime: ${now}\r\n\r\n` +
    `Content-Type: ${IMDN_TYPE}\r\nContent-Disposition: notification\r\nContent-Length: ${body.length}\r\n\r\n`;
  return {
    payload: Buffer.concat([Buffer.from(head, 'utf8'), body]),
    contentType: 'message/cpim',
    imdnMessageId: id,
    negativeDelivery: false,
    sender: from,
    expiresAt: n.expiresAt,
  };
}

/** The store's notice for the sweep: failed notifications that live `ttlMs` from now. */
export function expiryNotice(now: number, ttlMs: number): (m: StoredItem, rec: DeferredRecord | undefined) => NewItem | undefined {
  return (message, rec) => failedDeliveryNotice({ message, servedUser: rec?.servedUser, now, expiresAt: now + ttlMs });
}
