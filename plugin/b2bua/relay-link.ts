/**
 * The B2BUA's link to the MSRP relay: its control client (media/relay/control-client.ts),
 * connected on first use and again after the connection is lost, subscribed to the
 * relay's events each time. The relay may start after the service, or restart; a verb
 * that finds no relay rejects, and the B2BUA answers that call 503.
 */
import type { Logger } from 'pino';
import { RelayControlClient } from '../../media/relay/control-client.js';
import { WireError, WireErrorCode } from '../../wire/errors.js';
import type { AnswerParams, AnswerReply, DropParams, KeyParams, OfferParams, OfferReply, RelayEvent, SimpleReply } from '../../media/relay/types.js';
import type { RelayPort } from './b2bua.js';

export class RelayLink implements RelayPort {
  #client: Promise<RelayControlClient> | null = null;
  #closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly onEvent: (e: RelayEvent) => void,
    private readonly log: Logger,
    private readonly timeoutMs = 2000,
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

  /** Connect now (the service's start), without failing when the relay is not up yet. */
  async warm(): Promise<void> {
    await this.#get().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.#closed = true;
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
      return c;
    })().catch((err: unknown) => {
      this.#client = null;
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
      if (err instanceof WireError && err.code === WireErrorCode.Closed && this.#client !== null) {
        this.#client = null;
        this.log.warn({ host: this.host, port: this.port }, 'b2bua: relay connection lost');
      }
      throw err;
    }
  }
}
