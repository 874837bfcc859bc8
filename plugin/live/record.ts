/**
 * The live view's record of decisions (docs/lab.md "Live view"): `pf.invite` wrapped so
 * each answer (or failure) is filed under its Call-ID with the CR stage that decided.
 * The wrapped method answers exactly as before, synchronously when it did, and throws
 * what it threw; only the live view wraps it.
 */
import type { RpcMethod } from '../rpc/server.js';
import type { DecisionInput } from './store.js';

const CALL_ID = /^(?:Call-ID|i)[ \t]*:[ \t]*(.*?)[ \t]*\r?$/im;

/** A pf.invite answer (docs/jsonrpc.md): the JSON decision, or the proxy text form `proxy|<stage>|...`. */
export function readDecision(answer: unknown): Pick<DecisionInput, 'action' | 'stage' | 'code' | 'text'> {
  if (typeof answer === 'string') {
    const [action = '?', stage = null] = answer.split('|', 2);
    return { action, stage, code: null, text: answer };
  }
  if (typeof answer === 'object' && answer !== null) {
    const o = answer as Record<string, unknown>;
    return {
      action: typeof o.action === 'string' ? o.action : '?',
      stage: typeof o.stage === 'string' ? o.stage : null,
      code: typeof o.code === 'number' ? o.code : null,
      text: JSON.stringify(answer),
    };
  }
  return { action: '?', stage: null, code: null, text: String(answer) };
}

/** `methods` with pf.invite recorded through `record`; the others as they are. */
export function recordInvites(
  methods: Readonly<Record<string, RpcMethod>>,
  record: (d: DecisionInput) => void,
  now: () => number,
): Record<string, RpcMethod> {
  const inner = methods['pf.invite'];
  if (!inner) return { ...methods };
  const callIdOf = (params: unknown): string | null => {
    const msg = typeof params === 'object' && params !== null ? (params as { msg?: unknown }).msg : undefined;
    return typeof msg === 'string' ? (CALL_ID.exec(msg)?.[1] ?? null) : null;
  };
  const handler = (params: unknown, ctx: undefined): unknown => {
    const tAsk = now();
    const callId = callIdOf(params);
    const done = (answer: unknown): unknown => {
      if (callId !== null) record({ callId, tAsk, t: now(), ...readDecision(answer) });
      return answer;
    };
    const failed = (err: unknown): never => {
      if (callId !== null) record({ callId, tAsk, t: now(), action: 'error', stage: null, code: null, text: err instanceof Error ? err.message : String(err) });
      throw err;
    };
    let out: unknown;
    try {
      out = inner.handler(params, ctx);
    } catch (err) {
      return failed(err);
    }
    return out instanceof Promise ? out.then(done, failed) : done(out);
  };
  return { ...methods, 'pf.invite': { params: inner.params, handler } };
}
