/**
 * The lab's chat phones and chat caller: real SIP (lab/sip-ua.ts) and real MSRP (the
 * project's client, media/client/peer.ts), so a session works end to end through Kamailio,
 * in proxy mode (the SDP passes, the phone and the caller meet directly) as in B2BUA mode
 * (the relay's SDP on each side): both only see SIP and MSRP.
 *
 * - ChatSession: one MSRP session; prints what arrives (lab/chat.ts eventLine), answers a
 *   delivery notification request (RFC 5438 §7.2.1.1), sends isComposing then the message.
 * - Phone: registers with the CPM feature tags (lab/calls.ts Binding), answers INVITEs with
 *   its own MSRP path and the a=setup RFC 6135 gives the answerer, unregisters on stop().
 * - ChatCaller: INVITE with an a=setup:actpass offer, ACK, BYE.
 * The CLIs (scripts/lab/phone.ts, chat.ts) and the tour are thin layers over these.
 */
import { EventEmitter } from 'node:events';
import { createHash, randomUUID } from 'node:crypto';
import { MsrpPeer, type ReceivedMessage } from '../media/client/peer.js';
import { Binding, cpmHeaders } from './calls.js';
import { buildRegister, token, CPM_DEVICE_PARAMS, ICSI_GROUP, icsiTag } from './sip.js';
import { SipUa, T1, hdr, hdrs, hostPort, param, uriOf, type Dest, type SipMsg } from './sip-ua.js';
import { sipMessage } from './sip-fixtures.js';
import {
  answerSetup,
  chatMessage,
  chatSdp,
  deliveryNotification,
  eventLine,
  inboundStep,
  isComposing,
  offererRole,
  outboundStep,
  readChatEvent,
  readChatSdp,
  type ChatEvent,
  type ChatMedia,
  type InboundState,
  type OutboundState,
  type Role,
  type Setup,
  type Step,
} from './chat.js';

/** Where printed lines go (console.log in the CLIs, an array in tests and the tour). */
export type Out = (line: string) => void;

const DOMAIN = 'example.net';

