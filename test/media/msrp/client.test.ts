// The MSRP test client (library and CLI) against itself on loopback.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { MsrpPeer, buildCpim, parseCpim } from '../../../media/client/peer.js';
import { getHeader } from '../../../media/msrp/headers.js';

t.test('originator -> listening device: chunked CPIM, 200 per chunk, success REPORT', async (t) => {
  const dev = await MsrpPeer.listen({});
  t.teardown(() => dev.close());
  const orig = await MsrpPeer.connect({ host: '127.0.0.1', port: dev.endpoint.port, remotePath: dev.localUri });
  t.teardown(() => orig.close());
  t.equal(await orig.bind(), 200, 'empty SEND binds');
  const text = 'Grüße 日本語 😀 '.repeat(20);
  const cpim = buildCpim({ from: 'sip:alice@example.com', to: 'sip:bob@example.com', body: text, dispositionNotification: ['positive-delivery'] });
  const r = await orig.sendMessage(cpim, { chunkSize: 100, successReport: true });
  t.equal(r.statuses.length, Math.ceil(cpim.length / 100));
  t.ok(r.statuses.every((s) => s === 200));
  const m = await dev.waitForMessage((x) => x.messageId === r.messageId);
  t.ok(m.body.equals(cpim), 'reassembled byte-exact');
  t.equal(m.chunks, r.statuses.length);
  const parsed = parseCpim(m.body);
  t.equal(parsed.payload.toString('utf8'), text);
  t.same(parsed.headers.find(([n]) => n === 'imdn.Disposition-Notification'), ['imdn.Disposition-Notification', 'positive-delivery']);
  const rep = await orig.waitForReport(r.messageId);
  t.equal(rep.status?.code, 200);
  t.equal(rep.byteRange, `1-${cpim.length}/${cpim.length}`);
  // Every chunk carried Byte-Range with the total and the right continuation.
  const ranges = dev.requests.filter((h) => getHeader(h, 'Message-ID') === r.messageId).map((h) => getHeader(h, 'Byte-Range'));
  t.equal(ranges[0], `1-100/${cpim.length}`);
});

t.test('device -> originator on the same connection, and until() on events', async (t) => {
  const dev = await MsrpPeer.listen({});
  t.teardown(() => dev.close());
  const orig = await MsrpPeer.connect({ host: '127.0.0.1', port: dev.endpoint.port, remotePath: dev.localUri });
  t.teardown(() => orig.close());
  await orig.bind();
  const r = await dev.sendMessage('reply', { contentType: 'text/plain' });
  t.same(r.statuses, [200]);
  await orig.until(() => orig.messages.length === 1, 3000);
  t.equal(orig.messages[0]!.body.toString(), 'reply');
  await t.rejects(orig.until(() => false, 50), /condition not met/);
});

t.test('slow-reading device still gets a large binary message intact', async (t) => {
  const dev = await MsrpPeer.listen({ readDelayMs: 5 });
  t.teardown(() => dev.close());
  const orig = await MsrpPeer.connect({ host: '127.0.0.1', port: dev.endpoint.port, remotePath: dev.localUri });
  t.teardown(() => orig.close());
  await orig.bind();
  const body = Buffer.alloc(300_000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
  const r = await orig.sendMessage(body, { contentType: 'application/octet-stream', chunkSize: 16 * 1024 });
  t.equal(r.statuses.length, 19);
  const m = await dev.waitForMessage();
  t.ok(m.body.equals(body));
});

t.test('Failure-Report partial: no 200s to wait for, message still delivered', async (t) => {
  const dev = await MsrpPeer.listen({});
  t.teardown(() => dev.close());
  const orig = await MsrpPeer.connect({ host: '127.0.0.1', port: dev.endpoint.port, remotePath: dev.localUri });
  t.teardown(() => orig.close());
  await orig.bind();
  const r = await orig.sendMessage('quiet', { failureReport: 'partial', contentType: 'text/plain', chunkSize: 2 });
  t.same(r.statuses, []);
  const m = await dev.waitForMessage();
  t.equal(m.body.toString(), 'quiet');
  // a later normal send gets its 200 first: no 200 was ever sent for the partial chunks
  await orig.sendMessage('loud', { contentType: 'text/plain' });
  t.equal(orig.responses.length, 2, 'only the bind and the last SEND were answered');
});

const CLI = fileURLToPath(new URL('../../../media/client/cli.ts', import.meta.url));

function cli(args: string[]): { lines: AsyncIterator<string>; done: Promise<number> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout });
  const done = new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
  const timer = setTimeout(() => child.kill(), 30_000);
  void done.then(() => clearTimeout(timer));
  return { lines: rl[Symbol.asyncIterator](), done };
}

t.test('CLI: listen + send, JSON lines, no bodies printed', async (t) => {
  const listener = cli(['listen', '--session-id', 'cliDev1', '--count', '1', '--timeout', '20000']);
  const first = JSON.parse((await listener.lines.next()).value as string) as { event: string; uri: string; port: number };
  t.equal(first.event, 'listening');
  t.match(first.uri, /^msrp:\/\/127\.0\.0\.1:\d+\/cliDev1;tcp$/);
  const sender = cli(['send', '--port', String(first.port), '--to-path', first.uri, '--text', 'top secret ünïcode', '--chunk-size', '8', '--success-report', '--raw']);
  const out: Array<Record<string, unknown>> = [];
  for (let l = await sender.lines.next(); !l.done; l = await sender.lines.next()) out.push(JSON.parse(l.value as string) as Record<string, unknown>);
  t.equal(await sender.done, 0);
  t.same(out.map((o) => o.event), ['connected', 'bound', 'sent', 'report']);
  t.same(out[2]!.statuses, [200, 200, 200]);
  t.equal(out[3]!.status, 200);
  const lines: string[] = [];
  for (let l = await listener.lines.next(); !l.done; l = await listener.lines.next()) lines.push(l.value as string);
  t.equal(await listener.done, 0);
  const msg = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((o) => o.event === 'message')!;
  t.equal(msg.bytes, Buffer.byteLength('top secret ünïcode'));
  t.equal(msg.sha256, createHash('sha256').update('top secret ünïcode').digest('hex'));
  t.notMatch(lines.join('\n'), /secret/, 'body never printed');
});

t.test('device refuses unknown types with 415 and oversized messages with 413', async (t) => {
  const dev = await MsrpPeer.listen({ acceptTypes: ['message/cpim', 'text/*'], maxMessageSize: 1000 });
  t.teardown(() => dev.close());
  const orig = await MsrpPeer.connect({ host: '127.0.0.1', port: dev.endpoint.port, remotePath: dev.localUri });
  t.teardown(() => orig.close());
  await orig.bind();
  t.same((await orig.sendMessage('x', { contentType: 'image/png' })).statuses, [415]);
  t.same((await orig.sendMessage('x', { contentType: 'text/plain; charset=utf-8' })).statuses, [200]);
  t.same((await orig.sendMessage(Buffer.alloc(2000), { contentType: 'message/cpim', chunkSize: 500 })).statuses, [413], 'stops at the first refused chunk');
  t.equal(dev.messages.length, 1);
});
