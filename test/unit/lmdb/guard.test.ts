// Which unhandled rejections the LMDB commit guard takes (lib/lmdb-commit-guard.ts): only
// lmdb-js's own commit failures, raised in its writer. Case table over made-up errors with
// the stacks lmdb-js gives them (as seen in test/unit/lmdb/commit-failure.test.ts).
import t from 'tap';
import { isLmdbCommitFailure } from '../../../lib/lmdb-commit-guard.js';

const WRITER = 'file:///srv/pf/node_modules/lmdb/write.js';
function made(message: string, firstFrame: string, extra: Record<string, unknown> = {}): Error {
  const e = Object.assign(new Error(message), extra);
  e.stack = `Error: ${message}\n    at ${firstFrame}\n    at processTicksAndRejections (node:internal/process/task_queues:95:5)`;
  return e;
}

const cases: [string, unknown, boolean][] = [
  ['the wrapper of a refused commit', made('Commit failed (see commitError for details)', `rejectCommit (${WRITER}:612:17)`, { commitError: Promise.resolve() }), true],
  ['its cause: an LMDB error', made('MDB_BAD_TXN: Transaction must abort, has a child, or is invalid', `Function.<anonymous> (${WRITER}:516:7)`, { code: -30782 }), true],
  ['its cause: a system error (EIO)', made('Input/output error', `Function.<anonymous> (${WRITER}:516:7)`, { code: 5 }), true],
  ['a Windows path', made('Commit failed (see commitError for details)', 'rejectCommit (C:\\pf\\node_modules\\lmdb\\write.js:612:17)', { commitError: Promise.resolve() }), true],
  ['raised in write.js but not a commit failure (a write after close)', made('Database is closed', `Object.put (${WRITER}:1070:12)`), false],
  ['a commit-like error raised in our code', made('Commit failed (see commitError for details)', 'LmdbCallStore.put (file:///srv/pf/plugin/b2bua/store.ts:300:5)', { commitError: Promise.resolve() }), false],
  ['lmdb-js read.js, not the writer', made('MDB_NOTFOUND', `getBinaryFast (file:///srv/pf/node_modules/lmdb/read.js:80:3)`, { code: -30798 }), false],
  ['another package named like it', made('x', 'f (file:///srv/pf/node_modules/not-lmdb/write.js:1:1)', { code: 1 }), false],
  ['no stack', Object.assign(new Error('Commit failed'), { stack: undefined, commitError: 1 }), false],
  ['not an Error', { message: 'Commit failed', stack: `at rejectCommit (${WRITER}:612:17)` }, false],
  ['a string', 'Commit failed', false],
];

for (const [name, reason, taken] of cases) {
  t.equal(isLmdbCommitFailure(reason), taken, `${name}: ${taken ? 'taken' : 'thrown again'}`);
}
