/**
 * sipp runner: scenarios live in lab/sipp/ as XML with `${NAME}` placeholders that
 * the runner fills in (header lines, codes, targets), since sipp's injection CSV cannot
 * carry `;`-laden SIP header values. Every run traces messages (-trace_msg) so tests
 * can assert on headers, and errors (-trace_err).
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Proc, freePort, findBinary, udpFree } from './proc.js';
import { parseResponse, type SipResponse } from './sip.js';

const SIPP_DIR = join(dirname(fileURLToPath(import.meta.url)), 'sipp');

export interface SippOptions {
  /** Scenario file name in lab/sipp/. */
  scenario: string;
  /** Placeholder values for `${NAME}` in the scenario. */
  vars?: Record<string, string | number>;
  /** Working dir for the filled-in scenario and the traces. */
  dir: string;
  /** Remote `host:port` (UAC); omitted for a UAS. */
  remote?: string;
  /** Local SIP port (default: a free one). */
  port?: number;
  /** Number of calls (-m); default 1. 0: no limit (a UAS stopped by the test). */
  calls?: number;
  transport?: 'u1' | 'un' | 't1';
  extraArgs?: readonly string[];
  /** Wall-clock bound for a UAC run. */
  timeoutMs?: number;
  /** Tag for the trace file names. */
  name?: string;
  /** Trace every message (-trace_msg); default true. Off under load. */
  trace?: boolean;
}

export interface SippResult {
  code: number | null;
  /** Raw text of every message sipp sent or received (from -trace_msg). */
  messages: string;
  errors: string;
  output: string;
}

let seq = 0;

function prepare(o: SippOptions): { name: string; msgFile: string; errFile: string } {
  const name = `${o.name ?? o.scenario.replace(/\.xml$/, '')}-${process.pid}-${++seq}`;
  mkdirSync(o.dir, { recursive: true });
  let xml = readFileSync(join(SIPP_DIR, o.scenario), 'utf8');
  xml = xml.replace(/\$\{([A-Z0-9_]+)\}/g, (_, k: string) => {
    const v = o.vars?.[k];
    if (v === undefined) throw new Error(`sipp scenario ${o.scenario}: no value for \${${k}}`);
    return String(v);
  });
  const scen = join(o.dir, `${name}.xml`);
  writeFileSync(scen, xml);
  const msgFile = join(o.dir, `${name}.messages.log`);
  const errFile = join(o.dir, `${name}.errors.log`);
  return { name, msgFile, errFile };
}

async function buildArgs(o: SippOptions): Promise<{ args: string[]; msgFile: string; errFile: string; port: number }> {
  const p = prepare(o);
  const port = o.port ?? (await freePort());
  const args = [
    '-sf', join(o.dir, `${p.name}.xml`),
    '-i', '127.0.0.1',
    '-p', String(port),
    '-t', o.transport ?? 'u1',
    '-nostdin',
    ...(o.trace === false ? [] : ['-trace_msg', '-message_file', p.msgFile]),
    '-trace_err', '-error_file', p.errFile,
    // sipp's own UDP control and media sockets: free ones, so runs do not collide
    '-cp', String(await freePort()),
    // sipp binds its media ports at mp .. mp+3 (audio, video, RTCP)
    '-mp', String(await freePort(4)),
    '-max_recv_loops', '1000',
    // a load generator's own socket must not drop datagrams in a burst (sipp's default
    // buffer is 64 KiB; the kernel caps this at net.core.rmem_max / wmem_max)
    '-buff_size', '4194304',
    ...(o.calls === 0 ? [] : ['-m', String(o.calls ?? 1)]),
    ...(o.extraArgs ?? []),
  ];
  if (o.remote) args.push(o.remote);
  return { args, msgFile: p.msgFile, errFile: p.errFile, port };
}

const readIf = (f: string): string => (existsSync(f) ? readFileSync(f, 'utf8') : '');


