// Child process of queue.test.ts "a PF killed mid-stream": queues COUNT messages for the
// MSS (argv: queue path, port, count, batch, folder), one by one (batch 1) or as runs of
// BATCH (appendMany), says `queued` once all are on disk, then keeps writing until it is
// killed.
import { ImapMessageStore } from '../../../media/history/imap-store.js';
import { WriteQueue } from '../../../media/history/queue.js';
import { cpim } from './suite.js';

const [path, port, count, batch = '1', folder = 'crash'] = process.argv.slice(2);
// Run without arguments (tap given the folder): nothing to do.
if (path === undefined || port === undefined || count === undefined) process.exit(0);
const q = new WriteQueue({
  path,
  target: new ImapMessageStore({ host: '127.0.0.1', port: Number(port), user: 'pf', password: 'pf-secret', tls: 'none' }),
  backoffMs: { first: 20, max: 200 },
});
const ref = { conversationId: folder, contributionId: 'c1' };
const all: Promise<unknown>[] = [q.ensureSessionFolder(ref, {})];
const n = Number(count);
const size = Number(batch);
for (let i = 0; i < n; i += size) {
  const items = Array.from({ length: Math.min(size, n - i) }, (_, j) => ({ ref, contentType: 'message/cpim', data: cpim(`n${i + j}`, `id${i + j}`) }));
  all.push(size === 1 ? q.append(ref, items[0]!.contentType, items[0]!.data) : q.appendMany(items));
}
void Promise.all(all).then(() => process.stdout.write('queued\n'));
