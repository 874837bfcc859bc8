/**
 * CPM session invitations and devices for the integration tests: a caller INVITE
 * (sipp uac-invite.xml / uac-call.xml) built from the spec's example, and devices
 * (sipp UAS) registered through Kamailio with their feature tags.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { runSipp, SippAgent, responsesIn, requestsIn, type SippResult } from './sipp.js';
import { register, sipUdpRequest, token, CPM_DEVICE_PARAMS, ICSI_GROUP, ICSI_SESSION, icsiTag, type RegisterOptions, type SipResponse } from './sip.js';
import { freePort } from './proc.js';
import { chatSdpLines, sipMessage } from './sip-fixtures.js';

/** The chat offer as sipp's BODY (LF line ends, sipp sends CRLF). */
const MSRP_SDP = chatSdpLines().join('\n');

export interface InviteOptions {
  dir: string;
  sipPort: number;
  to: string;
  from?: string;
  /** Header name -> value; `null` leaves a default header out. Order kept. */
  headers?: Record<string, string | null>;
  /** Extra raw header lines (repeated headers, garbage). */
  extraLines?: readonly string[];
  bodyType?: string;
  body?: string;
  contributionId?: string;
  timeoutMs?: number;
}

/** The CPM headers of a 1-1 chat INVITE from `from` (docs/policy.md "On the wire"). */
export function cpmHeaders(o: { from?: string; contributionId?: string }): Record<string, string> {
  const from = o.from ?? 'alice';
  return {
    'P-Asserted-Identity': `<sip:${from}@example.net>`,
    'P-Preferred-Service': ICSI_SESSION,
    'Accept-Contact': `*;${icsiTag(ICSI_SESSION)}`,
    'Conversation-ID': randomUUID(),
    'Contribution-ID': o.contributionId ?? randomUUID(),
    'User-Agent': 'CPM-client/OMA2.2 RCS-client/UP_2.4',
    Supported: 'timer',
    'Session-Expires': '1800',
  };
}

/**
 * A group session invitation from the Controlling Function (`conf`) on behalf of alice,
 * replacing the session `contributionId` (CR 8.3.2.1 step 9, Session-Replaces).
 */
export function replacingGroupInvite(o: { dir: string; sipPort: number; to: string; contributionId: string }): InviteOptions {
  return {
    dir: o.dir,
    sipPort: o.sipPort,
    to: o.to,
    from: 'conf',
    headers: {
      ...cpmHeaders({ from: 'conf' }),
      'P-Preferred-Service': ICSI_GROUP,
      'Accept-Contact': `*;${icsiTag(ICSI_GROUP)}`,
      'Referred-By': '<sip:alice@example.net>',
      'Session-Replaces': o.contributionId,
    },
  };
}

/** The placeholder values of uac-invite.xml / uac-call.xml for this INVITE. */
export function vars(o: InviteOptions, code: number | null, holdMs = 0): Record<string, string | number> {
  const base: Record<string, string | null> = { ...cpmHeaders(o), ...(o.headers ?? {}) };
  const lines = Object.entries(base)
    .filter((e): e is [string, string] => e[1] !== null)
    .map(([k, v]) => `${k}: ${v}`);
  lines.push(...(o.extraLines ?? []));
  return {
    USER: o.to,
    FROM: o.from ?? 'alice',
    DOMAIN: 'example.net',
    EXTRA: lines.map((l) => `${l}\n`).join(''),
    BODY_TYPE: o.bodyType ?? 'application/sdp',
    BODY: o.body ?? MSRP_SDP,
    CODE: code ?? 200,
    HOLD_MS: holdMs,
  };
}

/**
 * Send the INVITE from a plain UDP socket and return whatever final response comes
 * back (bad-input tests, where any clear answer will do). No ACK is sent: Kamailio's
 * retransmissions of a non-2xx simply end at its timer.
 */
export async function inviteAnyFinal(o: InviteOptions): Promise<SipResponse> {
  const v = vars(o, null);
  const body = String(v.BODY).replace(/\n/g, '\r\n') + '\r\n';
  const r = await sipUdpRequest(
    o.sipPort,
    (lp) =>
      sipMessage(
        `INVITE sip:${o.to}@example.net SIP/2.0`,
        [
          `Via: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bK${token()};rport`,
          `From: <sip:${o.from ?? 'alice'}@example.net>;tag=${token(4)}`,
          `To: <sip:${o.to}@example.net>`,
          `Call-ID: ${token()}`,
          'CSeq: 1 INVITE',
          `Contact: <sip:${o.from ?? 'alice'}@127.0.0.1:${lp}>`,
          'Max-Forwards: 70',
          ...String(v.EXTRA).split('\n').filter((l) => l !== ''),
          `Content-Type: ${String(v.BODY_TYPE)}`,
        ],
        body,
      ),
    o.timeoutMs ?? 10_000,
  );
  return r.final;
}

