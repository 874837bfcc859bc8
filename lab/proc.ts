/**
 * Child processes for the lab and the integration tests: each one runs in its own
 * process group (so Kamailio's forked children and npx/tsx wrappers go with it),
 * its output is kept for assertions and logs, and every wait is bounded.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream, accessSync, constants, type WriteStream } from 'node:fs';
import net from 'node:net';
import dgram from 'node:dgram';

/** Every live process group, so a crash of the test or lab process leaves none behind. */
const live = new Set<number>();

/** SIGKILL every process group still running (sync: usable in an 'exit' handler). */
function killAllSync(): void {
  for (const pid of live) killGroup(pid, 'SIGKILL');
  live.clear();
}

let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', killAllSync);
  // a signal ends the process without 'exit': clean up unless the host script handles it
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    if (process.listenerCount(sig) === 0) {
      process.once(sig, () => {
        killAllSync();
        process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15));
      });
    }
  }
}

export class Proc {
  readonly child: ChildProcess;
  readonly name: string;
  /** stdout + stderr so far (bounded to the last ~2 MB). */
  output = '';
  private readonly waiters = new Set<() => void>();
  private readonly log: WriteStream | null;
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined = undefined;

  constructor(name: string, cmd: string, args: readonly string[], opts: SpawnOptions & { logFile?: string } = {}) {
    this.name = name;
    this.log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : null;
    hookExit();
    this.child = spawn(cmd, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = this.child.pid;
    if (pid !== undefined) live.add(pid);
    const onData = (d: Buffer): void => {
      this.log?.write(d);
      this.output += d.toString('utf8');
      if (this.output.length > 4_000_000) this.output = this.output.slice(-2_000_000);
      for (const w of this.waiters) w();
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        if (pid !== undefined) live.delete(pid);
        this.log?.end();
        for (const w of this.waiters) w();
        resolve(this.exitCode);
      });
      this.child.on('error', (err) => {
        this.output += `\n[spawn error] ${err.message}\n`;
        this.exitCode = -1;
        for (const w of this.waiters) w();
        resolve(-1);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Resolve with the first match of `re` in the output (from `from` on); reject on exit or timeout. */
  waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = this.output.slice(from).match(re);
        if (m) {
          done();
          resolve(m);
          return true;
        }
        if (!this.running) {
          done();
          reject(new Error(`${this.name} exited (${String(this.exitCode)}) before ${re}:\n${this.tail()}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: timeout after ${timeoutMs} ms waiting for ${re}:\n${this.tail()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter = (): void => void check();
      this.waiters.add(waiter);
      check();
    });
  }

  tail(lines = 30): string {
    return this.output.split('\n').slice(-lines).join('\n');
  }

  /** SIGTERM the whole process group, SIGKILL it after `graceMs`; resolves when the leader exited. */
  async stop(graceMs = 5000): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined) return;
    if (this.running) killGroup(pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    // stragglers of the group (e.g. Kamailio children) get no grace once the leader is gone
    killGroup(pid, 'SIGKILL');
  }

  /** Kill the group at once (a crash, for fail-safe tests). */
  async kill(): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined) return;
    killGroup(pid, 'SIGKILL');
    await this.exited;
  }
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Absolute path of a system binary: PATH first, then the sbin dirs Debian installs
 * kamailio into (not on a normal user's PATH).
 */
export function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin', '/usr/bin', '/usr/local/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = `${d}/${name}`;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  throw new Error(`${name} not found (run scripts/ensure-deps.sh)`);
}

/**
 * A port free for both TCP and UDP on 127.0.0.1 (SIP listens on both), with `span - 1`
 * free UDP ports after it (sipp's media ports). Picked at random below Linux's
 * ephemeral range (32768+), where the kernel does not hand out ports to other
 * sockets between our check and the child's bind.
 */
export async function freePort(span = 1): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * (32700 - 20000 - span));
    let ok = !reserved.has(port) && (await tcpFree(port));
    for (let d = 0; ok && d < span; d++) ok = !reserved.has(port + d) && (await udpFree(port + d));
    if (ok) {
      for (let d = 0; d < span; d++) reserved.add(port + d);
      return port;
    }
  }
  throw new Error('no free port found');
}

function tcpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
const reserved = new Set<number>();

/** Poll `probe` until it returns a value (not undefined), bounded by `timeoutMs`. */
export async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timeout waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
