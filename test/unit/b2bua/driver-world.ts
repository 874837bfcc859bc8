/**
 * One B2BUA driver (plugin/b2bua/b2bua.ts) with its real transaction layer on a fake
 * clock and a fake relay, for the driver tests (driver-timers, restart): the messages it
 * sent, and small readers of them. Messages are written by the tests as Kamailio would
 * relay them.
 */
import { pino } from 'pino';
import { parseSipMessage, type SipMessage, type SipRequest } from '../../../plugin/sip/message.js';
import { B2bua, type B2buaDeps, type RelayPort } from '../../../plugin/b2bua/b2bua.js';
import { TransactionLayer } from '../../../plugin/b2bua/sip/layer.js';
import { FakeClock, reliableTimers } from '../../../plugin/b2bua/sip/timers.js';
import { TicketStore } from '../../../plugin/b2bua/tickets.js';
import type { Device } from '../../../plugin/devices/types.js';

export const T1 = 100;
export const KAM_RR = '<sip:127.0.0.1:5060;transport=tcp;lr>';
export const US = 'sip:pf-b2bua@127.0.0.1:5070;transport=tcp';
export const sdp = (path: string): string =>
  ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=message 7654 TCP/MSRP *', `a=path:${path}`, 'a=accept-types:message/cpim']
    .map((l) => `${l}\r\n`).join('');
export const CALLER_SDP = sdp('msrp://127.0.0.1:7654/caller;tcp');
export const DEVICE_SDP = sdp('msrp://127.0.0.1:7655/device;tcp');

export const DEVICE: Device = {
  aor: 'sip:bob@example.net', instance: '<urn:uuid:1>', contact: 'sip:bob@127.0.0.1:5099', params: {}, q: 1,
  pubGruu: 'sip:bob@example.net;gr=urn:uuid:1', received: null, path: [], callId: 'reg', cseq: 1, registeredAt: 0, expiresAt: 1e15,
};

export const ok = { result: 'ok' as const, warnings: [] };

export function text(start: string, headers: readonly string[], body = ''): string {
  return `${[start, ...headers, `Content-Length: ${Buffer.byteLength(body)}`].join('\r\n')}\r\n\r\n${body}`;
}

/** A relay that says yes to everything; `over` replaces verbs. */
export function yesRelay(over: Partial<RelayPort> = {}): RelayPort {
  return {
    offer: async () => ({ ...ok, sdp: sdp('msrp://127.0.0.1:2855/r1;tcp'), 'device-sdp': sdp('msrp://127.0.0.1:2855/r2;tcp'), 'relay-uri': '', 'device-relay-uri': '' }),
    answer: async (p) => ({ ...ok, leg: p.leg }),
    drop: async () => ok,
    delete: async () => ok,
    query: async (p) => ({ ...ok, 'call-id': p['call-id'], policy: 'C' as const, 'direct-delivery': false, record: false, legs: [] }),
    groupState: async () => ok,
    defer: async () => ok,
    discard: async () => ({ ...ok, discarded: 0 }),
    ...over,
  };
}

/** One B2BUA: its settings as the service's defaults, `extra` deps (a store, a wall clock). */
export function driverWorld(relay: RelayPort, extra: Partial<Pick<B2buaDeps, 'store' | 'wallNow'>> = {}) {
  const clock = new FakeClock();
  const timers = reliableTimers(T1);
  const sent: SipMessage[] = [];
  const send = (s: string): void => void sent.push(parseSipMessage(s));
  const tickets = new TicketStore(() => clock.now());
  const b = new B2bua({
    settings: {
      sentBy: '127.0.0.1:5070', contact: US, outboundProxy: 'sip:127.0.0.1:5060;transport=tcp;lr', legToken: 'x'.repeat(16),
      sessionExpires: 1800, minSE: 90, timerUnitMs: 1000, userAgent: 'CPM-serv/OMA2.2', policy: () => 'C', directDelivery: false,
      isfUri: null, maxRedirects: 3, maxSessionAgeMs: 43_200_000, pfHost: 'pf.example.net',
    },
    relay, tickets, clock, timers, log: pino({ level: 'silent' }), send, ...extra,
  });
  const layer = new TransactionLayer({ clock, timers, send }, b, (err) => {
    throw err;
  });
  b.layer = layer;
  return { clock, sent, b, layer, tickets };
}
export type DriverWorld = ReturnType<typeof driverWorld>;