/**
 * An out-of-dialog OPTIONS (capability query) or MESSAGE (pager-mode chat, text/plain
 * `text`) from `from` to `to`, over UDP; resolves with the final response.
 */
export async function nonInvite(o: { sipPort: number; method: 'OPTIONS' | 'MESSAGE'; to: string; from?: string; text?: string; timeoutMs?: number }): Promise<SipResponse> {
  const from = o.from ?? 'alice';
  const body = o.method === 'MESSAGE' ? (o.text ?? 'hello') : '';
  const r = await sipUdpRequest(
    o.sipPort,
    (lp) =>
      sipMessage(
        `${o.method} sip:${o.to}@example.net SIP/2.0`,
        [
          `Via: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bK${token()};rport`,
          `From: <sip:${from}@example.net>;tag=${token(4)}`,
          `To: <sip:${o.to}@example.net>`,
          `Call-ID: ${token()}`,
          `CSeq: 1 ${o.method}`,
          'Max-Forwards: 70',
          `P-Asserted-Identity: <sip:${from}@example.net>`,
          ...(o.method === 'MESSAGE' ? ['Content-Type: text/plain'] : ['Accept: application/sdp']),
        ],
        body,
      ),
    o.timeoutMs ?? 10_000,
  );
  return r.final;
}

export interface CallResult extends SippResult {
  /** The final response the caller got (undefined if none). */
  final: SipResponse | undefined;
}

const withFinal = (r: SippResult): CallResult => ({
  ...r,
  final: responsesIn(r.messages).find((x) => x.status >= 200 && /CSeq:\s*1 INVITE/i.test(x.raw)),
});

/** An INVITE that must end with final status `code` (non-2xx). */
export async function inviteExpecting(o: InviteOptions, code: number): Promise<CallResult> {
  return withFinal(
    await runSipp({
      scenario: 'uac-invite.xml',
      dir: o.dir,
      remote: `127.0.0.1:${o.sipPort}`,
      vars: vars(o, code),
      timeoutMs: o.timeoutMs ?? 20_000,
      name: `inv-${o.to}`,
    }),
  );
}

/**
 * A whole call: 200, ACK and BYE along the Record-Route set, holding `holdMs` in between;
 * with `calleeHangsUp`, the callee's BYE ends it (a device with behaviour `answer-bye`).
 */
export async function call(o: InviteOptions, holdMs = 0, calleeHangsUp = false): Promise<CallResult> {
  return withFinal(
    await runSipp({
      scenario: calleeHangsUp ? 'uac-call-callee-bye.xml' : 'uac-call.xml',
      dir: o.dir,
      remote: `127.0.0.1:${o.sipPort}`,
      vars: vars(o, 200, holdMs),
      timeoutMs: o.timeoutMs ?? 20_000 + holdMs,
      name: `call-${o.to}`,
    }),
  );
}

export type DeviceBehaviour =
  | { kind: 'answer' }
  /**
   * answers as `answer`, then keeps each dialog `lingerMs` after its 200 to the BYE
   * (default Timer J, 64*T1 = 32 s, RFC 3261 §17.2.2) and answers retransmitted BYEs:
   * the load runs' device (docs/reliability.md "404 Not here on BYE")
   */
  | { kind: 'linger'; lingerMs?: number }
  /** answers, then hangs up itself after `holdMs` (its BYE along the Record-Route set) */
  | { kind: 'answer-bye'; holdMs: number }
  | { kind: 'ring' }
  /** answers OPTIONS and MESSAGE with 200 (no INVITE): capability queries, pager-mode chat */
  | { kind: 'pager' }
  | { kind: 'reply'; code: number; reason: string; extra?: readonly string[] }
  /** answers 200 with this body (`type` '' for none): bad-input cases of B2BUA mode */
  | { kind: 'answer-body'; type: string; body: string };

/** The 180 a device sends before answering (sipp <send>), with its Contact parameters. */
export function ringing(contactParams: string): string {
  return `<send>
    <![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port]>${contactParams}
Content-Length: 0

    ]]>
  </send>`;
}

export interface DeviceOptions {
  dir: string;
  sipPort: number;
  user: string;
  instance: string;
  /** Contact feature parameters (default: a CPM chat device). */
  params?: string;
  behaviour: DeviceBehaviour;
  register?: boolean;
  /**
   * Send 180 before answering / while ringing (default true). The benchmark turns it
   * off: under load a branch's 180 and the other branch's 200 are relayed by different
   * Kamailio processes and may reach the caller in either order.
   */
  ringing?: boolean;
  /** Trace the device's messages (default true; off under load). */
  trace?: boolean;
  /**
   * a=setup of its SDP answer (RFC 6135): passive answers the caller's active offer in
   * proxy mode (the default); active answers the B2BUA relay's passive offer.
   */
  setup?: 'active' | 'passive';
}

/** RFC 3261 §17.2.2 Timer J over UDP: 64*T1 (T1 = 500 ms). */
export const TIMER_J_MS = 64 * 500;

