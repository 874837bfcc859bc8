// The IMAP client against an MSS that misbehaves (docs/history.md "Errors"): IMAP errors,
// a dropped connection, a server that does not answer, and stored objects that are huge
// or malformed. The first three use a tiny fake IMAP server; the last uses a real Dovecot.
import t from 'tap';
import net from 'node:net';
import { ImapFlow } from 'imapflow';
import { dovecotInFreshDir } from '../../../lab/dovecot.js';
import { ImapMessageStore } from '../../../media/history/imap-store.js';
import { MssError } from '../../../media/history/mss.js';
import { cpim } from './suite.js';

type AppendReply = 'ok' | 'no' | 'no-overquota' | 'no-cannot' | 'bad' | 'drop' | 'silent';

/** Enough IMAP4rev1 for ImapMessageStore.append; APPEND answered as `reply()` says. */
async function fakeImap(reply: () => AppendReply): Promise<{ port: number; connections: () => number; appends: () => number; close(): Promise<void> }> {
  let connections = 0;
  let appends = 0;
  const socks = new Set<net.Socket>();
  const server = net.createServer(sock => {
    connections++;
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => undefined);
    sock.write('* OK fake MSS ready\r\n');
    let buf = Buffer.alloc(0);
    let literal = 0;
    let pending: { tag: string; cmd: string } | undefined;
    const answer = (tag: string, cmd: string): void => {
      const verb = cmd.split(' ')[0]!.toUpperCase();
      switch (verb) {
        case 'CAPABILITY':
          sock.write('* CAPABILITY IMAP4rev1 UIDPLUS\r\n');
          break;
        case 'LOGOUT':
          sock.end(`* BYE bye\r\n${tag} OK done\r\n`);
          return;
        case 'STATUS':
          sock.write(`* STATUS ${cmd.split(' ')[1]!} (MESSAGES 0)\r\n`);
          break;
        case 'APPEND': {
          appends++;
          const r = reply();
          if (r === 'drop') {
            sock.destroy();
            return;
          }
          if (r === 'silent') return;
          const line = {
            ok: 'OK [APPENDUID 1 7] done', no: 'NO temporary failure', 'no-overquota': 'NO [OVERQUOTA] quota exceeded',
            'no-cannot': 'NO [CANNOT] will not store that', bad: 'BAD unknown argument',
          }[r];
          sock.write(`${tag} ${line}\r\n`);
          return;
        }
        default:
          break;
      }
      sock.write(`${tag} OK done\r\n`);
    };
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (literal > 0) {
          if (buf.length < literal) return;
          buf = buf.subarray(literal);
          literal = 0;
          continue;
        }
        const eol = buf.indexOf('\r\n');
        if (eol < 0) return;
        const line = buf.toString('latin1', 0, eol);
        buf = buf.subarray(eol + 2);
        const lit = /\{(\d+)(\+?)\}$/.exec(line);
        if (!pending) {
          const sp = line.indexOf(' ');
          pending = { tag: line.slice(0, sp), cmd: line.slice(sp + 1) };
        }
        if (lit) {
          literal = Number(lit[1]);
          if (lit[2] !== '+') sock.write('+ go ahead\r\n');
          continue;
        }
        const p = pending;
        pending = undefined;
        answer(p.tag, p.cmd);
      }
    });
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port, connections: () => connections, appends: () => appends,
    close: () => new Promise<void>(r => {
      for (const s of socks) s.destroy();
      server.close(() => r());
    }),
  };
}

const ref = { conversationId: 'conv', contributionId: 'c' };
const store = (port: number, commandTimeoutMs = 500): ImapMessageStore =>
  new ImapMessageStore({ host: '127.0.0.1', port, user: 'u', password: 'p', tls: 'none', commandTimeoutMs });

async function failure(p: Promise<unknown>): Promise<MssError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof MssError) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

