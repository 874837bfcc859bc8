// Control interface of the relay (docs/media-control.md), in the style of rtpengine's
// ng protocol: few verbs, one key per session (`call-id`), a `result` in every reply,
// warnings apart from errors. Carried as JSON-RPC 2.0 over netstring-framed TCP
// (wire/server.ts, the framing Kamailio's janssonrpcc uses); in-process callers use
// `RelayControl.call`, which checks the verb and its params exactly as the server does:
// an unknown verb is JSON-RPC error -32601 and params that fail the schema -32602 on
// both paths (thrown RpcError in process, an `error` member over TCP).
// `RelayControl` has no production caller yet: it is the in-process control the B2BUA
// (plugin/b2bua) will use when it runs in the relay's process; the tests hold it to the
// same checks as the TCP server until then.

import { pino, type Logger } from 'pino';
import { Type } from '@sinclair/typebox';
import { JsonRpcDispatcher, method, type RpcMethod } from '../../wire/dispatcher.js';
import { RpcError, JsonRpcCode } from '../../wire/errors.js';
import { JsonRpcServer, type RpcConnection, type ServerContext } from '../../wire/server.js';
import type { MsrpRelay } from './relay.js';
import { EVENT_METHOD, ParamsSchemas } from './control-schema.js';
import type {
  AnswerReply, DeferredStateReply, DeliverReply, DiscardReply, OfferReply, Ok, PingReply, QueryReply, RelayEvent, SimpleReply,
} from './types.js';

export type ControlVerb = keyof typeof ParamsSchemas;

export type ControlReply = OfferReply | AnswerReply | SimpleReply | QueryReply | PingReply | DeliverReply | DiscardReply | DeferredStateReply;

/**
 * The verbs as wire methods, each typed by its params schema. All are synchronous but
 * `deliver`, `discard` and `deferred-state`, which read or write the deferred store.
 */
function verbs(relay: MsrpRelay): Record<ControlVerb, RpcMethod> {
  return {
    offer: method(ParamsSchemas.offer, (p): OfferReply => relay.offer(p)),
    answer: method(ParamsSchemas.answer, (p): AnswerReply => relay.answer(p)),
    drop: method(ParamsSchemas.drop, (p): SimpleReply => relay.drop(p)),
    delete: method(ParamsSchemas.delete, (p): SimpleReply => relay.delete(p)),
    query: method(ParamsSchemas.query, (p): QueryReply => relay.query(p)),
    'group-state': method(ParamsSchemas['group-state'], (p): SimpleReply => relay.groupState(p)),
    ping: method(ParamsSchemas.ping, (): PingReply => ({ result: 'ok', sessions: relay.sessionCount })),
    defer: method(ParamsSchemas.defer, (p): SimpleReply => relay.defer(p)),
    deliver: method(ParamsSchemas.deliver, (p): Promise<DeliverReply> => relay.deliver(p)),
    discard: method(ParamsSchemas.discard, (p): Promise<DiscardReply> => relay.discard(p)),
    'deferred-state': method(ParamsSchemas['deferred-state'], (p): Promise<DeferredStateReply> => relay.deferredState(p)),
  };
}

/** Verb dispatch for in-process callers, with the server's checks. */
export class RelayControl {
  private readonly dispatcher: JsonRpcDispatcher;

  constructor(relay: MsrpRelay) {
    this.dispatcher = new JsonRpcDispatcher(verbs(relay));
  }

  /**
   * Run a verb. Throws RpcError -32601 for an unknown verb (`subscribe` included: in
   * process, use `relay.on('event')`), -32600 for params that are not an object, and
   * -32602 (with the first violation as `data`) for params that fail the schema.
   * The deferred store's verbs (`deliver`, `discard`, `deferred-state`) answer a Promise.
   */
  call(verb: string, params?: unknown): ControlReply | Promise<ControlReply> {
    // every verb in verbs() returns a ControlReply, synchronously or as a Promise
    return this.dispatcher.invoke(verb, params) as ControlReply | Promise<ControlReply>;
  }
}

export interface ControlServerOptions {
  host?: string;
  port?: number;
  log?: Logger;
  /** Largest netstring accepted. Default 1 MiB. */
  maxMessage?: number;
  /** Peers (addresses or CIDR blocks) that may connect: the B2BUA's host. Default loopback (wire/server.ts). */
  allowedPeers?: readonly string[];
}

/** JSON-RPC 2.0 over netstrings; events go to connections that called `subscribe`. */
export class ControlServer {
  private readonly server: JsonRpcServer;
  private readonly subscribers = new Set<RpcConnection>();
  private readonly onEvent = (e: RelayEvent): void => {
    this.server.notifyEach(this.subscribers, EVENT_METHOD, e);
  };

  constructor(
    private readonly relay: MsrpRelay,
    private readonly opts: ControlServerOptions = {},
  ) {
    this.server = new JsonRpcServer({
      methods: {
        ...verbs(relay),
        // refused-connections only once some were refused: the usual reply stays as it was
        ping: method(ParamsSchemas.ping, (): PingReply => ({
          result: 'ok', sessions: relay.sessionCount, ...(this.server.refused > 0 ? { 'refused-connections': this.server.refused } : {}),
        })),
        subscribe: method(Type.Object({}), (_p, conn: ServerContext): Ok => {
          if (!conn) throw new RpcError(JsonRpcCode.MethodNotFound, 'Method not found');
          this.subscribers.add(conn);
          return { result: 'ok' };
        }),
      },
      log: opts.log ?? pino({ level: 'silent' }),
      maxFrameBytes: opts.maxMessage ?? 1 << 20,
      onClose: (conn) => this.subscribers.delete(conn),
      ...(opts.allowedPeers ? { allowedPeers: opts.allowedPeers } : {}),
    });
    relay.on('event', this.onEvent);
  }

  /** Connections closed on accept because their peer is not allowed (also in `ping`). */
  get refusedConnections(): number {
    return this.server.refused;
  }

  listen(): Promise<number> {
    return this.server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1');
  }

  async close(): Promise<void> {
    this.relay.off('event', this.onEvent);
    await this.server.close();
  }
}
