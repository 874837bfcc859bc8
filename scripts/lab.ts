/**
 * `npm run lab`: the whole PF on loopback — the decision service, the MSRP relay (when
 * media/main.ts exists) and Kamailio with kamailio-cfg/lab.cfg (the PF plus a small
 * SIP/IP core), working dir run/lab/. Seeds the demo users' XDM documents, prints a
 * summary, and stops everything on Ctrl-C / SIGTERM (process groups; checked after).
 *
 * Ports (env): LAB_SIP_PORT 5060, PF_HTTP_PORT 8080, PF_RPC_PORT 9090, MSRP_PORT 2855,
 * LAB_HEP_PORT 9060 (the live view's HEP3 collector, UDP: docs/lab.md "Live view").
 * Mode: `npm run lab -- --mode b2bua` (or LAB_MODE=b2bua) puts the PF in the media path
 * (CR 8.3.2.1 step 8, docs/b2bua.md); proxy by default. Several nodes on one Redis
 * Cluster: `npm run lab -- --nodes 2` (scripts/lab-nodes.ts).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Lab, ROOT, Relay } from '../lab/lab.js';
import { LAB_POLICY } from '../lab/xdm.js';
import { removeLabState, seedDemoUsers, writeLabState } from '../lab/lab-state.js';

const env = (name: string, def: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    console.error(`lab: ${name} must be a port number, got "${v}"`);
    process.exit(2);
  }
  return n;
};
const ports = {
  sip: env('LAB_SIP_PORT', 5060),
  http: env('PF_HTTP_PORT', 8080),
  rpc: env('PF_RPC_PORT', 9090),
  msrp: env('MSRP_PORT', 2855),
  hep: env('LAB_HEP_PORT', 9060),
};

const { values: flags } = parseArgs({ options: { mode: { type: 'string' }, nodes: { type: 'string' } }, strict: true });
// several nodes on one Redis Cluster (scripts/lab-nodes.ts, docs/deployment.md §12)
if (flags.nodes !== undefined && flags.nodes !== '1') {
  const nodes = Number(flags.nodes);
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 3) {
    console.error(`lab: --nodes must be 1, 2 or 3, got "${flags.nodes}"`);
    process.exit(2);
  }
  await (await import('./lab-nodes.js')).runMultiLab(nodes, ports);
}
const mode = flags.mode ?? process.env.LAB_MODE ?? 'proxy';
if (mode !== 'proxy' && mode !== 'b2bua') {
  console.error(`lab: --mode must be proxy or b2bua, got "${mode}"`);
  process.exit(2);
}

const dir = join(ROOT, 'run', 'lab');
// Fresh each time: Kamailio's usrloc is in memory, so the service's devices start
// empty too (its XDM documents are seeded again below)
rmSync(join(dir, 'kamailio'), { recursive: true, force: true });
rmSync(join(dir, 'service-data'), { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

let lab: Lab | null = null;
let stopping = false;
const stop = async (code: number): Promise<void> => {
  if (stopping) return;
  stopping = true;
  console.log('\nlab: stopping...');
  removeLabState();
  const pids = lab ? [lab.kamailio.proc.pid, lab.service.proc.pid, lab.relay?.proc.pid] : [];
  await lab?.stop();
  const left = pids.filter((p): p is number => p !== undefined && groupAlive(p));
  console.log(left.length ? `lab: still running: process groups ${left.join(', ')}` : 'lab: stopped, no processes left');
  process.exit(left.length ? 1 : code);
};
process.once('SIGINT', () => void stop(0));
process.once('SIGTERM', () => void stop(0));

function groupAlive(pgid: number): boolean {
  try {
    execFileSync('pgrep', ['-g', String(pgid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

try {
  lab = await Lab.start({
    dir,
    sipPort: ports.sip,
    rpcPort: ports.rpc,
    httpPort: ports.http,
    msrpPort: ports.msrp,
    relay: true,
    mode,
    // the live view at /lab/live: Kamailio and the relay send HEP3 to the service
    live: true,
    liveHepPort: ports.hep,
    // diagnosticWarning: the lab names the stage behind a bare 480 (docs/policy.md)
    policy: LAB_POLICY,
  });
} catch (err) {
  console.error(`lab: start failed: ${err instanceof Error ? err.message : String(err)}`);
  await stop(1);
}
const l = lab!;

// demo users: alice (no documents), bob (blacklists spam@example.net and a number), carol (do not disturb)
for (const failed of await seedDemoUsers(l.service)) console.error(`lab: ${failed}`);
// the lab CLIs (scripts/lab/phone.ts, chat.ts, tour.ts) read the ports from run/lab/lab.json
writeLabState({ pid: process.pid, sipPort: l.sipPort, httpPort: l.service.httpPort, rpcPort: l.service.rpcPort, msrpPort: l.relay?.port ?? null });

const relayLine = l.relay
  ? `MSRP relay        msrp://127.0.0.1:${l.relay.port}  (control ${l.relay.controlPort})`
  : `MSRP relay        not started (${Relay.available() ? 'failed' : 'media/main.ts absent'})`;
console.log(`
CPM PF lab is up in ${mode} mode (run dir run/lab/, logs: run/lab/*.log)

  Kamailio          sip:127.0.0.1:${l.sipPort} (UDP and TCP), config kamailio-cfg/lab.cfg
  decision service  JSON-RPC 127.0.0.1:${l.service.rpcPort}, HTTP http://127.0.0.1:${l.service.httpPort}
  XCAP root         http://127.0.0.1:${l.service.httpPort}/xcap-root
  operator token    ${l.operatorToken}  (Authorization: Bearer; /users, /sessions, XCAP, the live view's data)
  live view         http://127.0.0.1:${l.service.httpPort}/lab/live#token=${l.operatorToken}  (ladders of recent calls; HEP3 on UDP ${ports.hep})
  ${relayLine}${l.mode === 'b2bua' ? `\n  B2BUA             sip:127.0.0.1:${l.b2buaSipPort};transport=tcp (chat media through the relay)` : ''}

  Users (any host part is local, e.g. sip:bob@example.net):
    alice   no documents
    bob     blacklist: sip:spam@example.net, tel:+15550000002; offline storage on
    carol   do-not-disturb on
  A bare 480 carries Warning: 399 pf.example.net "<stage>" (policy diagnosticWarning).

  Chat (each in another shell; they find the lab in run/lab/lab.json):
    npm run lab:phone -- --user bob --instance 1            # a phone of bob that answers
    npm run lab:phone -- --user bob --instance 2 --ring     # a second one that only rings
    npm run lab:chat -- --from alice --to bob               # type lines to chat, Ctrl-D hangs up
    npm run lab:tour                                        # the PF's cases, expected vs happened

  Try it (another shell):
    LAB_SIP_PORT=${l.sipPort} npx tsx scripts/lab/device.ts bob            # a device of bob that answers
    LAB_SIP_PORT=${l.sipPort} npx tsx scripts/lab/device.ts bob --ring     # a second one that only rings
    sipp -sf scripts/lab/invite.xml -key to bob -key from alice -i 127.0.0.1 -m 1 -trace_msg 127.0.0.1:${l.sipPort}
    sipp -sf scripts/lab/invite-reject.xml -key to bob -key from spam -set expect 403 -i 127.0.0.1 -m 1 -trace_msg 127.0.0.1:${l.sipPort}   # 403 "122 Function not allowed"
    curl -sS -w '%{http_code}\n' -H 'Authorization: Bearer ${l.operatorToken}' http://127.0.0.1:${l.service.httpPort}/users/bob/devices
    curl -sS -w '%{http_code}\n' -H 'Authorization: Bearer ${l.operatorToken}' http://127.0.0.1:${l.service.httpPort}/xcap-root/resource-lists/users/sip:bob@example.net/index
  More in docs/lab.md (traces: run/lab/devices/*.messages.log).

Ctrl-C stops everything.`);

// stay up; a part that dies takes the lab down
await Promise.race([l.kamailio.proc.exited, l.service.proc.exited, ...(l.relay ? [l.relay.proc.exited] : [])]);
if (!stopping) {
  console.error('lab: a part exited unexpectedly; see run/lab/*.log');
  await stop(1);
}