const UAS_SCENARIO: Record<Exclude<DeviceBehaviour['kind'], 'reply'>, string> = {
  answer: 'uas-answer.xml',
  linger: 'uas-answer-linger.xml',
  'answer-bye': 'uas-answer-bye.xml',
  ring: 'uas-ring.xml',
  pager: 'uas-pager.xml',
  'answer-body': 'uas-answer-body.xml',
};

/**
 * A device's registration (RFC 3261 §10.2.4): one Call-ID for all its REGISTERs, the CSeq
 * one up each time. Device below and the chat phones (lab/chat-phone.ts) keep one.
 */
export class Binding {
  /** Refreshes and removal reuse it. */
  readonly callId = token();
  private cseq = 0;

  constructor(readonly o: { readonly user: string; readonly instance: string; readonly params: string }) {}

  /** The next REGISTER for the Contact on `contactPort`; `expires: 0` removes it (RFC 3261 §10.2.2). */
  next(contactPort: number, expires?: number): RegisterOptions {
    this.cseq++;
    return {
      callId: this.callId,
      cseq: this.cseq,
      user: this.o.user,
      contactPort,
      instance: this.o.instance,
      params: this.o.params,
      ...(expires === undefined ? {} : { expires }),
    };
  }
}

/** A device: a sipp UAS playing `behaviour`, registered for `user` with `instance`. */
export class Device {
  private constructor(
    readonly agent: SippAgent,
    readonly o: DeviceOptions,
    readonly registration: SipResponse | null,
    private readonly binding: Binding,
  ) {}

  get port(): number {
    return this.agent.port;
  }

  get contact(): string {
    return `sip:${this.o.user}@127.0.0.1:${this.agent.port}`;
  }

  static async start(o: DeviceOptions): Promise<Device> {
    const binding = new Binding({ user: o.user, instance: o.instance, params: o.params ?? CPM_DEVICE_PARAMS });
    // Another test process may take the chosen port between our REGISTER and sipp's bind
    // (each picks ports on its own): then the binding is removed and another port tried.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      try {
        return await Device.startOn(o, binding, port);
      } catch (err) {
        if (attempt >= 3 || !(err instanceof Error) || !/Address already in use/.test(err.message)) throw err;
        if (o.register ?? true) await register(o.sipPort, { ...binding.next(port, 0), fromPort: port }).catch(() => undefined);
      }
    }
  }

  private static async startOn(o: DeviceOptions, binding: Binding, port: number): Promise<Device> {
    const inst = `;+sip.instance="<${o.instance}>"`;
    const b = o.behaviour;
    // register from the device's own port first (the service routes to the source
    // address of the REGISTER), then let the device's sipp take the port
    let reg: SipResponse | null = null;
    if (o.register ?? true) {
      reg = await register(o.sipPort, { ...binding.next(port), fromPort: port });
      if (reg.status !== 200) throw new Error(`device registration failed: ${reg.status} ${reg.reason}`);
    }
    const common = { dir: join(o.dir, 'devices'), name: `dev-${o.user}`, port, trace: o.trace };
    const agent =
      b.kind === 'reply'
        ? await SippAgent.start({
            ...common,
            scenario: 'uas-reply.xml',
            vars: { CODE: b.code, REASON: b.reason, EXTRA: (b.extra ?? []).map((l) => `${l}\n`).join('') },
          })
        : await SippAgent.start({
            ...common,
            scenario: UAS_SCENARIO[b.kind],
            vars: {
              CONTACT_PARAMS: inst,
              RINGING: o.ringing === false ? '' : ringing(inst),
              SETUP: o.setup ?? 'passive',
              ...(b.kind === 'answer-bye' ? { HOLD_MS: b.holdMs } : {}),
              ...(b.kind === 'linger' ? { LINGER_MS: b.lingerMs ?? TIMER_J_MS } : {}),
              ...(b.kind === 'answer-body' ? { BODY_TYPE: b.type === '' ? '' : `Content-Type: ${b.type}\n`, BODY: b.body } : {}),
            },
          });
    return new Device(agent, o, reg, binding);
  }

  /** INVITEs this device received so far. */
  invites(): string[] {
    return requestsIn(this.agent.messages(), 'INVITE');
  }

  /** Requests of `method` this device received so far. */
  requests(method: string): string[] {
    return requestsIn(this.agent.messages(), method);
  }

  messages(): string {
    return this.agent.messages();
  }

  /**
   * Remove this device's binding: REGISTER with `expires=0` for its Contact, same
   * Call-ID, next CSeq (RFC 3261 §10.2.2). Resolves with the final response, or
   * rejects when none comes within `timeoutMs`.
   */
  async unregister(timeoutMs = 2000): Promise<SipResponse> {
    return register(this.o.sipPort, { ...this.binding.next(this.port, 0), timeoutMs });
  }

  async stop(): Promise<void> {
    await this.agent.stop();
  }
}

export const newInstance = (): string => `urn:uuid:${randomUUID()}`;
