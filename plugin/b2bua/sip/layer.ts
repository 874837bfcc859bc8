/**
 * The transaction layer of the B2BUA (RFC 3261 §17) over one TCP connection to Kamailio:
 * parses what arrives, matches it to a transaction (§17.1.3, §17.2.3) or hands it to the
 * TU, and creates client transactions for what the TU sends. Never throws out of
 * `receive`: garbage and stray responses are counted and dropped, a request the layer
 * cannot match (no Via branch with the z9hG4bK cookie, no CSeq ...) gets a 400, and a
 * request the TU throws on a 500.
 *
 * Not wired into the service yet: the B2BUA call logic comes next (docs/b2bua-sip.md).
 */
import { parseSipMessage, type SipMessage, type SipRequest, type SipResponse } from '../../sip/message.js';
import { cancelFor, cseqOf, MAGIC_COOKIE, newTag, responseTo, topVia, type Built } from './build.js';
import { InviteClientTransaction } from './invite-client.js';
import { InviteServerTransaction } from './invite-server.js';
import { NonInviteClientTransaction } from './non-invite-client.js';
import { NonInviteServerTransaction } from './non-invite-server.js';
import type { ClientEvents, TxContext } from './transaction.js';

export type ServerTransaction = InviteServerTransaction | NonInviteServerTransaction;
export type ClientTransaction = InviteClientTransaction | NonInviteClientTransaction;

/** The transaction user: the B2BUA's INVITE usage and dialogs. */
export interface TransactionUser {
  /** A new request (not ACK, not CANCEL) with its server transaction; an INVITE's 100 is sent. */
  request(req: SipRequest, tx: ServerTransaction): void;
  /** An ACK no transaction took: the ACK of a 2xx, for the dialog (§13.3.1.4, §17.2.3). */
  ack(req: SipRequest): void;
  /** A CANCEL of a pending INVITE; the layer answered it 200 already (§9.2). */
  cancel(invite: InviteServerTransaction, req: SipRequest): void;
  /** Timer H: our non-2xx final to this INVITE was never ACKed (§17.2.1). */
  noAck?(invite: InviteServerTransaction): void;
}

export interface LayerCounts {
  /** Text the parser refused. */
  malformed: number;
  /** Responses no client transaction matched (§17.1.3: dropped). */
  unmatchedResponses: number;
  /** Requests answered 400 (or dropped, for an ACK) because they could not be matched. */
  badRequests: number;
  /** Exceptions from a TU callback, or a bug below it (caught, given to onError: the layer carries on). */
  tuErrors: number;
}

export type CancelOutcome = 'sent' | 'pending' | 'too-late';

/** §17.1.3: a response matches the client transaction of its top Via branch and CSeq method. */
export function clientKey(msg: SipMessage): string | null {
  const branch = topVia(msg)?.branch;
  const cseq = cseqOf(msg);
  return branch && cseq ? `${branch}|${cseq.method}` : null;
}

/** §17.2.3: branch (with the magic cookie), sent-by, and method (ACK as INVITE). */
export function serverKey(req: SipRequest, method = req.method === 'ACK' ? 'INVITE' : req.method): string | null {
  const via = topVia(req);
  if (!via?.branch?.startsWith(MAGIC_COOKIE)) return null;
  return `${via.branch}|${via.sentBy}|${method}`;
}

/** Why a request cannot be handled by this layer (a 400's reason), or null. */
function problem(req: SipRequest): string | null {
  const via = topVia(req);
  if (!via) return 'Missing or bad Via';
  if (!via.branch) return 'Missing Via branch';
  if (!via.branch.startsWith(MAGIC_COOKIE)) return 'Via branch without z9hG4bK'; // RFC 2543 matching unsupported
  const cseq = cseqOf(req);
  if (!cseq) return 'Missing or bad CSeq';
  if (cseq.method !== req.method) return 'CSeq method does not match';
  if (!req.get('Call-ID') || !req.get('From') || !req.get('To')) return 'Missing Call-ID, From or To';
  return null;
}

export class TransactionLayer {
  readonly counts: LayerCounts = { malformed: 0, unmatchedResponses: 0, badRequests: 0, tuErrors: 0 };
  readonly #clients = new Map<string, ClientTransaction>();
  readonly #servers = new Map<string, ServerTransaction>();
  /** CANCELs waiting for a provisional response of their INVITE (§9.1). */
  readonly #pendingCancel = new Map<InviteClientTransaction, { events: ClientEvents; reason: string | undefined }>();

