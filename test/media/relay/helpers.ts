// Shared set-up for relay integration tests: a real relay on a free loopback port and
// MsrpPeer test clients playing the originator and the served user's devices.
import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { MsrpPeer } from '../../../media/client/peer.js';
import { MsrpRelay, type RelayOptions } from '../../../media/relay/relay.js';
import type { OfferParams, RelayEvent } from '../../../media/relay/types.js';

export function sdpFor(path: string, setup = 'active'): string {
  return [
    'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
    'm=message 9 TCP/MSRP *',
    `a=path:${path}`,
    'a=accept-types:message/cpim application/im-iscomposing+xml',
    'a=accept-wrapped-types:text/plain message/imdn+xml',
    `a=setup:${setup}`, '',
  ].join('\r\n');
}

export interface World {
  relay: MsrpRelay;
  port: number;
  events: RelayEvent[];
  origin: MsrpPeer;
  devices: MsrpPeer[];
  callId: string;
  close(): Promise<void>;
  waitEvent(match: (e: RelayEvent) => boolean, ms?: number): Promise<RelayEvent>;
}

let n = 0;

export interface RelayWithEvents {
  relay: MsrpRelay;
  port: number;
  /** Every event so far, in order. */
  events: RelayEvent[];
  /** The first event (past or coming) that matches, or a rejection after `ms`. */
  waitEvent(match: (e: RelayEvent) => boolean, ms?: number): Promise<RelayEvent>;
}

/** A relay listening on a free loopback port, its events recorded and awaitable. */
export async function listenWithEvents(relayOpts: RelayOptions = {}): Promise<RelayWithEvents> {
  const relay = new MsrpRelay({ port: 0, ...relayOpts });
  const port = await relay.listen();
  const events: RelayEvent[] = [];
  const waiters: Array<{ match: (e: RelayEvent) => boolean; resolve: (e: RelayEvent) => void }> = [];
  relay.on('event', e => {
    events.push(e);
    for (const w of [...waiters]) {
      if (w.match(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  });
  const waitEvent = (match: (e: RelayEvent) => boolean, ms = 5000): Promise<RelayEvent> => {
    const hit = events.find(match);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('event timeout')), ms);
      waiters.push({ match, resolve: e => { clearTimeout(timer); resolve(e); } });
    });
  };
  return { relay, port, events, waitEvent };
}

/** A self-signed EC certificate for 127.0.0.1 in `dir` (openssl), for the TLS tests. */
export function makeCert(dir: string, name: string): { key: Buffer; cert: Buffer; keyFile: string; certFile: string } {
  const keyFile = join(dir, `${name}-key.pem`);
  const certFile = join(dir, `${name}-cert.pem`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  return { key: readFileSync(keyFile), cert: readFileSync(certFile), keyFile, certFile };
}

/** Relay + originator + `count` devices, all bound; session created through the control verbs. */
export async function world(
  count: number,
  offer: Omit<OfferParams, 'call-id' | 'sdp'> = {},
  relayOpts: RelayOptions = {},
  deviceOpts: Array<{ readDelayMs?: number }> = [],
): Promise<World> {
  const { relay, port, events, waitEvent } = await listenWithEvents(relayOpts);
  const callId = `call-${++n}-${process.pid}`;
  // The originator connects first so that its a=path carries its real port.
  const origin = await MsrpPeer.connect({ host: '127.0.0.1', port, remotePath: 'msrp://127.0.0.1:1/x;tcp' });
  const o = relay.offer({ 'call-id': callId, sdp: sdpFor(origin.localUri), ...offer });
  if (o.result !== 'ok') throw new Error(o['error-reason']);
  origin.remotePath = o['relay-uri'];
  if ((await origin.bind()) !== 200) throw new Error('originator bind failed');
  const devices: MsrpPeer[] = [];
  for (let i = 0; i < count; i++) {
    const d = await MsrpPeer.connect({
      host: '127.0.0.1', port, remotePath: o['device-relay-uri'],
      ...(deviceOpts[i]?.readDelayMs ? { readDelayMs: deviceOpts[i]!.readDelayMs! } : {}),
      maxMessageSize: 32 * 1024 * 1024,
    });
    const a = relay.answer({ 'call-id': callId, leg: `dev${i + 1}`, sdp: sdpFor(d.localUri) });
    if (a.result !== 'ok') throw new Error(a['error-reason']);
    if ((await d.bind()) !== 200) throw new Error('device bind failed');
    devices.push(d);
  }
  return {
    relay, port, events, origin, devices, callId, waitEvent,
    async close() {
      await Promise.all([origin, ...devices].map(p => p.close().catch(() => undefined)));
      await relay.close();
    },
  };
}

/** Byte-Range header values of every SEND chunk a peer received for a message. */
export function rangesOf(peer: MsrpPeer, messageId: string): string[] {
  const out: string[] = [];
  for (const h of peer.requests) {
    if (h.kind !== 'request' || h.method !== 'SEND') continue;
    const id = h.headers.find(x => x.name.toLowerCase() === 'message-id')?.value;
    if (id !== messageId) continue;
    out.push(h.headers.find(x => x.name.toLowerCase() === 'byte-range')?.value ?? '');
  }
  return out;
}

/** Wait for a condition the test client exposes only as state, re-checked every 5 ms, bounded. */
export async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise(resolve => setTimeout(resolve, 5));
  }
}

/** Starts `media/main.ts` as its own process and resolves with it and its `relay ready` line. */
export async function startRelayProcess<R extends { msrpPort: number }>(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ child: ChildProcessByStdio<null, Readable, null>; ready: R }> {
  const main = fileURLToPath(new URL('../../../media/main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env,
  });
  const ready = await new Promise<R>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no ready line')), 20000);
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? ''; // only whole lines are parsed
      for (const line of lines) {
        if (!line.includes('"relay ready"')) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line) as R);
      }
    });
  });
  return { child, ready };
}
