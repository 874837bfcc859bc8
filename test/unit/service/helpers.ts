/** Shared helpers of the service tests: temp data dirs, a quiet logger, configs, devices. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { parseConfig } from '../../../plugin/config/load.js';
import type { Config } from '../../../plugin/config/schema.js';
import type { Device } from '../../../plugin/devices/types.js';

/** The part of a tap Test the helpers need. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

export function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'pf-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const quietLog: Logger = pino({ level: 'silent' });

/** A config on free ports (0) with `overrides` merged at the top level. */
export function testConfig(dataDir: string, overrides: Record<string, unknown> = {}): Config {
  return parseConfig({ rpcPort: 0, httpPort: 0, dataDir, logLevel: 'silent', ...overrides });
}

export function device(over: Partial<Device> & Pick<Device, 'aor' | 'contact'>): Device {
  return {
    instance: null,
    params: {},
    q: 1,
    pubGruu: null,
    received: null,
    path: [],
    callId: 'reg-1',
    cseq: 1,
    registeredAt: 0,
    expiresAt: 3_600_000,
    ...over,
  };
}
