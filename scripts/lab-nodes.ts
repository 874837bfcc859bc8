/**
 * `npm run lab -- --nodes 2`: several nodes on loopback (lab/lab.ts MultiLab,
 * docs/deployment.md §12): a three-master Redis Cluster with a replica each, and per
 * node a Kamailio (kamailio-cfg/lab.cfg with PF_SHARED_SESSIONS) and a service instance
 * with its own data dir; each Kamailio's janssonrpcc names every instance, its own
 * first. Proxy mode, no relay, no live view. Run dir run/lab-nodes/. Node 1 listens on
 * LAB_SIP_PORT (5060), PF_HTTP_PORT (8080), PF_RPC_PORT (9090); node i on those + i-1.
 * The lab CLIs find node 1 in run/lab/lab.json.
 */
import { rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MultiLab, ROOT } from '../lab/lab.js';
import { LAB_POLICY } from '../lab/xdm.js';
import { removeLabState, seedDemoUsers, writeLabState } from '../lab/lab-state.js';

export async function runMultiLab(nodes: number, ports: { sip: number; http: number; rpc: number }): Promise<never> {
  const dir = join(ROOT, 'run', 'lab-nodes');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  mkdirSync(join(ROOT, 'run', 'lab'), { recursive: true });
  const range = (base: number): number[] => Array.from({ length: nodes }, (_, i) => base + i);
  // the service reads PF_RPC_PORT / PF_HTTP_PORT over its config file: each instance has its own
  delete process.env.PF_RPC_PORT;
  delete process.env.PF_HTTP_PORT;

  let lab: MultiLab | null = null;
  let stopping: Promise<never> | null = null;
  // once: a part that exits while stopping must not end the process before the rest stopped
  const stop = (code: number): Promise<never> =>
    (stopping ??= (async () => {
      console.log('\nlab: stopping...');
      removeLabState();
      await lab?.stop();
      console.log('lab: stopped');
      process.exit(code);
    })());
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));

  try {
    lab = await MultiLab.start({
      dir, nodes, sipPorts: range(ports.sip), httpPorts: range(ports.http), rpcPorts: range(ports.rpc), policy: LAB_POLICY,
    });
  } catch (err) {
    console.error(`lab: start failed: ${err instanceof Error ? err.message : String(err)}`);
    return stop(1);
  }
  const first = lab.node(0);
  // the documents go to the shared engine: seeded once, every instance has them
  for (const failed of await seedDemoUsers(first.service)) console.error(`lab: ${failed}`);
  writeLabState({ pid: process.pid, sipPort: first.kamailio.sipPort, httpPort: first.service.httpPort, rpcPort: first.service.rpcPort, msrpPort: null });

  const lines = lab.nodes.map((n) =>
    `  ${n.name}  Kamailio sip:127.0.0.1:${n.kamailio.sipPort}  service JSON-RPC ${n.service.rpcPort}, HTTP http://127.0.0.1:${n.service.httpPort}  (run/lab-nodes/${n.name}/)`,
  );
  console.log(`
CPM PF lab is up with ${nodes} nodes (proxy mode; docs/deployment.md §12)

${lines.join('\n')}
  Redis Cluster   ${lab.redis.urls.join(' ')} (3 masters, 1 replica each; run/lab-nodes/redis/)
  operator token  ${first.service.operatorToken}

  Each Kamailio asks its own instance first and fails over to the others.
  A device registered through one node is reached through any; XCAP documents and
  Session-Replaces state are shared. Try: register through node 1, call through node 2:
    LAB_SIP_PORT=${first.kamailio.sipPort} npx tsx scripts/lab/device.ts bob
    sipp -sf scripts/lab/invite.xml -key to bob -key from alice -i 127.0.0.1 -m 1 127.0.0.1:${lab.node(Math.min(1, nodes - 1)).kamailio.sipPort}

Ctrl-C stops everything.`);

  const l = lab;
  await Promise.race(l.nodes.flatMap((n) => [n.kamailio.proc.exited, n.service.proc.exited]));
  if (!stopping) console.error('lab: a part exited unexpectedly; see run/lab-nodes/*/');
  return stop(1);
}
