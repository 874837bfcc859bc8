// One registry of coded errors: plugin/errors.ts (the service) and wire/errors.ts (the
// shared wire layer). No code twice, and docs/jsonrpc.md "Errors" names every one.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { ErrorCodes, RpcCode } from '../../../plugin/errors.js';
import { JsonRpcCode, WireErrorCode } from '../../../wire/errors.js';

const docs = readFileSync(new URL('../../../docs/jsonrpc.md', import.meta.url), 'utf8');
const errorsSection = docs.slice(docs.indexOf('## Errors'));

t.test('string codes: each listed once, service and wire together', async (t) => {
  const service = Object.entries(ErrorCodes).filter(([group]) => group !== 'config').flatMap(([, codes]) => [...codes]);
  const all = [...service, ...Object.values(WireErrorCode)];
  t.same(all.filter((c, i) => all.indexOf(c) !== i), [], 'no duplicates');
  t.same(ErrorCodes.config, [WireErrorCode.ConfigInvalid], 'the config code is the wire loader\'s, not a copy');
  for (const c of all) t.ok(errorsSection.includes(`\`${c}\``), `docs/jsonrpc.md "Errors" names ${c}`);
});

t.test('JSON-RPC codes: distinct numbers, the standard ones unchanged, documented', async (t) => {
  const nums = Object.values(RpcCode);
  t.equal(new Set(nums).size, nums.length);
  for (const [k, v] of Object.entries(JsonRpcCode)) t.equal(RpcCode[k as keyof typeof JsonRpcCode], v, k);
  t.ok(RpcCode.DependencyFailed <= -32000 && RpcCode.DependencyFailed >= -32099, 'a service code is in the server-error range');
  for (const n of nums) t.ok(errorsSection.includes(`| ${n} |`), `docs/jsonrpc.md "Errors" has a row for ${n}`);
});
