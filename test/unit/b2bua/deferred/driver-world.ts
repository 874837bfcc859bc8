/**
 * The delivery driver (plugin/b2bua/deferred/delivery-driver.ts) with the real
 * transaction layer on a fake clock, a fake relay that records its verbs, and the
 * pending store in memory; readers of what it sent and writers of what Kamailio would
 * relay back.
 */
import { pino } from 'pino';
import { parseSipMessage, type SipMessage, type SipRequest } from '../../../../plugin/sip/message.js';
import { TransactionLayer, type ServerTransaction, type TransactionUser } from '../../../../plugin/b2bua/sip/layer.js';
import { FakeClock, reliableTimers } from '../../../../plugin/b2bua/sip/timers.js';
import { TuRouter } from '../../../../plugin/b2bua/sip/tu-router.js';
import { responseTo } from '../../../../plugin/b2bua/sip/build.js';
import { DeliveryDriver, type DeliveryDeps, type DeliveryRelay } from '../../../../plugin/b2bua/deferred/delivery-driver.js';
import { MemoryPendingDeliveries } from '../../../../plugin/b2bua/deferred/pending-store.js';
import type { DeferredRecord } from '../../../../plugin/b2bua/deferred/record.js';
import type { Device } from '../../../../plugin/devices/types.js';

export const T1 = 100;
export const TOKEN = 'x'.repeat(16);
export const USER = 'sip:bob@example.net';
export const ICSI_PARAMS = { '+g.3gpp.icsi-ref': 'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session' } as const;
export const sdp = (path: string): string =>
  ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=message 7654 TCP/MSRP *', `a=path:${path}`, 'a=accept-types:message/cpim']
    .map((l) => `${l}\r\n`).join('');

export function device(n: number, over: Partial<Device> = {}): Device {
  return {
    aor: USER, instance: `<urn:uuid:${n}>`, contact: `sip:bob@127.0.0.1:50${n}`, params: ICSI_PARAMS, q: 1,
    pubGruu: `${USER};gr=urn:uuid:${n}`, received: null, path: [], callId: `reg${n}`, cseq: 1, registeredAt: n, expiresAt: 1e15, ...over,
  };
}

let seq = 0;
export function record(over: Partial<DeferredRecord> = {}): DeferredRecord {
  seq++;
  return {
    deferredId: seq.toString(16).padStart(32, 'a'), servedUser: USER, callId: `orig-${seq}@x`, from: '"Alice" <sip:alice@example.net>',
    pAssertedIdentity: ['<sip:alice@example.net>'], to: `<${USER}>`, conversationId: 'conv-1', contributionId: `contrib-${seq}`,
    inReplyToContributionId: 'earlier', group: false, focus: null, expiresAt: 1e15, ...over,
  };
}

export type Verb = { verb: string; p: Record<string, unknown> };

/** A relay that says yes; `state` is what deferred-state answers; `over` replaces verbs. */
export function fakeRelay(verbs: Verb[], over: Partial<DeliveryRelay> = {}, state = { messages: 0, notifications: 0 }): DeliveryRelay {
  const log = (verb: string, p: object): void => void verbs.push({ verb, p: { ...p } });
  const ok = { result: 'ok' as const };
  return {
    deliver: async (p) => (log('deliver', p), { ...ok, 'device-sdp': sdp(`msrp://127.0.0.1:2855/${p['call-id'].slice(0, 6)};tcp`), 'device-relay-uri': '' }),
    answer: async (p) => (log('answer', p), { ...ok, leg: p.leg }),
    delete: async (p) => (log('delete', p), ok),
    discard: async (p) => (log('discard', p), { ...ok, discarded: 3 }),
    deferredState: async (p) => (log('deferred-state', p), { ...ok, ...state }),
    query: async (p) => (log('query', p), { ...ok, 'call-id': p['call-id'], policy: 'C' as const, 'direct-delivery': false, record: false, legs: [] }),
    groupState: async (p) => (log('group-state', p), ok),
    ...over,
  };
}