t.test('IMAP errors: transient or permanent', async t => {
  const cases: { reply: AppendReply; permanent: boolean; text: RegExp }[] = [
    { reply: 'no', permanent: false, text: /NO temporary failure/ },
    { reply: 'no-overquota', permanent: false, text: /NO \[OVERQUOTA\]/ },
    { reply: 'no-cannot', permanent: true, text: /NO \[CANNOT\]/ },
    { reply: 'bad', permanent: true, text: /BAD/ },
  ];
  for (const c of cases) {
    const fake = await fakeImap(() => c.reply);
    const s = store(fake.port);
    const e = await failure(s.append(ref, 'message/cpim', cpim('x')));
    t.equal(e.permanent, c.permanent, `${c.reply}: permanent ${String(c.permanent)}`);
    t.match(e.message, c.text);
    await s.close();
    await fake.close();
  }
});

t.test('a dropped connection fails the write; the next one reconnects', async t => {
  let n = 0;
  const fake = await fakeImap(() => (++n === 1 ? 'drop' : 'ok'));
  const s = store(fake.port);
  const e = await failure(s.append(ref, 'message/cpim', cpim('x')));
  t.equal(e.permanent, false, 'transient');
  t.equal(await s.append(ref, 'message/cpim', cpim('x')), 7, 'stored over a new connection');
  t.equal(fake.connections(), 2);
  await s.close();
  await fake.close();
});

t.test('a server that does not answer: timeout, then a new connection', async t => {
  let n = 0;
  const fake = await fakeImap(() => (++n === 1 ? 'silent' : 'ok'));
  const s = store(fake.port, 300);
  const started = Date.now();
  const e = await failure(s.append(ref, 'message/cpim', cpim('x')));
  t.match(e.message, /no answer within 300 ms/);
  t.equal(e.permanent, false);
  t.ok(Date.now() - started < 3000, 'bounded by the command timeout');
  t.equal(await s.append(ref, 'message/cpim', cpim('x')), 7, 'the stuck connection is not reused');
  t.equal(fake.connections(), 2);
  await s.close();
  await fake.close();
});

t.test('nothing listening: transient', async t => {
  const fake = await fakeImap(() => 'ok');
  const port = fake.port;
  await fake.close();
  const e = await failure(store(port).append(ref, 'message/cpim', cpim('x')));
  t.equal(e.permanent, false);
});

t.test('huge and malformed stored objects (Dovecot)', async t => {
  const { mss, dispose } = await dovecotInFreshDir(`${t.testdirName}-dovecot`);
  t.teardown(dispose);
  const opts = { host: mss.host, port: mss.port, user: mss.user, password: mss.password, tls: 'none' as const };
  const big = new ImapMessageStore(opts);
  const r = { conversationId: 'bad', contributionId: 'input' };
  await big.ensureSessionFolder(r, {});
  const huge = cpim('x'.repeat(64 * 1024));
  t.equal(await big.append(r, 'message/cpim', huge), 2);
  // Not our format: no header end, and a base64 body that is not base64.
  const raw = new ImapFlow({ host: mss.host, port: mss.port, secure: false, doSTARTTLS: false, auth: { user: mss.user, pass: mss.password }, logger: false });
  await raw.connect();
  const path = (await raw.list()).find(m => m.name === 'input')!.path;
  await raw.append(path, Buffer.from('Subject: cut off mid-header', 'utf8'));
  await raw.append(path, Buffer.from('Content-Type: message/cpim\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n', 'utf8'));
  await raw.logout();
  await big.append(r, 'message/cpim', cpim('after'));

  const small = new ImapMessageStore({ ...opts, maxObjectBytes: 16 * 1024 });
  const objs = await small.list(r);
  t.same(objs.map(o => [o.uid, o.problem ?? 'ok']), [[1, 'ok'], [2, 'too-large'], [3, 'malformed'], [4, 'malformed'], [5, 'ok']],
    'the list goes on past a huge or malformed object');
  t.ok(objs[4]!.data.equals(cpim('after')));
  t.ok((await big.list(r))[1]!.data.equals(huge), 'read whole under a larger limit');
  const e = await failure(small.append(r, 'message/cpim', huge));
  t.equal(e.permanent, true, 'an object over the limit is refused for good');
  await big.close();
  await small.close();
});
