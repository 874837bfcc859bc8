/**
 * The B2BUA's link to the MSRP relay: its control client (media/relay/control-client.ts),
 * connected on first use and again after the connection is lost, subscribed to the
 * relay's events each time. The relay may start after the service, or restart; a verb
 * that finds no relay rejects, and the B2BUA answers that call 503.
 *
 * Every `pingMs` it pings the relay, or tries to connect when it has no connection: a
 * connection found closed (by a ping or a verb) is reported once through `onLost`, and
 * the B2BUA then asks the relay (`query`, which connects again) which of its sessions
 * are left (docs/b2bua.md "Faults"). A ping that only times out (a busy relay) is not a
 * loss. `up` says whether the last attempt found the relay (new invitations get the
 * fail-safe while it is down).
 */
import type { Logger } from 'pino';
import { RelayControlClient } from '../../media/relay/control-client.js';
import { WireError, WireErrorCode } from '../../wire/errors.js';
import type {
  AnswerParams, AnswerReply, DeferParams, DeferredKeyParams, DeferredStateReply, DeliverParams, DeliverReply, DiscardReply, DropParams,
  GroupStateParams, KeyParams, OfferParams, OfferReply, QueryReply, RelayEvent, SimpleReply,
} from '../../media/relay/types.js';
import type { RelayPort } from './b2bua.js';

export class RelayLink implements RelayPort {
  #client: Promise<RelayControlClient> | null = null;
  #closed = false;
  #pinger: NodeJS.Timeout | null = null;
  #up = false;
  /** Called once per lost connection (not when it never connected). */
  onLost: () => void = () => {};

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly onEvent: (e: RelayEvent) => void,
    private readonly log: Logger,
    private readonly timeoutMs = 2000,
    private readonly pingMs = 1000,
  ) {}

  offer(p: OfferParams): Promise<OfferReply> {
    return this.#with((c) => c.offer(p));
  }
  answer(p: AnswerParams): Promise<AnswerReply> {
    return this.#with((c) => c.answer(p));
  }
  drop(p: DropParams): Promise<SimpleReply> {
    return this.#with((c) => c.drop(p));
  }
  delete(p: KeyParams): Promise<SimpleReply> {
    return this.#with((c) => c.delete(p));
  }
  query(p: KeyParams): Promise<QueryReply> {
    return this.#with((c) => c.query(p));
  }
  groupState(p: GroupStateParams): Promise<SimpleReply> {
    return this.#with((c) => c.groupState(p));
  }
  // deferred delivery (docs/media-control.md "Deferred delivery", docs/deferred.md)
  defer(p: DeferParams): Promise<SimpleReply> {
    return this.#with((c) => c.defer(p));
  }
  deliver(p: DeliverParams): Promise<DeliverReply> {
    return this.#with((c) => c.deliver(p));
  }
  discard(p: DeferredKeyParams): Promise<DiscardReply> {
    return this.#with((c) => c.discard(p));
  }
  deferredState(p: DeferredKeyParams): Promise<DeferredStateReply> {
    return this.#with((c) => c.deferredState(p));
  }

  /** The relay answered the last connection attempt, and that connection is not lost. */
  get up(): boolean {
    return this.#up;
  }

  /** Connect now (the service's start), without failing when the relay is not up yet; then keep watching it. */
  async warm(): Promise<void> {
    await this.#get().catch(() => undefined);
    this.#startPing();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#pinger) clearInterval(this.#pinger);
    this.#pinger = null;
    const c = this.#client;
    this.#client = null;
    if (c) await (await c.catch(() => null))?.close();
  }

  #get(): Promise<RelayControlClient> {
    if (this.#closed) return Promise.reject(new WireError(WireErrorCode.Closed, 'relay link closed'));
    this.#client ??= (async () => {
      const c = await RelayControlClient.connect(this.host, this.port, { timeoutMs: this.timeoutMs });
      await c.subscribe(this.onEvent);
      this.log.info({ host: this.host, port: this.port }, 'b2bua: relay connected');
      this.#up = true;
      return c;
    })().catch((err: unknown) => {
      this.#client = null;
      this.#up = false;
      throw err;
    });
    return this.#client;
  }

  async #with<T>(f: (c: RelayControlClient) => Promise<T>): Promise<T> {
    const c = await this.#get();
    try {
      return await f(c);
    } catch (err) {
      // the connection is gone: the next verb connects again
      if (err instanceof WireError && err.code === WireErrorCode.Closed) this.#lost(c);
      throw err;
    }
  }

  #startPing(): void {
    if (this.#pinger || this.#closed) return;
    this.#pinger = setInterval(() => {
      const p = this.#client;
      if (!p) {
        // no connection: try again (the relay restarted, or is not up yet)
        void this.#get().catch(() => undefined);
        return;
      }
      void p.then(
        (c) =>
          c.ping().catch((err: unknown) => {
            if (err instanceof WireError && err.code === WireErrorCode.Closed) this.#lost(c);
          }),
        () => undefined,
      );
    }, this.pingMs);
    this.#pinger.unref();
  }

  /** `c`'s connection is gone: forget it (the next verb connects again) and say so once. */
  #lost(c: RelayControlClient): void {
    const current = this.#client;
    if (current === null || this.#closed) return;
    void current.then((cur) => {
      if (cur !== c || this.#client !== current) return;
      this.#client = null;
      this.#up = false;
      this.log.warn({ host: this.host, port: this.port }, 'b2bua: relay connection lost');
      this.onLost();
    }, () => undefined);
  }
}
