// MSRP test client CLI. Prints one JSON object per line; never prints chat bodies
// (only sizes and a SHA-256).
//
//   npx tsx media/client/cli.ts listen [--port 0] [--session-id ID] [--count N] [--read-delay MS]
//   npx tsx media/client/cli.ts device --host H --port P --to-path URI... [--session-id ID] [--count N] [--read-delay MS]
//   npx tsx media/client/cli.ts send   --host H --port P --to-path URI... --text T | --file F
//                                     [--chunk-size N] [--from sip:a] [--to sip:b] [--success-report] [--repeat N]
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { MsrpPeer, buildCpim, type ReceivedMessage } from './peer.js';

const USAGE = `usage:
  cli.ts listen [--host 127.0.0.1] [--port 0] [--session-id ID] [--count N] [--read-delay MS] [--timeout MS]
  cli.ts device --host H --port P --to-path "URI [URI...]" [--session-id ID] [--count N] [--read-delay MS] [--timeout MS]
  cli.ts send --host H --port P --to-path "URI [URI...]" (--text T | --file F) [--chunk-size N]
              [--from sip:a@x] [--to sip:b@y] [--raw] [--success-report] [--repeat N] [--timeout MS]`;

function out(obj: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function describe(m: ReceivedMessage): Record<string, unknown> {
  return {
    event: 'message',
    messageId: m.messageId,
    contentType: m.contentType,
    bytes: m.body.length,
    chunks: m.chunks,
    sha256: createHash('sha256').update(m.body).digest('hex'),
  };
}

function int(v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`not a non-negative integer: ${v}`);
  return n;
}

async function receive(peer: MsrpPeer, count: number, timeoutMs: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const m = await peer.waitForMessage((x) => peer.messages.indexOf(x) === i, timeoutMs);
    out(describe(m));
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      'session-id': { type: 'string' },
      'to-path': { type: 'string' },
      count: { type: 'string' },
      'read-delay': { type: 'string' },
      timeout: { type: 'string' },
      text: { type: 'string' },
      file: { type: 'string' },
      'chunk-size': { type: 'string' },
      from: { type: 'string', default: 'sip:alice@example.com' },
      to: { type: 'string', default: 'sip:bob@example.com' },
      raw: { type: 'boolean', default: false },
      'success-report': { type: 'boolean', default: false },
      repeat: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const cmd = positionals[0];
  if (values.help || cmd === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const timeoutMs = int(values.timeout, 10_000);
  const readDelayMs = int(values['read-delay'], 0);
  const common = { readDelayMs, ...(values['session-id'] ? { sessionId: values['session-id'] } : {}) };

  if (cmd === 'listen') {
    const peer = await MsrpPeer.listen({ host: values.host, port: int(values.port, 0), ...common });
    out({ event: 'listening', uri: peer.localUri, port: peer.endpoint.port });
    await peer.waitForConnection(timeoutMs);
    out({ event: 'connected' });
    await receive(peer, int(values.count, 1), timeoutMs);
    await peer.close();
    return 0;
  }

  if (values.port === undefined || values['to-path'] === undefined) throw new Error('--port and --to-path are required');
  const peer = await MsrpPeer.connect({ host: values.host, port: int(values.port, 0), remotePath: values['to-path'], ...common });
  out({ event: 'connected', uri: peer.localUri });
  try {
    const bound = await peer.bind(timeoutMs);
    out({ event: 'bound', status: bound });
    if (bound !== 200) return 1;
    if (cmd === 'device') {
      await receive(peer, int(values.count, 1), timeoutMs);
      return 0;
    }
    if (cmd === 'send') {
      const payload = values.file !== undefined ? readFileSync(values.file) : Buffer.from(values.text ?? '', 'utf8');
      const body = values.raw ? payload : buildCpim({ from: values.from, to: values.to, body: payload });
      for (let i = 0; i < int(values.repeat, 1); i++) {
        const r = await peer.sendMessage(body, {
          contentType: values.raw ? 'text/plain' : 'message/cpim',
          chunkSize: int(values['chunk-size'], 2048),
          successReport: values['success-report'],
          timeoutMs,
        });
        out({ event: 'sent', messageId: r.messageId, bytes: body.length, statuses: r.statuses });
        if (values['success-report'] && r.statuses.every((s) => s === 200)) {
          const rep = await peer.waitForReport(r.messageId, timeoutMs);
          out({ event: 'report', messageId: rep.messageId, status: rep.status?.code, byteRange: rep.byteRange });
        }
      }
      return 0;
    }
    throw new Error(`unknown command ${cmd}`);
  } finally {
    await peer.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    out({ event: 'error', message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
