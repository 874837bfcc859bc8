/**
 * A private Dovecot (Debian's dovecot-imapd, 2.3) for the history tests and the lab: the
 * Message Storage Server of docs/history.md, unprivileged, IMAP only, on a loopback port.
 * Everything it writes (config, sockets, state, log, maildirs) is under one run folder.
 *
 * Unprivileged: Dovecot's master runs as the current user, and so do its login and internal
 * services (default_login_user / default_internal_user) and the mail processes (the static
 * userdb's uid/gid). Run as root (CI containers), the master is started as `nobody` instead:
 * Dovecot refuses login processes and mail users with uid 0.
 */
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { findBinary, freePort, Proc } from './proc.js';

export interface DovecotOptions {
  /** The run folder (created). */
  dir: string;
  /** Loopback port; default a free one. A restart passes the first run's port. */
  port?: number;
  user?: string;
  password?: string;
}

export interface Dovecot {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly dir: string;
  /** Dovecot's own log (log_path). */
  log(): string;
  /** SIGTERM Dovecot's process group; resolves once it is gone. */
  stop(): Promise<void>;
}

interface RunAs {
  uid: number;
  gid: number;
  user: string;
  group: string;
}

/** The account Dovecot runs under: ours, or `nobody` when we are root. */
function runAs(): RunAs {
  const me = userInfo();
  if (me.uid !== 0) return { uid: me.uid, gid: me.gid, user: me.username, group: groupName(me.gid) ?? me.username };
  const nobody = readFileSync('/etc/passwd', 'utf8').split('\n').map(l => l.split(':')).find(f => f[0] === 'nobody');
  const uid = Number(nobody?.[2] ?? 65534);
  const gid = Number(nobody?.[3] ?? 65534);
  return { uid, gid, user: 'nobody', group: groupName(gid) ?? 'nogroup' };
}

function groupName(gid: number): string | undefined {
  try {
    return readFileSync('/etc/group', 'utf8').split('\n').map(l => l.split(':')).find(f => f[2] === String(gid))?.[0];
  } catch {
    return undefined;
  }
}

/** dovecot.conf for one private instance (Dovecot 2.3 syntax). */
export function dovecotConf(o: { dir: string; baseDir: string; port: number; as: RunAs }): string {
  const d = o.dir;
  return `# Private test MSS (lab/dovecot.ts). Not for production: plaintext login on loopback.
base_dir = ${o.baseDir}
state_dir = ${d}/state
log_path = ${d}/dovecot.log
info_log_path = ${d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = ${o.as.user}
default_internal_user = ${o.as.user}
default_internal_group = ${o.as.group}
first_valid_uid = ${o.as.uid}
first_valid_gid = ${o.as.gid}
mail_location = maildir:${d}/mail/%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${d}/passwd
}
userdb {
  driver = static
  args = uid=${o.as.uid} gid=${o.as.gid} home=${d}/mail/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${o.port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`;
}

/** The server's first line, or undefined while it does not answer. */
function greeting(port: number): Promise<string | undefined> {
  return new Promise(resolve => {
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => done(undefined), 1000);
    const done = (v: string | undefined): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    let buf = '';
    s.on('data', d => {
      buf += d.toString('latin1');
      const eol = buf.indexOf('\r\n');
      if (eol >= 0) done(buf.slice(0, eol));
    });
    s.on('error', () => done(undefined));
  });
}

/** Start Dovecot; resolves once it greets on its port. */
export async function startDovecot(o: DovecotOptions): Promise<Dovecot> {
  const dir = o.dir;
  const user = o.user ?? 'pf';
  const password = o.password ?? 'pf-secret';
  const port = o.port ?? (await freePort());
  const as = runAs();
  for (const sub of ['state', 'mail']) mkdirSync(join(dir, sub), { recursive: true });
  // base_dir holds Unix sockets, whose paths may not pass 107 bytes (unix(7)); a run folder
  // deep in a test tree is too long, so the sockets go to a short temporary folder, linked
  // from the run folder as `base`, and removed on stop.
  let baseDir = join(dir, 'base');
  let tempBase: string | undefined;
  if (baseDir.length > 60) {
    tempBase = mkdtempSync(join(tmpdir(), 'dovecot-'));
    baseDir = tempBase;
    rmSync(join(dir, 'base'), { force: true, recursive: true });
    symlinkSync(tempBase, join(dir, 'base'));
  } else {
    mkdirSync(baseDir, { recursive: true });
  }
  writeFileSync(join(dir, 'passwd'), `${user}:{PLAIN}${password}\n`, { mode: 0o600 });
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, dovecotConf({ dir, baseDir, port, as }));
  if (userInfo().uid === 0) {
    for (const p of [dir, conf, join(dir, 'passwd'), baseDir, join(dir, 'state'), join(dir, 'mail')]) {
      chownSync(p, as.uid, as.gid);
    }
  }
  const proc = new Proc('dovecot', findBinary('dovecot'), ['-F', '-c', conf], { uid: as.uid, gid: as.gid, cwd: dir });
  const stop = async (): Promise<void> => {
    await proc.stop();
    if (tempBase) rmSync(tempBase, { force: true, recursive: true });
  };
  const logFile = join(dir, 'dovecot.log');
  const log = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  // Ready when it greets (bounded; a Dovecot that exits fails at once).
  const deadline = Date.now() + 10_000;
  for (;;) {
    const g = proc.running ? await greeting(port) : undefined;
    if (g?.startsWith('* OK')) break;
    if (!proc.running || Date.now() > deadline) {
      await stop();
      throw new Error(`dovecot did not start on ${port} (${proc.running ? 'no greeting' : 'exited'}):\n${proc.tail()}\n${log()}`);
    }
    await new Promise(r => setTimeout(r, 50));
  }
  return { host: '127.0.0.1', port, user, password, dir, log, stop };
}

/**
 * A private Dovecot in `dir`, emptied first (a test's own folder, left over from an earlier
 * run); `dispose` stops it and removes `dir`.
 */
export async function dovecotInFreshDir(dir: string): Promise<{ mss: Dovecot; dispose: () => Promise<void> }> {
  rmSync(dir, { recursive: true, force: true });
  const mss = await startDovecot({ dir });
  return {
    mss,
    dispose: async () => {
      await mss.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