/**
 * sipp could not bind one of its ports at start-up (nothing sent yet): another test
 * process took a port freePort() had found free (ports are reserved per process only).
 */
const BIND_RACE = /Unable to bind[^\n]*errno = 98/;
const BIND_ATTEMPTS = 3;

/** Run a scenario to completion (UAC, or a UAS with a bounded -m); fresh ports on a bind race. */
export async function runSipp(o: SippOptions): Promise<SippResult> {
  for (let attempt = 1; ; attempt++) {
    const r = await runSippOnce(o);
    if (r.code === 0 || attempt >= BIND_ATTEMPTS || !BIND_RACE.test(r.errors + r.output)) return r;
  }
}

async function runSippOnce(o: SippOptions): Promise<SippResult> {
  const { args, msgFile, errFile } = await buildArgs(o);
  const proc = new Proc(`sipp ${o.scenario}`, findBinary('sipp'), args, { cwd: o.dir });
  const timeoutMs = o.timeoutMs ?? 30_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void proc.stop(1000);
  }, timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  const errors = readIf(errFile) + (timedOut ? `\n[runner] sipp killed after ${timeoutMs} ms` : '');
  // a run that had to be killed failed, whatever sipp's exit status
  return { code: timedOut ? -2 : code, messages: readIf(msgFile), errors, output: proc.output };
}

/** A long-running sipp (a UAS playing a device or the ISF). */
export class SippAgent {
  private constructor(
    readonly proc: Proc,
    readonly port: number,
    private readonly msgFile: string,
    private readonly errFile: string,
  ) {}

  static async start(o: SippOptions): Promise<SippAgent> {
    const { args, msgFile, errFile, port } = await buildArgs({ calls: 0, ...o });
    const proc = new Proc(`sipp ${o.scenario}`, findBinary('sipp'), args, { cwd: o.dir });
    const agent = new SippAgent(proc, port, msgFile, errFile);
    // sipp is ready once its SIP socket is bound: our own bind of that port fails then
    const deadline = Date.now() + 5000;
    while (await udpFree(port)) {
      if (!proc.running) throw new Error(`sipp ${o.scenario} exited: ${proc.tail()}`);
      if (Date.now() > deadline) throw new Error(`sipp ${o.scenario} did not start`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return agent;
  }

  /** Messages traced so far. */
  messages(): string {
    return readIf(this.msgFile);
  }

  errors(): string {
    return readIf(this.errFile);
  }

  async stop(): Promise<SippResult> {
    await this.proc.stop(2000);
    return { code: this.proc.exitCode ?? null, messages: this.messages(), errors: this.errors(), output: this.proc.output };
  }
}

/** Split a -trace_msg log into the SIP messages it holds. */
function tracedMessages(log: string): string[] {
  const out: string[] = [];
  // entries look like: "----...\n<date> UDP message sent (n bytes):\n\n<SIP message>\n"
  for (const part of log.split(/^-{20,}.*$/m)) {
    const m = /message (?:sent|received)[^\n]*\n+([\s\S]*)$/.exec(part);
    if (m?.[1]) out.push(m[1].replace(/\r?\n/g, '\r\n').trimEnd());
  }
  return out;
}

/** The SIP requests with this method that sipp received or sent. */
export function requestsIn(log: string, method: string): string[] {
  return tracedMessages(log).filter((m) => m.startsWith(`${method} `));
}

/** The responses traced, parsed. */
export function responsesIn(log: string): SipResponse[] {
  return tracedMessages(log)
    .filter((m) => m.startsWith('SIP/2.0 '))
    .map((m) => parseResponse(m));
}

/** Values of a header in a traced message (case-insensitive, long names only). */
export function headerValues(msg: string, name: string): string[] {
  const head = msg.split('\r\n\r\n')[0] ?? '';
  const re = new RegExp(`^${name.replace(/[-]/g, '\\-')}\\s*:\\s*(.*)$`, 'gim');
  return [...head.matchAll(re)].map((m) => (m[1] ?? '').trim());
}
