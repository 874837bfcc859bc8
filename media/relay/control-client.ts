// Typed client of the relay's control interface (docs/media-control.md), for the B2BUA,
// the tests and the benches: one JSON-RPC connection (wire/client.ts), one method per
// verb, replies and events checked against media/relay/control-schema.ts.
//
// A verb's own outcome is its reply (`result: 'ok' | 'error'`). A verb rejects with
// RpcError when the relay refused the request itself (-32602 bad params, -32603), with
// WireError `RPC_TIMEOUT` / `RPC_CLOSED`, or `RPC_BAD_MESSAGE` when the reply does not fit
// its schema.

import type { TSchema, Static } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { JsonRpcClient } from '../../wire/client.js';
import { WireError, WireErrorCode } from '../../wire/errors.js';
import { firstViolation } from '../../wire/dispatcher.js';
import { EVENT_METHOD, RelayEventSchema, ReplySchemas } from './control-schema.js';
import type {
  AnswerParams, AnswerReply, DeferParams, DeferredKeyParams, DeferredStateReply, DeliverParams, DeliverReply, DiscardReply, DropParams, GroupStateParams, KeyParams, OfferParams, OfferReply, Ok, PingReply, QueryReply, RelayEvent,
  SimpleReply,
} from './types.js';

type ReplyVerb = keyof typeof ReplySchemas;

const replyChecks = Object.fromEntries(
  Object.entries(ReplySchemas).map(([verb, schema]) => [verb, TypeCompiler.Compile(schema as TSchema)]),
) as { [V in ReplyVerb]: TypeCheck<(typeof ReplySchemas)[V]> };
const eventCheck = TypeCompiler.Compile(RelayEventSchema);

export interface RelayControlClientOptions {
  /** Per-request timeout (ms). Default 5000. */
  readonly timeoutMs?: number;
}

export class RelayControlClient {
  private subscribed: Promise<Ok> | null = null;

  private constructor(private readonly rpc: JsonRpcClient) {}

  static async connect(host: string, port: number, opts: RelayControlClientOptions = {}): Promise<RelayControlClient> {
    return new RelayControlClient(
      await JsonRpcClient.connect({ host, port, ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }) }),
    );
  }

  offer(p: OfferParams): Promise<OfferReply> {
    return this.call('offer', p);
  }

  answer(p: AnswerParams): Promise<AnswerReply> {
    return this.call('answer', p);
  }

  drop(p: DropParams): Promise<SimpleReply> {
    return this.call('drop', p);
  }

  delete(p: KeyParams): Promise<SimpleReply> {
    return this.call('delete', p);
  }

  query(p: KeyParams): Promise<QueryReply> {
    return this.call('query', p);
  }

  groupState(p: GroupStateParams): Promise<SimpleReply> {
    return this.call('group-state', p);
  }

  ping(): Promise<PingReply> {
    return this.call('ping', {});
  }

  /** Deferred delivery (docs/media-control.md): store the originator's messages under `deferred-id`. */
  defer(p: DeferParams): Promise<SimpleReply> {
    return this.call('defer', p);
  }

  /** A session with no originator that sends the stored items of `deferred-id` to the peer of its `answer`. */
  deliver(p: DeliverParams): Promise<DeliverReply> {
    return this.call('deliver', p);
  }

  /** Drop every stored item of `deferred-id` (CR 8.3.2.1.1: the user rejected the session). */
  discard(p: DeferredKeyParams): Promise<DiscardReply> {
    return this.call('discard', p);
  }

  deferredState(p: DeferredKeyParams): Promise<DeferredStateReply> {
    return this.call('deferred-state', p);
  }

  /**
   * Receive the relay's events on this connection (`subscribe` is sent once). Returns
   * the function that stops `onEvent`; the connection stays subscribed until closed.
   * Events that do not fit the schema are ignored.
   */
  async subscribe(onEvent: (e: RelayEvent) => void): Promise<() => void> {
    const stop = this.rpc.onNotification((m, params) => {
      if (m === EVENT_METHOD && eventCheck.Check(params)) onEvent(params);
    });
    try {
      this.subscribed ??= this.call('subscribe', {});
      await this.subscribed;
    } catch (err) {
      stop();
      this.subscribed = null;
      throw err;
    }
    return stop;
  }

  close(): Promise<void> {
    return this.rpc.close();
  }

  private async call<V extends ReplyVerb>(verb: V, params: object): Promise<Static<(typeof ReplySchemas)[V]>> {
    const reply = await this.rpc.request(verb, params);
    const check = replyChecks[verb] as TypeCheck<(typeof ReplySchemas)[V]>;
    if (!check.Check(reply)) {
      throw new WireError(WireErrorCode.BadMessage, `${verb}: reply does not fit its schema (${firstViolation(check, reply)})`);
    }
    return reply;
  }
}
