/** Shared fixtures for the B2BUA SIP layer tests: raw messages as Kamailio relays them, a fake transport. */
import { parseSipMessage, type SipRequest, type SipResponse } from '../../../../plugin/sip/message.js';
import { FakeClock, reliableTimers } from '../../../../plugin/b2bua/sip/timers.js';
import type { TxContext } from '../../../../plugin/b2bua/sip/transaction.js';

export const KAM_VIA = 'SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKkam1';
export const OUR_SENT_BY = '127.0.0.1:5070';

export function text(start: string, headers: readonly string[], body = ''): string {
  return [start, ...headers, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
}

export function req(raw: string): SipRequest {
  const m = parseSipMessage(raw);
  if (m.kind !== 'request') throw new Error('not a request');
  return m;
}

export function res(raw: string): SipResponse {
  const m = parseSipMessage(raw);
  if (m.kind !== 'response') throw new Error('not a response');
  return m;
}

export interface InviteOptions {
  readonly method?: string;
  readonly branch?: string;
  readonly via?: string;
  readonly cseq?: number;
  readonly callId?: string;
  readonly fromTag?: string;
  readonly toTag?: string;
  readonly rr?: readonly string[];
  readonly contact?: string | null;
  readonly ruri?: string;
  readonly extra?: readonly string[];
}

/** An incoming request (from Kamailio to the B2BUA), INVITE by default. */
export function incoming(o: InviteOptions = {}): string {
  const method = o.method ?? 'INVITE';
  const h = [
    `Via: ${o.via ?? `SIP/2.0/TCP 127.0.0.1:5060;branch=${o.branch ?? 'z9hG4bKkam1'}`}`,
    'Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKphone1',
    'Max-Forwards: 69',
    `From: "Alice" <sip:alice@example.net>;tag=${o.fromTag ?? 'a1'}`,
    `To: <sip:bob@example.net>${o.toTag ? `;tag=${o.toTag}` : ''}`,
    `Call-ID: ${o.callId ?? 'call-1@10.0.0.9'}`,
    `CSeq: ${o.cseq ?? 1} ${method}`,
    ...(o.rr ?? []).map((r) => `Record-Route: ${r}`),
    ...(o.contact === null ? [] : [`Contact: ${o.contact ?? '<sip:alice@10.0.0.9:5060;transport=udp>'}`]),
    ...(o.extra ?? []),
  ];
  return text(`${method} ${o.ruri ?? 'sip:bob@127.0.0.1:5070;transport=tcp'} SIP/2.0`, h);
}

export interface ResponseOptions {
  readonly status?: number;
  readonly toTag?: string | null;
  readonly rr?: readonly string[];
  readonly contact?: string | null;
  readonly method?: string;
}

/** A response from a device (through Kamailio) to a request we sent. */
export function answer(request: SipRequest, o: ResponseOptions = {}): string {
  const status = o.status ?? 200;
  const tag = o.toTag === undefined ? 'dev1' : o.toTag;
  const cseq = request.get('CSeq')!;
  const h = [
    ...request.getAll('Via').map((v) => `Via: ${v}`),
    `From: ${request.get('From')}`,
    `To: ${request.get('To')}${tag === null ? '' : `;tag=${tag}`}`,
    `Call-ID: ${request.get('Call-ID')}`,
    `CSeq: ${o.method ? `${cseq.split(' ')[0]} ${o.method}` : cseq}`,
    ...(o.rr ?? []).map((r) => `Record-Route: ${r}`),
    ...(o.contact === null || status < 101 || status >= 300 ? [] : [`Contact: ${o.contact ?? `<sip:dev-${tag}@10.0.0.20:5060>`}`]),
  ];
  return text(`SIP/2.0 ${status} ${status === 200 ? 'OK' : 'X'}`, h);
}

export interface Harness {
  readonly clock: FakeClock;
  readonly ctx: TxContext;
  readonly sent: string[];
  /** Parsed first lines of what was sent, e.g. `SIP/2.0 100 Trying`, `ACK sip:...`. */
  lines(): string[];
}

export function harness(T1 = 500): Harness {
  const clock = new FakeClock();
  const sent: string[] = [];
  return {
    clock,
    sent,
    ctx: { clock, timers: reliableTimers(T1), send: (t) => void sent.push(t) },
    lines: () => sent.map((s) => s.slice(0, s.indexOf('\r\n'))),
  };
}
