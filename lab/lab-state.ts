/**
 * Where a running `npm run lab` listens: scripts/lab.ts writes run/lab/lab.json when the
 * lab is up and removes it on stop, so the lab CLIs (scripts/lab/phone.ts, chat.ts,
 * tour.ts) find its ports without flags. The demo users' documents live here too, for
 * scripts/lab.ts and the tour's test.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, type Service } from './lab.js';
import { blacklistDoc, policyDoc, RESOURCE_LISTS, AUTH_POLICY } from './xdm.js';

export interface LabState {
  readonly pid: number;
  readonly sipPort: number;
  readonly httpPort: number;
  readonly rpcPort: number;
  readonly msrpPort: number | null;
}

export const LAB_STATE_FILE = join(ROOT, 'run', 'lab', 'lab.json');

export function writeLabState(s: LabState, file = LAB_STATE_FILE): void {
  writeFileSync(file, `${JSON.stringify(s, null, 2)}\n`);
}

export function removeLabState(file = LAB_STATE_FILE): void {
  rmSync(file, { force: true });
}

const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 65536;

/** The state of a lab whose process is still alive, else null. */
export function readLabState(file = LAB_STATE_FILE): LabState | null {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.pid !== 'number' || !isPort(o.sipPort) || !isPort(o.httpPort) || !isPort(o.rpcPort)) return null;
  try {
    process.kill(o.pid, 0);
  } catch {
    return null;
  }
  return { pid: o.pid, sipPort: o.sipPort, httpPort: o.httpPort, rpcPort: o.rpcPort, msrpPort: isPort(o.msrpPort) ? o.msrpPort : null };
}

const envPort = (name: string): number | undefined => {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!isPort(n)) throw new Error(`${name} must be a port number, got "${v}"`);
  return n;
};

/** The lab's SIP and HTTP ports for a CLI: LAB_SIP_PORT / PF_HTTP_PORT, else the running lab's, else the defaults. */
export function labPorts(): { sipPort: number; httpPort: number; from: string } {
  const state = readLabState();
  const sip = envPort('LAB_SIP_PORT');
  const http = envPort('PF_HTTP_PORT');
  return {
    sipPort: sip ?? state?.sipPort ?? 5060,
    httpPort: http ?? state?.httpPort ?? 8080,
    from: sip !== undefined ? 'LAB_SIP_PORT' : state ? 'run/lab/lab.json' : 'the defaults',
  };
}

/** The demo users' XDM documents (docs/lab.md "Demo users"): auid, user, document, content type. */
export const DEMO_DOCS: readonly (readonly [string, string, string, string])[] = [
  ['resource-lists', 'sip:alice@example.net', blacklistDoc([]), RESOURCE_LISTS],
  ['resource-lists', 'sip:bob@example.net', blacklistDoc(['sip:spam@example.net', 'tel:+15550000002']), RESOURCE_LISTS],
  ['org.openmobilealliance.access-rules', 'sip:bob@example.net', policyDoc({ dnd: false, offlineStorage: true }), AUTH_POLICY],
  ['org.openmobilealliance.access-rules', 'sip:carol@example.net', policyDoc({ dnd: true }), AUTH_POLICY],
];

/** PUT the demo documents; resolves with a line per failed PUT. */
export async function seedDemoUsers(service: Service): Promise<string[]> {
  const failed: string[] = [];
  for (const [auid, user, xml, type] of DEMO_DOCS) {
    const status = await service.putXcap(auid, user, xml, type);
    if (status !== 200 && status !== 201) failed.push(`XCAP PUT ${auid} ${user} -> ${status}`);
  }
  return failed;
}