/** `p`, or a rejection naming `what` after `ms` (a lab that is not up answers nothing). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
const aorOf = (user: string, domain = DOMAIN): string => (user.includes(':') ? user : `sip:${user}@${domain}`);

/** An instance id for `--instance <n>`: the same user and n give the same urn:uuid (RFC 5626 §4.1). */
export function instanceFor(user: string, n: string): string {
  if (n.startsWith('urn:')) return n;
  const h = createHash('sha256').update(`${user}/${n}`).digest('hex');
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

// ---------------------------------------------------------------- MSRP session

export interface SessionEvents {
  event: [e: ChatEvent];
  closed: [];
}

export class ChatSession extends EventEmitter<SessionEvents> {
  /** Everything received, in order. */
  readonly events: ChatEvent[] = [];
  /** imdn.Message-IDs of the chat messages sent, in order. */
  readonly sent: string[] = [];
  private peer: MsrpPeer;
  private remote = '';
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly listener: MsrpPeer,
    /** Our identity, the CPIM From of what we send. */
    readonly self: string,
    private readonly out: Out,
  ) {
    super();
    this.peer = listener;
  }

  /** Listen first: the path goes into our SDP before we know who connects. */
  static async listen(self: string, out: Out): Promise<ChatSession> {
    return new ChatSession(await MsrpPeer.listen({ host: '127.0.0.1' }), self, out);
  }

  /** Our MSRP URI, the a=path of our SDP. */
  get path(): string {
    return this.listener.localUri;
  }

  /**
   * Start the session with the peer's media: active connects to the first URI of its path
   * and binds with an empty SEND (RFC 4975 §5.4), From-Path being our SDP's path (RFC 4975
   * §6.1: a relay matches it); passive waits for the peer's connection.
   */
  async start(role: Role, media: ChatMedia, remote: string, timeoutMs = 10_000): Promise<void> {
    this.remote = remote;
    const toPath = media.path.join(' ');
    if (role === 'active') {
      const first = new URL(media.path[0]!.replace(/^msrps?:/, 'http:'));
      const peer = await MsrpPeer.connect({
        host: first.hostname,
        port: Number(first.port || 2855),
        remotePath: toPath,
        sessionId: this.listener.sessionId,
      });
      peer.localUri = this.path;
      await this.listener.close();
      this.peer = peer;
      this.wire();
      const status = await peer.bind(timeoutMs);
      if (status !== 200) throw new Error(`MSRP bind answered ${status}`);
    } else {
      this.listener.remotePath = toPath;
      this.wire();
      await this.listener.waitForConnection(timeoutMs);
    }
    this.out(`msrp connected (${role}) with ${remote}`);
  }

  private wire(): void {
    this.peer.on('message', (m) => this.onMessage(m));
    // not printed: the peer's TCP close and its BYE race (the BYE line says it)
    this.peer.on('close', () => this.emit('closed'));
  }

  private onMessage(m: ReceivedMessage): void {
    const e = readChatEvent(m.contentType, m.body);
    this.events.push(e);
    this.out(eventLine(e));
    // RFC 5438 §7.2.1.1: the recipient sends the delivery notification the message asked for
    if (e.kind === 'chat' && e.imdnId !== undefined && e.notify.includes('positive-delivery')) {
      const body = deliveryNotification({ from: this.self, to: e.from, messageId: e.imdnId, messageDateTime: e.dateTime ?? '' });
      const id = e.imdnId;
      void this.enqueue(async () => {
        this.out(`>> imdn delivered ${id}`);
        await this.peer.sendMessage(body, { contentType: 'message/cpim' });
      });
    }
    this.emit('event', e);
  }

  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    const p = this.queue.then(job);
    this.queue = p.catch((err: unknown) => this.out(`msrp send failed: ${err instanceof Error ? err.message : String(err)}`));
    return p;
  }

  /** Typing (isComposing active, RFC 3994 §3), then the message; resolves with its imdn.Message-ID. */
  send(text: string): Promise<string> {
    return this.enqueue(async () => {
      await this.peer.sendMessage(isComposing({ from: this.self, to: this.remote, state: 'active' }), { contentType: 'message/cpim' });
      const msg = chatMessage({ from: this.self, to: this.remote, text });
      // printed and noted before it leaves: its notification may come back before the 200
      this.sent.push(msg.imdnId);
      this.out(`>> ${text} (imdn ${msg.imdnId})`);
      const r = await this.peer.sendMessage(msg.body, { contentType: 'message/cpim' });
      if (r.statuses.some((s) => s !== 200)) throw new Error(`SEND answered ${r.statuses.join(',')}`);
      return msg.imdnId;
    });
  }

  /**
   * Resolves once what was handed to send() has left and every message sent has its
   * delivery notification, or after `timeoutMs` (before a BYE: RFC 5438 §7.2.1.1 notes
   * come over the session).
   */
  async settle(timeoutMs = 5000): Promise<void> {
    await this.queue;
    await Promise.all(this.sent.map((id) => this.waitFor((e) => e.kind === 'imdn' && e.messageId === id, 0, timeoutMs))).catch(() => undefined);
  }

  /** The first event at or after `from` that matches, as soon as it is there. */
  waitFor(match: (e: ChatEvent) => boolean, from = 0, timeoutMs = 10_000): Promise<{ event: ChatEvent; index: number }> {
    const i = this.events.findIndex((e, k) => k >= from && match(e));
    if (i !== -1) return Promise.resolve({ event: this.events[i]!, index: i });
    return new Promise((resolve, reject) => {
      const onEvent = (e: ChatEvent): void => {
        if (!match(e)) return;
        done();
        resolve({ event: e, index: this.events.length - 1 });
      };
      const onClosed = (): void => {
        done();
        reject(new Error('the MSRP session closed'));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`nothing matching within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('closed', onClosed);
      };
      this.on('event', onEvent);
      this.on('closed', onClosed);
    });
  }

  /** Play a script (lab/chat.ts parseScript); resolves true when it ends with `bye`. */
  async run(steps: readonly Step[], timeoutMs = 10_000): Promise<boolean> {
    let cursor = 0;
    for (const s of steps) {
      if (s.kind === 'send') await this.send(s.text);
      else if (s.kind === 'wait-message') {
        const want = s.text;
        const r = await this.waitFor((e) => e.kind === 'chat' && (want === undefined || e.text === want), cursor, timeoutMs);
        cursor = r.index + 1;
      } else if (s.kind === 'wait-imdn') {
        const id = this.sent[this.sent.length - 1];
        if (id === undefined) throw new Error('wait imdn: nothing sent yet');
        await this.waitFor((e) => e.kind === 'imdn' && e.messageId === id, 0, timeoutMs);
      } else return true;
    }
    return false;
  }

  async close(): Promise<void> {
    await this.queue;
    await Promise.all([this.peer.close(), this.peer === this.listener ? undefined : this.listener.close()]);
  }
}

// ---------------------------------------------------------------- dialogs

/** What in-dialog requests need (RFC 3261 §12.2.1.1). */
interface Dialog {
  readonly callId: string;
  /** Our From (tag included) and the peer's To for our requests. */
  readonly local: string;
  readonly remote: string;
  readonly target: string;
  readonly routes: readonly string[];
  cseq: number;
}

/** Next hop of an in-dialog request: the first Route when it is a loose router, else the target (RFC 3261 §12.2.1.1). */
function nextHop(d: Dialog): Dest {
  const first = d.routes[0];
  return hostPort(first === undefined ? d.target : uriOf(first));
}

function inDialog(ua: SipUa, d: Dialog, method: 'ACK' | 'BYE', cseq = d.cseq): string {
  return sipMessage(`${method} ${d.target} SIP/2.0`, [
    `Via: ${ua.via()}`,
    'Max-Forwards: 70',
    `From: ${d.local}`,
    `To: ${d.remote}`,
    `Call-ID: ${d.callId}`,
    `CSeq: ${cseq} ${method}`,
    ...d.routes.map((r) => `Route: ${r}`),
  ]);
}

async function sendBye(ua: SipUa, d: Dialog, out: Out): Promise<void> {
  d.cseq++;
  out(`>> BYE (Call-ID ${d.callId})`);
  const r = await ua.request(inDialog(ua, d, 'BYE'), nextHop(d));
  out(`<< ${r.status} ${r.reason} (BYE)`);
}

// ---------------------------------------------------------------- phone

export type Answer = { readonly kind: 'after'; readonly ms: number } | { readonly kind: 'ring' } | { readonly kind: 'manual' };

export interface PhoneOptions {
  sipPort: number;
  user: string;
  instance: string;
  /** Contact feature parameters (default: a CPM chat client, lab/sip.ts CPM_DEVICE_PARAMS). */
  params?: string;
  /** Answer after `ms` (0: at once, after the 180), ring until cancelled, or when answer() says. */
  answer?: Answer;
  /** Send 180 Ringing before answering (default true). */
  ringing?: boolean;
  /** Played on every answered session. */
  script?: readonly Step[];
  out?: Out;
  domain?: string;
  timeoutMs?: number;
}

interface InboundCall {
  state: InboundState;
  readonly invite: SipMsg;
  readonly remote: string;
  readonly media: ChatMedia;
  readonly toTag: string;
  dialog: Dialog | undefined;
  session: ChatSession | undefined;
  retransmit: NodeJS.Timeout | undefined;
  answerTimer: NodeJS.Timeout | undefined;
}

export interface PhoneEvents {
  invite: [callId: string];
  cancel: [callId: string];
  connected: [callId: string, session: ChatSession];
  bye: [callId: string];
  request: [req: SipMsg];
}

export class Phone extends EventEmitter<PhoneEvents> {
  /** Every line printed, in order. */
  readonly lines: string[] = [];
  readonly calls = new Map<string, InboundCall>();
  readonly aor: string;
  private readonly binding: Binding;
  private readonly kamailio: Dest;
  private readonly out: Out;
  private stopped = false;

  private constructor(
    readonly ua: SipUa,
    readonly o: PhoneOptions,
  ) {
    super();
    this.aor = aorOf(o.user, o.domain);
    this.binding = new Binding({ user: o.user, instance: o.instance, params: o.params ?? CPM_DEVICE_PARAMS });
    this.kamailio = { host: '127.0.0.1', port: o.sipPort };
    const print = o.out ?? ((l: string) => console.log(l));
    this.out = (l) => {
      this.lines.push(l);
      print(l);
    };
    ua.on('request', (req) => this.onRequest(req));
    ua.on('cancel', (inv) => this.onCancel(inv));
  }

  /** Listen on a SIP port, then register from it (a phone listens before it registers). */
  static async start(o: PhoneOptions): Promise<Phone> {
    const ua = await SipUa.open();
    const phone = new Phone(ua, o);
    try {
      const r = await within(phone.register(), o.timeoutMs ?? 10_000, 'REGISTER');
      if (r.status !== 200) throw new Error(`REGISTER answered ${r.status} ${r.reason}`);
    } catch (err) {
      await ua.close();
      throw err;
    }
    phone.out(`registered ${phone.aor} ${o.instance} at sip:${o.user}@127.0.0.1:${ua.port}`);
    return phone;
  }

  get contact(): string {
    return `<sip:${this.o.user}@127.0.0.1:${this.ua.port}>;+sip.instance="<${this.o.instance}>"${this.o.params ?? CPM_DEVICE_PARAMS}`;
  }

  /** REGISTER again from this phone (a refresh of its binding: same Call-ID, next CSeq); the final answer. */
  refresh(expires?: number): Promise<SipMsg> {
    return this.register(expires);
  }

  private register(expires?: number): Promise<SipMsg> {
    const opts = this.binding.next(this.ua.port, expires);
    return this.ua.request(buildRegister(opts, this.ua.port), this.kamailio);
  }

  private onRequest(req: SipMsg): void {
    this.emit('request', req);
    const callId = hdr(req, 'call-id') ?? '';
    const from = uriOf(hdr(req, 'p-asserted-identity') ?? hdr(req, 'from') ?? '');
    switch (req.method) {
      case 'INVITE':
        if (param(hdr(req, 'to'), 'tag') !== undefined) {
          // no re-INVITE in the lab's chats
          this.ua.respond(req, 488, 'Not Acceptable Here');
          return;
        }
        this.onInvite(req, callId, from);
        return;
      case 'ACK': {
        // the ACK of our 2xx (a non-2xx's ACK stays in the transaction layer, lab/sip-ua.ts)
        const call = this.calls.get(callId);
        if (!call || (call.state !== 'answered' && call.state !== 'confirmed')) return;
        clearTimeout(call.retransmit);
        call.state = inboundStep(call.state, 'ack');
        this.ua.forget(call.invite);
        return;
      }
      case 'BYE': {
        const call = this.calls.get(callId);
        if (!call || (call.state !== 'answered' && call.state !== 'confirmed')) {
          this.ua.respond(req, 481, 'Call/Transaction Does Not Exist');
          return;
        }
        this.ua.respond(req, 200, 'OK');
        clearTimeout(call.retransmit);
        call.state = inboundStep(call.state, 'bye');
        this.out(`<< BYE from ${call.remote} (Call-ID ${callId})`);
        void call.session?.close();
        this.emit('bye', callId);
        return;
      }
      case 'OPTIONS':
        // capability discovery: our Contact carries the feature tags (RFC 3840 §9)
        this.ua.respond(req, 200, 'OK', { toTag: token(4), extra: [`Contact: ${this.contact}`, 'Accept: application/sdp'] });
        this.out(`<< OPTIONS from ${from}: 200`);
        return;
      case 'MESSAGE':
        this.ua.respond(req, 200, 'OK', { toTag: token(4) });
        this.out(`<< MESSAGE from ${from}: ${req.body}`);
        return;
      default:
        this.ua.respond(req, 501, 'Not Implemented');
    }
  }

  private onInvite(req: SipMsg, callId: string, remote: string): void {
    if (this.calls.has(callId)) return;
    this.out(`<< INVITE from ${remote} (Call-ID ${callId})`);
    this.emit('invite', callId);
    let media: ChatMedia;
    try {
      media = readChatSdp(req.body);
      answerSetup(media.setup);
    } catch (err) {
      this.ua.respond(req, 488, 'Not Acceptable Here', { toTag: token(4) });
      this.out(`>> 488 (${err instanceof Error ? err.message : String(err)})`);
      return;
    }
    const call: InboundCall = {
      state: 'offered', invite: req, remote, media, toTag: token(4),
      dialog: undefined, session: undefined, retransmit: undefined, answerTimer: undefined,
    };
    this.calls.set(callId, call);
    call.state = inboundStep(call.state, 'ring');
    if (this.o.ringing !== false) {
      this.ua.respond(req, 180, 'Ringing', { toTag: call.toTag, extra: [`Contact: ${this.contact}`] });
      this.out('>> 180 Ringing');
    }
    const a = this.o.answer ?? { kind: 'after', ms: 0 };
    if (a.kind === 'after' && a.ms === 0) void this.answer(callId);
    else if (a.kind === 'after') call.answerTimer = setTimeout(() => void this.answer(callId), a.ms);
  }

  /** Answer a ringing call (the last one offered when no Call-ID is given). */
  async answer(callId?: string): Promise<void> {
    const id = callId ?? [...this.calls.keys()].pop();
    const call = id === undefined ? undefined : this.calls.get(id);
    if (!call || call.state !== 'ringing' || id === undefined) return;
    call.state = inboundStep(call.state, 'answer');
    const role = answerSetup(call.media.setup);
    const session = await ChatSession.listen(this.aor, this.out);
    call.session = session;
    const req = call.invite;
    const rr = hdrs(req, 'record-route');
    // the dialog as the UAS sees it (RFC 3261 §12.1.1): route set = Record-Route in order
    call.dialog = {
      callId: id,
      local: `${hdr(req, 'to') ?? ''};tag=${call.toTag}`,
      remote: hdr(req, 'from') ?? '',
      target: uriOf(hdr(req, 'contact') ?? hdr(req, 'from') ?? ''),
      routes: rr,
      cseq: 0,
    };
    const sdp = chatSdp({ path: session.path, setup: role });
    this.ua.respond(req, 200, 'OK', {
      toTag: call.toTag,
      extra: [...rr.map((r) => `Record-Route: ${r}`), `Contact: ${this.contact}`, 'Content-Type: application/sdp'],
      body: sdp,
    });
    this.out(`>> 200 OK (msrp ${role})`);
    // the 2xx again until the ACK (RFC 3261 §13.3.1.4)
    const again = (interval: number, left: number): void => {
      call.retransmit = setTimeout(() => {
        if (call.state !== 'answered' || left <= 0) return;
        this.ua.resend(req);
        again(Math.min(interval * 2, 4000), left - 1);
      }, interval);
    };
    again(T1, 7);
    try {
      await session.start(role, call.media, call.remote, this.o.timeoutMs);
    } catch (err) {
      this.out(`msrp failed: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.emit('connected', id, session);
    if (this.o.script) {
      try {
        if (await session.run(this.o.script, this.o.timeoutMs)) await this.hangup(id);
      } catch (err) {
        this.out(`script failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  private onCancel(inv: SipMsg): void {
    const callId = hdr(inv, 'call-id') ?? '';
    const call = this.calls.get(callId);
    if (!call || call.state !== 'ringing') return;
    clearTimeout(call.answerTimer);
    call.state = inboundStep(call.state, 'cancel');
    this.ua.respond(inv, 487, 'Request Terminated', { toTag: call.toTag });
    this.out(`<< CANCEL (Call-ID ${callId})`);
    this.emit('cancel', callId);
  }

  /** The session typed text goes to: the last one connected. */
  get session(): ChatSession | undefined {
    const live = [...this.calls.values()].filter((c) => (c.state === 'answered' || c.state === 'confirmed') && c.session);
    return live[live.length - 1]?.session;
  }

  /** End a call: BYE for an answered one, 480 for one still ringing. */
  async hangup(callId: string): Promise<void> {
    const call = this.calls.get(callId);
    if (!call) return;
    clearTimeout(call.answerTimer);
    clearTimeout(call.retransmit);
    if (call.state === 'ringing') {
      call.state = inboundStep(call.state, 'hangup');
      this.ua.respond(call.invite, 480, 'Temporarily Unavailable', { toTag: call.toTag });
      this.out(`>> 480 (Call-ID ${callId})`);
    } else if ((call.state === 'answered' || call.state === 'confirmed') && call.dialog) {
      call.state = inboundStep(call.state, 'hangup');
      // BYE first, then the media: closing MSRP first makes a B2BUA end the leg itself, and
      // the two BYEs cross
      await sendBye(this.ua, call.dialog, this.out).catch((err: unknown) => this.out(`BYE failed: ${err instanceof Error ? err.message : String(err)}`));
      await call.session?.close();
    }
  }

  /** Hang up every call, unregister (REGISTER expires=0, same Call-ID, next CSeq) and close. */
  async stop(timeoutMs = 2000): Promise<boolean> {
    if (this.stopped) return true;
    this.stopped = true;
    for (const id of this.calls.keys()) await this.hangup(id);
    let ok = false;
    try {
      const r = await within(this.register(0), timeoutMs, 'REGISTER expires=0');
      ok = r.status === 200;
      this.out(ok ? `unregistered ${this.aor} ${this.o.instance}` : `unregister answered ${r.status} ${r.reason}`);
    } catch (err) {
      this.out(`unregister failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    await this.ua.close();
    return ok;
  }
}

// ---------------------------------------------------------------- caller

export interface CallerOptions {
  sipPort: number;
  from: string;
  to: string;
  out?: Out;
  /** Our a=setup (default actpass, as RCS clients offer; RFC 6135 §4). */
  setup?: Setup;
  domain?: string;
  timeoutMs?: number;
  /** Sees every response to the INVITE as it arrives (tests: answer once the 180s are in). */
  onResponse?: (r: SipMsg) => void;
  /** A group session invitation as the Controlling Function sends it: the group ICSI, Contact `<focus>;isfocus`. */
  group?: { readonly focus: string };
}

export interface CallerEvents {
  ended: [];
}

/** A chat placed through Kamailio: INVITE with the chat SDP, then MSRP; BYE on hangup(). */
export class ChatCaller extends EventEmitter<CallerEvents> {
  readonly lines: string[] = [];
  state: OutboundState = 'calling';
  /** Every response to the INVITE, in order. */
  readonly responses: SipMsg[] = [];
  final: SipMsg | undefined;
  private dialog: Dialog | undefined;
  private readonly out: Out;

  private constructor(
    readonly ua: SipUa,
    readonly session: ChatSession,
    readonly o: CallerOptions,
  ) {
    super();
    const print = o.out ?? ((l: string) => console.log(l));
    this.out = (l) => {
      this.lines.push(l);
      print(l);
    };
    ua.on('request', (req) => this.onRequest(req));
  }

  /**
   * Place the chat; resolves once it is answered and MSRP is up, or with the call failed
   * (`state` 'failed', `final` the response).
   */
  static async place(o: CallerOptions): Promise<ChatCaller> {
    const ua = await SipUa.open();
    const sink: { out: Out } = { out: () => undefined };
    const session = await ChatSession.listen(aorOf(o.from, o.domain), (l) => sink.out(l));
    const caller = new ChatCaller(ua, session, o);
    sink.out = caller.out;
    await caller.invite();
    return caller;
  }

  private async invite(): Promise<void> {
    const o = this.o;
    const self = aorOf(o.from, o.domain);
    const target = aorOf(o.to, o.domain);
    const callId = `${randomUUID()}@127.0.0.1`;
    const local = `<${self}>;tag=${token(4)}`;
    const setup = o.setup ?? 'actpass';
    const sdp = chatSdp({ path: this.session.path, setup });
    const groupHeaders: Record<string, string> = o.group ? { 'P-Preferred-Service': ICSI_GROUP, 'Accept-Contact': `*;${icsiTag(ICSI_GROUP)}` } : {};
    const cpm = Object.entries({ ...cpmHeaders({ from: o.from }), ...groupHeaders }).map(([k, v]) => `${k}: ${k === 'P-Asserted-Identity' ? `<${self}>` : v}`);
    const text = sipMessage(
      `INVITE ${target} SIP/2.0`,
      [
        `Via: ${this.ua.via()}`,
        'Max-Forwards: 70',
        `From: ${local}`,
        `To: <${target}>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        o.group ? `Contact: <${o.group.focus}>;isfocus` : `Contact: <sip:${o.from.replace(/^sip:|@.*$/g, '')}@127.0.0.1:${this.ua.port}>`,
        ...cpm,
        'Content-Type: application/sdp',
      ],
      sdp,
    );
    this.out(`>> INVITE ${target} (Call-ID ${callId}, msrp setup ${setup})`);
    const kamailio = { host: '127.0.0.1', port: o.sipPort };
    let answered: SipMsg | undefined;
    let heard!: () => void;
    const first = new Promise<void>((resolve) => (heard = resolve));
    const finalP = this.ua.request(text, kamailio, (r) => {
      heard();
      this.responses.push(r);
      o.onResponse?.(r);
      if (r.status < 200) {
        this.out(`<< ${r.status} ${r.reason}`);
        if (r.status > 100 && (this.state === 'calling' || this.state === 'proceeding')) this.state = outboundStep(this.state, 'provisional');
        return;
      }
      if (r.status >= 300) return;
      const tag = param(hdr(r, 'to'), 'tag');
      if (answered === undefined) {
        answered = r;
        return;
      }
      if (tag === param(hdr(answered, 'to'), 'tag')) {
        // a 2xx retransmission: ACK it again (RFC 3261 §13.2.2.4)
        if (this.dialog) this.ua.send(inDialog(this.ua, this.dialog, 'ACK', 1), nextHop(this.dialog));
        return;
      }
      // another branch answered too (a forking proxy): ACK, then BYE that dialog (RFC 3261 §13.2.2.4)
      const extra = this.dialogFrom(r, callId, local);
      this.out(`<< ${r.status} ${r.reason} from another device too: ACK and BYE it`);
      this.ua.send(inDialog(this.ua, extra, 'ACK', 1), nextHop(extra));
      void sendBye(this.ua, extra, () => undefined).catch(() => undefined);
    });
    try {
      // Kamailio answers 100 at once; nothing at all means no lab there
      await within(first, o.timeoutMs ?? 10_000, 'INVITE');
    } catch (err) {
      await this.close();
      throw err;
    }
    const final = await finalP;
    this.final = final;
    this.out(`<< ${final.status} ${final.reason}`);
    for (const w of hdrs(final, 'warning')) this.out(`   Warning: ${w}`);
    if (final.status >= 300) {
      this.state = outboundStep(this.state, 'failed');
      await this.close();
      return;
    }
    this.state = outboundStep(this.state, 'answered');
    const d = this.dialogFrom(final, callId, local);
    this.dialog = d;
    this.ua.send(inDialog(this.ua, d, 'ACK', 1), nextHop(d));
    const media = readChatSdp(final.body);
    const role = offererRole(setup, media.setup);
    await this.session.start(role, media, target, o.timeoutMs);
  }

  /** The dialog of a 2xx as the UAC sees it (RFC 3261 §12.1.2): route set = Record-Route reversed. */
  private dialogFrom(r: SipMsg, callId: string, local: string): Dialog {
    return {
      callId,
      local,
      remote: hdr(r, 'to') ?? '',
      target: uriOf(hdr(r, 'contact') ?? ''),
      routes: hdrs(r, 'record-route').reverse(),
      cseq: 1,
    };
  }

  private onRequest(req: SipMsg): void {
    const d = this.dialog;
    if (req.method === 'BYE' && d && hdr(req, 'call-id') === d.callId && this.state === 'confirmed') {
      this.ua.respond(req, 200, 'OK');
      this.state = outboundStep(this.state, 'bye');
      this.out('<< BYE');
      void this.close().then(() => this.emit('ended'));
      return;
    }
    if (req.method !== 'ACK') this.ua.respond(req, 481, 'Call/Transaction Does Not Exist');
  }

  /** BYE (when answered), then close MSRP and the SIP socket. */
  async hangup(): Promise<void> {
    if (this.state === 'confirmed' && this.dialog) {
      this.state = outboundStep(this.state, 'bye');
      // BYE first, then the media (as Phone.hangup)
      await sendBye(this.ua, this.dialog, this.out).catch((err: unknown) => this.out(`BYE failed: ${err instanceof Error ? err.message : String(err)}`));
    }
    await this.close();
    this.emit('ended');
  }

  private async close(): Promise<void> {
    await this.session.close();
    await this.ua.close();
  }
}
