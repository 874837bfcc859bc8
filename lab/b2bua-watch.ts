/**
 * What B2BUA-mode tests check after every case (docs/b2bua.md "Watching it"): the
 * B2BUA's calls in progress and started (the service's /metrics) and the relay's
 * sessions (its control `ping`), and a wait until nothing is left. Also the sipp
 * devices those tests register (b2buaDevices).
 */
import type { Service } from './lab.js';
import { until } from './proc.js';
import { Device, newInstance } from './calls.js';

export interface B2buaCounts {
  readonly calls: number;
  readonly started: number;
  readonly sessions: number;
}

export async function b2buaCounts(service: Service, relay: { ping(): Promise<{ sessions: number }> }): Promise<B2buaCounts> {
  const m = await service.metrics();
  const metric = (name: string): number => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(m)?.[1] ?? NaN);
  return { calls: metric('pf_b2bua_calls'), started: metric('pf_b2bua_calls_started'), sessions: (await relay.ping()).sessions };
}

/** Wait until no B2BUA call and no relay session is left; `last` says what was seen. */
export async function waitSettled(probe: () => Promise<B2buaCounts>, timeoutMs = 15_000): Promise<{ ok: boolean; last: string }> {
  const z = await until(async () => {
    const l = await probe();
    return l.calls === 0 && l.sessions === 0 ? l : undefined;
  }, timeoutMs, 'B2BUA calls and relay sessions back to zero').catch(() => null);
  const last = await probe().then((l) => JSON.stringify(l), (e: unknown) => String(e));
  return { ok: z !== null, last };
}

/**
 * Devices registered at a B2BUA lab (setup:active, a fresh instance each): `device`
 * starts one, `all` holds every one started, for the teardown to stop.
 */
export function b2buaDevices(dir: string, sipPort: number): {
  device: (user: string, behaviour: Device['o']['behaviour']) => Promise<Device>;
  all: Device[];
} {
  const all: Device[] = [];
  const device = async (user: string, behaviour: Device['o']['behaviour']): Promise<Device> => {
    const d = await Device.start({ dir, sipPort, user, instance: newInstance(), behaviour, setup: 'active' });
    all.push(d);
    return d;
  };
  return { device, all };
}
