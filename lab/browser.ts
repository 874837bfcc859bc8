/**
 * Debian's headless Chromium (scripts/ensure-deps.sh installs it), for the live view's
 * test and its screenshot (docs/lab.md "Live view"): the DOM after the page's scripts ran,
 * or a PNG. No npm dependency, no DevTools protocol: one process per page load.
 */
import { spawn } from 'node:child_process';
import { findBinary } from './proc.js';

/** The browser binary, or null when it is not installed. */
export function chromiumPath(): string | null {
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return findBinary(name);
    } catch {
      // next
    }
  }
  return null;
}

const BASE = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--hide-scrollbars', '--mute-audio'];

function run(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const bin = chromiumPath();
  if (bin === null) return Promise.reject(new Error('chromium is not installed (scripts/ensure-deps.sh)'));
  return new Promise((resolve, reject) => {
    const p = spawn(bin, [...BASE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`chromium did not finish within ${timeoutMs} ms: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    p.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The page's DOM once its scripts ran for `budgetMs` of virtual time. */
export async function dumpDom(url: string, budgetMs = 5000, timeoutMs = 60_000): Promise<string> {
  const r = await run(['--dump-dom', `--virtual-time-budget=${budgetMs}`, url], timeoutMs);
  if (r.code !== 0 || r.stdout === '') throw new Error(`chromium --dump-dom exited ${r.code}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** A PNG of the page at `width`x`height`. */
export async function screenshot(url: string, file: string, width = 1400, height = 900, budgetMs = 5000, timeoutMs = 60_000): Promise<void> {
  const r = await run([`--screenshot=${file}`, `--window-size=${width},${height}`, `--virtual-time-budget=${budgetMs}`, url], timeoutMs);
  if (r.code !== 0) throw new Error(`chromium --screenshot exited ${r.code}: ${r.stderr.slice(-2000)}`);
}