  constructor(
    private readonly ctx: TxContext,
    private readonly tu: TransactionUser,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  get size(): { clients: number; servers: number } {
    return { clients: this.#clients.size, servers: this.#servers.size };
  }

  /** One framed message from the connection. Never throws. */
  receive(text: string): void {
    let msg: SipMessage;
    try {
      msg = parseSipMessage(text);
    } catch {
      this.counts.malformed++;
      return;
    }
    try {
      if (msg.kind === 'response') this.#response(msg);
      else this.#request(msg);
    } catch (err) {
      this.counts.tuErrors++;
      this.onError(err);
    }
  }

  /** Start a client transaction for a request we send (not ACK: `sendAck`). */
  sendRequest(req: Built<SipRequest>, events: ClientEvents): ClientTransaction {
    const key = clientKey(req.msg);
    if (key === null || req.msg.method === 'ACK') throw new Error('sendRequest: needs a Via branch and a CSeq, and no ACK');
    const ev: ClientEvents = {
      response: (res) => {
        if (res.status < 200 && tx instanceof InviteClientTransaction) this.#flushCancel(tx);
        if (res.status >= 200 && tx instanceof InviteClientTransaction) this.#pendingCancel.delete(tx);
        events.response(res);
      },
      timeout: () => events.timeout(),
      terminated: () => {
        this.#clients.delete(key);
        if (tx instanceof InviteClientTransaction) this.#pendingCancel.delete(tx);
        events.terminated();
      },
    };
    const tx: ClientTransaction =
      req.msg.method === 'INVITE' ? new InviteClientTransaction(this.ctx, req, ev) : new NonInviteClientTransaction(this.ctx, req, ev);
    this.#clients.set(key, tx);
    tx.start();
    return tx;
  }

  /** An ACK of a 2xx is sent outside any transaction (§17.1.1.3, §13.2.2.4). */
  sendAck(ack: Built<SipRequest>): void {
    this.ctx.send(ack.text);
  }

  /**
   * CANCEL our INVITE (§9.1): sent at once after a provisional response, held until the
   * first one otherwise, too late once a final arrived (a 2xx then needs ACK and BYE).
   * `reason`: the value of a Reason header in it (RFC 3326 §2).
   */
  cancel(invite: InviteClientTransaction, events: ClientEvents, reason?: string): CancelOutcome {
    if (invite.state === 'proceeding') {
      this.#sendCancel(invite, events, reason);
      return 'sent';
    }
    if (invite.state === 'calling') {
      this.#pendingCancel.set(invite, { events, reason });
      return 'pending';
    }
    return 'too-late';
  }

  /** The connection is gone: every transaction ends (§17.1.4, §17.2.4). */
  connectionLost(): void {
    for (const tx of [...this.#clients.values(), ...this.#servers.values()]) tx.transportError();
  }

  #flushCancel(invite: InviteClientTransaction): void {
    const held = this.#pendingCancel.get(invite);
    if (!held) return;
    this.#pendingCancel.delete(invite);
    this.#sendCancel(invite, held.events, held.reason);
  }

  #sendCancel(invite: InviteClientTransaction, events: ClientEvents, reason: string | undefined): void {
    this.sendRequest(cancelFor(invite.request.msg, reason === undefined ? [] : [['Reason', reason]]), events);
    invite.cancelSent();
  }

  #response(res: SipResponse): void {
    const key = clientKey(res);
    const tx = key === null ? undefined : this.#clients.get(key);
    if (!tx) {
      this.counts.unmatchedResponses++;
      return;
    }
    tx.receiveResponse(res);
  }

  #request(req: SipRequest): void {
    const why = problem(req);
    if (why !== null) {
      this.counts.badRequests++;
      // No response to an ACK (§17.1.1.3), nor where no Via says where it goes (§18.2.2).
      if (req.method !== 'ACK' && req.get('Via') !== undefined) this.ctx.send(responseTo(req, 400, { reason: why, toTag: newTag() }).text);
      return;
    }
    const key = serverKey(req)!;
    const existing = this.#servers.get(key);
    if (existing) {
      existing.receiveRequest(req);
      // An ACK carrying its INVITE's branch after a 2xx (RFC 6026 §7.1): the dialog's.
      if (req.method === 'ACK' && existing.state === 'accepted') this.tu.ack(req);
      return;
    }
    if (req.method === 'ACK') {
      this.tu.ack(req);
      return;
    }
    const events = {
      timeout: () => {
        if (tx instanceof InviteServerTransaction) this.tu.noAck?.(tx);
      },
      terminated: () => this.#servers.delete(key),
    };
    const tx: ServerTransaction =
      req.method === 'INVITE' ? new InviteServerTransaction(this.ctx, req, events) : new NonInviteServerTransaction(this.ctx, req, events);
    this.#servers.set(key, tx);
    if (tx instanceof InviteServerTransaction) tx.start();
    if (req.method === 'CANCEL') {
      // §9.2: CANCEL matches its INVITE by branch but is a transaction of its own.
      const invite = this.#servers.get(serverKey(req, 'INVITE')!);
      if (!(invite instanceof InviteServerTransaction)) {
        tx.respond(responseTo(req, 481, { toTag: newTag() }));
        return;
      }
      tx.respond(responseTo(req, 200, { toTag: invite.toTag }));
      this.tu.cancel(invite, req);
      return;
    }
    try {
      this.tu.request(req, tx);
    } catch (err) {
      // The TU failed: answer 500 rather than leave the transaction open (§21.5.1).
      if (tx.final === null) tx.respond(responseTo(req, 500, { toTag: tx instanceof InviteServerTransaction ? tx.toTag : newTag() }));
      throw err;
    }
  }
}
