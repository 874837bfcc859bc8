// Child process of queue.test.ts "a PF killed mid-stream": queues COUNT messages for the
// MSS (argv: queue path, port, count), says `queued` once all are on disk, then keeps
// writing until it is killed.
import { ImapMessageStore } from '../../../media/history/imap-store.js';
import { WriteQueue } from '../../../media/history/queue.js';
import { cpim } from './suite.js';

const [path, port, count] = process.argv.slice(2);
// Run without arguments (tap given the folder): nothing to do.
if (path === undefined || port === undefined || count === undefined) process.exit(0);
const q = new WriteQueue({
  path,
  target: new ImapMessageStore({ host: '127.0.0.1', port: Number(port), user: 'pf', password: 'pf-secret', tls: 'none' }),
  backoffMs: { first: 20, max: 200 },
});
const ref = { conversationId: 'crash', contributionId: 'c1' };
const all: Promise<boolean>[] = [q.ensureSessionFolder(ref, {})];
for (let i = 0; i < Number(count); i++) all.push(q.append(ref, 'message/cpim', cpim(`n${i}`, `id${i}`)));
void Promise.all(all).then(() => process.stdout.write('queued\n'));
