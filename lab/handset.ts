/**
 * A lab chat phone (lab/chat-phone.ts) with what it saw, for the B2BUA integration tests
 * (b2bua-media, b2bua-restart): the MSRP sessions it connected, the SIP requests it got
 * and the CANCELs it answered; and the small readers those tests share.
 */
import { until } from './proc.js';
import type { SipMsg } from './sip-ua.js';
import { Phone, instanceFor, type ChatSession } from './chat-phone.js';
import type { ChatEvent } from './chat.js';

export interface Handset {
  readonly phone: Phone;
  readonly sessions: ChatSession[];
  readonly requests: SipMsg[];
  /** CANCELs as they arrived (the UA answers them itself and emits only the INVITE). */
  readonly cancels: SipMsg[];
}

/** Phone `n` of `user`, registered through Kamailio at `sipPort`; pushed to `phones` (to stop them). */
export async function handset(
  o: { sipPort: number; phones: Phone[] },
  user: string,
  n: number,
  answer?: Phone['o']['answer'],
): Promise<Handset> {
  const phone = await Phone.start({ sipPort: o.sipPort, user, instance: instanceFor(user, String(n)), ...(answer ? { answer } : {}), out: () => undefined });
  o.phones.push(phone);
  const h: Handset = { phone, sessions: [], requests: [], cancels: [] };
  phone.on('connected', (_id, s) => h.sessions.push(s));
  phone.on('request', (r) => h.requests.push(r));
  // SipUa answers a CANCEL through respond(): the one place its text is seen
  const respond = phone.ua.respond.bind(phone.ua);
  phone.ua.respond = (req, status, reason, ro) => {
    if (req.method === 'CANCEL') h.cancels.push(req);
    respond(req, status, reason, ro);
  };
  return h;
}

export const byes = (h: Handset): SipMsg[] => h.requests.filter((r) => r.method === 'BYE');
/** The Reason header lines of a request as they are on the wire. */
export const reasonLines = (m: SipMsg | undefined): string[] => (m?.raw ?? '').split('\r\n').filter((l) => /^reason\s*:/i.test(l));
export const chats = (events: readonly ChatEvent[]): Array<Extract<ChatEvent, { kind: 'chat' }>> =>
  events.filter((e): e is Extract<ChatEvent, { kind: 'chat' }> => e.kind === 'chat');
export const texts = (events: readonly ChatEvent[]): string[] => chats(events).map((e) => e.text);
export const eventsOf = (h: Handset): ChatEvent[] => h.sessions.flatMap((s) => s.events);

export async function eventually(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  await until(async () => (cond() ? true : undefined), ms, what, 20);
}

/** The phone's one MSRP session, once it is connected. */
export async function sessionOf(h: Handset): Promise<ChatSession> {
  await eventually(() => h.sessions.length > 0, `${h.phone.aor} connected`);
  return h.sessions[0]!;
}
