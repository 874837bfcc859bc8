// Control interface of the relay (docs/media-control.md), in the style of rtpengine's
// ng protocol: few verbs, one key per session (`call-id`), a `result` in every reply,
// warnings apart from errors. Carried as JSON-RPC 2.0 over netstring-framed TCP (the
// framing Kamailio's janssonrpcc uses); in-process callers use `RelayControl.call`.

import net from 'node:net';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Logger } from 'pino';
import type { MsrpRelay } from './relay.js';
import type { AnswerReply, OfferReply, QueryReply, RelayEvent, SimpleReply } from './types.js';
import { NetstringDecoder, encodeNetstring } from './netstring.js';

const CallId = Type.String({ minLength: 1, maxLength: 256 });
const Leg = Type.String({ minLength: 1, maxLength: 256 });
const Sdp = Type.String({ minLength: 1, maxLength: 65536 });

const Schemas = {
  offer: Type.Object({
    'call-id': CallId,
    sdp: Sdp,
    'served-user': Type.Optional(Type.String({ maxLength: 1024 })),
    policy: Type.Optional(Type.Union([Type.Literal('A'), Type.Literal('B'), Type.Literal('C')])),
    'direct-delivery': Type.Optional(Type.Boolean()),
    record: Type.Optional(Type.Boolean()),
    'conversation-id': Type.Optional(Type.String({ maxLength: 256 })),
    'contribution-id': Type.Optional(Type.String({ maxLength: 256 })),
  }),
  answer: Type.Object({ 'call-id': CallId, leg: Leg, sdp: Sdp }),
  drop: Type.Object({ 'call-id': CallId, leg: Leg }),
  delete: Type.Object({ 'call-id': CallId }),
  query: Type.Object({ 'call-id': CallId }),
  ping: Type.Object({}),
  subscribe: Type.Object({}),
} satisfies Record<string, TSchema>;

export type ControlMethod = keyof typeof Schemas;
type Params<M extends ControlMethod> = Static<(typeof Schemas)[M]>;

export type ControlReply = OfferReply | AnswerReply | SimpleReply | QueryReply | { result: 'ok'; sessions: number };

function isMethod(m: string): m is ControlMethod {
  return Object.hasOwn(Schemas, m);
}

/** Verb dispatch shared by in-process and network callers. */
export class RelayControl {
  constructor(private readonly relay: MsrpRelay) {}

  call(method: string, params: unknown): ControlReply {
    if (!isMethod(method) || method === 'subscribe') {
      return { result: 'error', 'error-code': 'UNKNOWN_METHOD', 'error-reason': `unknown verb ${method}` };
    }
    const schema = Schemas[method];
    if (!Value.Check(schema, params ?? {})) {
      const first = [...Value.Errors(schema, params ?? {})][0];
      return {
        result: 'error',
        'error-code': 'BAD_PARAMS',
        'error-reason': first ? `${first.path || '/'}: ${first.message}` : 'bad params',
      };
    }
    return this.dispatch(method, (params ?? {}) as Params<typeof method>);
  }

  private dispatch<M extends ControlMethod>(method: M, p: Params<M>): ControlReply {
    switch (method) {
      case 'offer':
        return this.relay.offer(p as Params<'offer'>);
      case 'answer':
        return this.relay.answer(p as Params<'answer'>);
      case 'drop':
        return this.relay.drop(p as Params<'drop'>);
      case 'delete':
        return this.relay.delete(p as Params<'delete'>);
      case 'query':
        return this.relay.query(p as Params<'query'>);
      case 'ping':
        return { result: 'ok', sessions: this.relay.sessionCount };
      default:
        return { result: 'error', 'error-code': 'UNKNOWN_METHOD', 'error-reason': `unknown verb ${method}` };
    }
  }
}

interface JsonRpcRequest {
  jsonrpc: '2.0';
  method: string;
  params?: unknown;
  id?: string | number | null;
}

function isRequest(v: unknown): v is JsonRpcRequest {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const r = v as Record<string, unknown>;
  const idOk = r.id === undefined || r.id === null || typeof r.id === 'string' || typeof r.id === 'number';
  return r.jsonrpc === '2.0' && typeof r.method === 'string' && idOk;
}

export interface ControlServerOptions {
  host?: string;
  port?: number;
  log?: Logger;
  /** Largest netstring accepted. Default 1 MiB. */
  maxMessage?: number;
}

/** JSON-RPC 2.0 over netstrings; events go to connections that called `subscribe`. */
export class ControlServer {
  private readonly server: net.Server;
  private readonly control: RelayControl;
  private readonly subscribers = new Set<net.Socket>();
  private readonly sockets = new Set<net.Socket>();
  private readonly onEvent = (e: RelayEvent): void => {
    const note = encodeNetstring(JSON.stringify({ jsonrpc: '2.0', method: 'event', params: e }));
    for (const s of this.subscribers) s.write(note);
  };

  constructor(
    private readonly relay: MsrpRelay,
    private readonly opts: ControlServerOptions = {},
  ) {
    this.control = new RelayControl(relay);
    this.server = net.createServer(s => this.accept(s));
    relay.on('event', this.onEvent);
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  async close(): Promise<void> {
    this.relay.off('event', this.onEvent);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>(resolve => this.server.close(() => resolve()));
  }

  private accept(sock: net.Socket): void {
    this.sockets.add(sock);
    const dec = new NetstringDecoder(this.opts.maxMessage ?? 1 << 20);
    sock.on('data', (data: Buffer) => {
      let msgs: Buffer[];
      try {
        msgs = dec.push(data);
      } catch (err) {
        this.opts.log?.warn({ err }, 'control framing error; closing');
        sock.destroy();
        return;
      }
      for (const m of msgs) {
        const reply = this.handle(sock, m);
        if (reply !== undefined) sock.write(encodeNetstring(JSON.stringify(reply)));
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.sockets.delete(sock);
      this.subscribers.delete(sock);
    });
  }

  /** One JSON-RPC message; undefined for notifications (no id). */
  private handle(sock: net.Socket, raw: Buffer): object | undefined {
    let v: unknown;
    try {
      v = JSON.parse(raw.toString('utf8'));
    } catch {
      return { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } };
    }
    if (!isRequest(v)) return { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request' } };
    const id = v.id;
    let result: ControlReply;
    if (v.method === 'subscribe') {
      this.subscribers.add(sock);
      result = { result: 'ok' };
    } else if (!isMethod(v.method)) {
      if (id === undefined) return undefined;
      return { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } };
    } else {
      try {
        result = this.control.call(v.method, v.params);
      } catch (err) {
        this.opts.log?.error({ err, method: v.method }, 'control verb failed');
        if (id === undefined) return undefined;
        return { jsonrpc: '2.0', id, error: { code: -32603, message: 'Internal error' } };
      }
    }
    if (id === undefined) return undefined;
    return { jsonrpc: '2.0', id, result };
  }
}
