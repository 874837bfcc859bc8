// Shared test helpers for the MSRP suites.
import { Buffer } from 'node:buffer';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Frame } from '../../../media/msrp/types.js';

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/msrp');

export function loadFixtures(): Array<{ name: string; raw: Buffer }> {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.msrp'))
    .sort()
    .map((f) => ({ name: f.replace(/\.msrp$/, ''), raw: readFileSync(join(FIXTURE_DIR, f)) }));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Snapshot-friendly view of a frame: UTF-8 bodies as text, others as base64. */
export function describeFrame(f: Frame): Record<string, unknown> {
  let body: string;
  try {
    body = `utf8:${utf8.decode(f.body)}`;
  } catch {
    body = `base64:${f.body.toString('base64')}`;
  }
  const h = f.head;
  return {
    kind: h.kind,
    transactionId: h.transactionId,
    ...(h.kind === 'request' ? { method: h.method } : { status: h.status, comment: h.comment }),
    headers: h.headers.map((x) => `${x.name}: ${x.value}`),
    hasBody: h.hasBody,
    rawHeadBytes: h.raw.length,
    bodyBytes: f.body.length,
    body,
    flag: f.flag,
  };
}