/** Let the driver's per-call queues run. */
export const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};
export const requests = (w: DriverWorld, method: string): SipRequest[] =>
  w.sent.filter((m): m is SipRequest => m.kind === 'request' && m.method === method);
export const responses = (w: DriverWorld, cseq: RegExp): SipMessage[] => w.sent.filter((m) => m.kind === 'response' && cseq.test(m.get('CSeq') ?? ''));
export const statusOf = (m: SipMessage | undefined): number | undefined => (m?.kind === 'response' ? m.status : undefined);
/** Requests to the device legs (their own Call-IDs) and to the caller (Call-ID c1). */
export const toDevice = (w: DriverWorld, method: string): SipRequest[] => requests(w, method).filter((r) => r.get('Call-ID') !== 'c1');
export const toCaller = (w: DriverWorld, method: string): SipRequest[] => requests(w, method).filter((r) => r.get('Call-ID') === 'c1');

// ---- the caller and a device, as Kamailio relays them (shared by the deferred-session tests)

let viaN = 0;
export const via = (): string => `Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKw${++viaN}`;

/** The caller's INVITE for `ticket` (Call-ID c1 unless `callId`), with `extra` header lines. */
export function callerInvite(ticket: string, extra: readonly string[] = [], callId = 'c1'): string {
  return text(`INVITE ${US} SIP/2.0`, [
    via(), `Record-Route: ${KAM_RR}`, 'From: "Alice" <sip:alice@example.net>;tag=a1', 'To: <sip:bob@example.net>', `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    'Contact: <sip:alice@127.0.0.1:5555>', 'Max-Forwards: 69', `X-PF-Ticket: ${ticket}`, ...extra, 'Content-Type: application/sdp',
  ], CALLER_SDP);
}

/** The caller's ACK of our 2xx `ok200` (or a request in its dialog: `method`, `seq`, extra lines). */
export function fromCallerTo(ok200: SipMessage, method = 'ACK', seq = 1, extra: readonly string[] = []): string {
  return text(`${method} ${US} SIP/2.0`, [
    via(), 'From: "Alice" <sip:alice@example.net>;tag=a1', `To: ${ok200.get('To')}`, `Call-ID: ${ok200.get('Call-ID')}`, `CSeq: ${seq} ${method}`,
    'Max-Forwards: 69', ...extra,
  ]);
}

/** A device's final (or provisional) response to a leg INVITE; a 200 carries DEVICE_SDP. */
export function deviceResponse(inv: SipRequest, status: number, extra: readonly string[] = []): string {
  return text(`SIP/2.0 ${status} X`, [
    ...inv.getAll('Via').map((v) => `Via: ${v}`), `From: ${inv.get('From')}`, `To: ${inv.get('To')};tag=d${status}`, `Call-ID: ${inv.get('Call-ID')}`,
    `CSeq: ${inv.get('CSeq')}`, `Record-Route: ${KAM_RR}`, 'Contact: <sip:bob@127.0.0.1:5099>', ...extra,
    ...(status === 200 ? ['Content-Type: application/sdp'] : []),
  ], status === 200 ? DEVICE_SDP : '');
}

/** Our answer (`status`) to a request the B2BUA sent (a BYE, a refresh). */
export function answerTo(req: SipRequest, status: number): string {
  return text(`SIP/2.0 ${status} X`, [
    ...req.getAll('Via').map((v) => `Via: ${v}`), `From: ${req.get('From')}`, `To: ${req.get('To')}`, `Call-ID: ${req.get('Call-ID')}`, `CSeq: ${req.get('CSeq')}`,
  ]);
}