/** The primary TU (the B2BUA's calls): records what reached it. */
class Primary implements TransactionUser {
  readonly got: SipRequest[] = [];
  request(req: SipRequest, tx: ServerTransaction): void {
    this.got.push(req);
    tx.respond(responseTo(req, 481));
  }
  ack(): void {}
  cancel(): void {}
}

/** `nodes`: this driver's node id and the leases, for several drivers on one store (claims). */
export function world(
  relay: DeliveryRelay, store = new MemoryPendingDeliveries(), liveDeferred?: (user: string) => readonly string[],
  nodes: Pick<DeliveryDeps, 'node' | 'leases'> = {},
) {
  const clock = new FakeClock();
  const timers = reliableTimers(T1);
  const sent: SipMessage[] = [];
  const send = (s: string): void => void sent.push(parseSipMessage(s));
  const offered: string[] = [];
  let layer: TransactionLayer | null = null;
  const driver = new DeliveryDriver({
    settings: {
      sentBy: '127.0.0.1:5070', contact: 'sip:pf-b2bua@127.0.0.1:5070;transport=tcp', outboundProxy: 'sip:127.0.0.1:5060;transport=tcp;lr',
      legToken: TOKEN, sessionExpires: 1800, userAgent: 'CPM-serv/OMA2.2 cpm-pf', lingerMs: 2000,
    },
    relay, store, clock, log: pino({ level: 'silent' }), layer: () => layer!, wallNow: () => 1000 + clock.now(),
    offerLive: (_u, d) => void offered.push(d.contact),
    ...(liveDeferred ? { liveDeferred } : {}),
    ...nodes,
  });
  const primary = new Primary();
  layer = new TransactionLayer({ clock, timers, send }, new TuRouter(primary, [driver]), (err) => {
    throw err;
  });
  return { clock, sent, driver, layer, store, primary, offered };
}
export type World = ReturnType<typeof world>;

export const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};
export const requests = (w: World, method: string): SipRequest[] =>
  w.sent.filter((m): m is SipRequest => m.kind === 'request' && m.method === method);
export const responsesTo = (w: World, method: string): SipMessage[] => w.sent.filter((m) => m.kind === 'response' && (m.get('CSeq') ?? '').endsWith(method));

export function text(start: string, headers: readonly string[], body = ''): string {
  return `${[start, ...headers, `Content-Length: ${Buffer.byteLength(body)}`].join('\r\n')}\r\n\r\n${body}`;
}

/** A response to one of our requests, as Kamailio relays it. */
export function reply(req: SipRequest, status: number, o: { toTag?: string; body?: string; headers?: string[] } = {}): string {
  const to = o.toTag ? `${req.get('To')};tag=${o.toTag}` : req.get('To')!;
  return text(`SIP/2.0 ${status} X`, [
    ...req.getAll('Via').map((v) => `Via: ${v}`), `From: ${req.get('From')}`, `To: ${to}`, `Call-ID: ${req.get('Call-ID')}`, `CSeq: ${req.get('CSeq')}`,
    'Record-Route: <sip:127.0.0.1:5060;transport=tcp;lr>', 'Contact: <sip:peer@127.0.0.1:5099>', ...(o.body ? ['Content-Type: application/sdp'] : []),
    ...(o.headers ?? []),
  ], o.body ?? '');
}

/** A request in the dialog of our request `ours` (answered `toTag`), from the peer. */
export function fromPeer(ours: SipRequest, toTag: string, method: string, cseq: number, headers: string[] = [], body = ''): string {
  const fromTag = /tag=([^;]+)/.exec(ours.get('From') ?? '')![1];
  return text(`${method} sip:pf-b2bua@127.0.0.1:5070;transport=tcp SIP/2.0`, [
    `Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK${method}${cseq}${toTag}`, `From: <sip:peer@x>;tag=${toTag}`,
    `To: <sip:bob@example.net>;tag=${fromTag}`, `Call-ID: ${ours.get('Call-ID')}`, `CSeq: ${cseq} ${method}`, 'Contact: <sip:peer@127.0.0.1:5099>',
    'Max-Forwards: 70', ...headers,
  ], body);
}
