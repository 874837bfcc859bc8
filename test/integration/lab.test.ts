/**
 * On real Kamailio, the lab as `npm run lab` runs it (docs/lab.md): OPTIONS and MESSAGE
 * forked by the lab core with RFC 3841 matching (480 when nobody is there), the
 * diagnostic Warning that names the stage behind a bare 480 (policy.diagnosticWarning),
 * the caller scenarios of scripts/lab/ failing visibly on an unexpected outcome, and the
 * device CLI unregistering on Ctrl-C.
 */
import t from 'tap';
import { spawn, execFile } from 'node:child_process';
import { join } from 'node:path';
import { Lab, ROOT, runDir } from '../../lab/lab.js';
import { Device, inviteExpecting, newInstance, nonInvite } from '../../lab/calls.js';
import { sipUdpRequest, token } from '../../lab/sip.js';
import { sipMessage } from '../../lab/sip-fixtures.js';
import { blacklistDoc, policyDoc, RESOURCE_LISTS, AUTH_POLICY, LAB_POLICY } from '../../lab/xdm.js';
import { findBinary, freePort, until } from '../../lab/proc.js';

const dir = runDir('it-lab');
const lab = await Lab.start({ dir, policy: LAB_POLICY });
const devices: Device[] = [];
t.teardown(async () => {
  await Promise.all(devices.map((d) => d.stop()));
  await lab.stop();
});
const sip = lab.sipPort;
const device = async (user: string, behaviour: Device['o']['behaviour']): Promise<Device> => {
  const d = await Device.start({ dir, sipPort: sip, user, instance: newInstance(), behaviour });
  devices.push(d);
  return d;
};
const put = async (auid: string, user: string, xml: string, type: string): Promise<void> => {
  const status = await lab.service.putXcap(auid, user, xml, type);
  if (status !== 200 && status !== 201) throw new Error(`XCAP PUT ${auid} for ${user}: ${status}`);
};
// pat: two devices that answer OPTIONS and MESSAGE; bob: one that answers INVITEs and a
// blacklist; carol: do-not-disturb, one device
const P1 = await device('pat', { kind: 'pager' });
const P2 = await device('pat', { kind: 'pager' });
await device('bob', { kind: 'answer' });
await put('resource-lists', 'sip:bob@example.net', blacklistDoc(['sip:spam@example.net']), RESOURCE_LISTS);
await device('carol', { kind: 'answer' });
await put('org.openmobilealliance.access-rules', 'sip:carol@example.net', policyDoc({ dnd: true }), AUTH_POLICY);

t.test('OPTIONS and MESSAGE reach every registered device; nobody there: 480', async (t) => {
  for (const method of ['OPTIONS', 'MESSAGE'] as const) {
    const r = await nonInvite({ sipPort: sip, method, to: 'pat' });
    t.equal(r.status, 200, `${method} to pat`);
    await until(async () => (P1.requests(method).length > 0 && P2.requests(method).length > 0 ? true : undefined), 5000, `${method} at both devices`);
    t.pass(`${method} forked to both devices`);
    const none = await nonInvite({ sipPort: sip, method, to: 'nobody' });
    t.equal(none.status, 480, `${method} to a user without devices`);
    t.equal(none.header('warning'), undefined, 'no "core unavailable"');
  }
  t.equal(P1.requests('INVITE').length + P2.requests('INVITE').length, 0, 'no INVITE');
});

t.test('another out-of-dialog request: 405 with Allow', async (t) => {
  const r = await sipUdpRequest(sip, (lp) =>
    sipMessage('SUBSCRIBE sip:pat@example.net SIP/2.0', [
      `Via: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bK${token()};rport`,
      `From: <sip:alice@example.net>;tag=${token(4)}`,
      'To: <sip:pat@example.net>',
      `Call-ID: ${token()}`,
      'CSeq: 1 SUBSCRIBE',
      'Max-Forwards: 70',
      'Event: presence',
      `Contact: <sip:alice@127.0.0.1:${lp}>`,
    ]),
  );
  t.equal(r.final.status, 405);
  t.match(r.final.header('allow'), /OPTIONS, MESSAGE/);
});

t.test('policy.diagnosticWarning: the stage behind a bare 480', async (t) => {
  const dnd = await inviteExpecting({ dir, sipPort: sip, to: 'carol' }, 480);
  t.equal(dnd.code, 0, 'sipp got the 480');
  t.equal(dnd.final?.header('warning'), '399 pf.example.net "do-not-disturb"');
  const none = await inviteExpecting({ dir, sipPort: sip, to: 'nobody' }, 480);
  t.equal(none.final?.header('warning'), '399 pf.example.net "no-suitable-device"');
  // a rejection with its own Warning keeps it (CR step 3)
  const spam = await inviteExpecting({ dir, sipPort: sip, to: 'bob', from: 'spam', headers: { 'P-Asserted-Identity': '<sip:spam@example.net>' } }, 403);
  t.same(spam.final?.headers.get('warning'), ['399 pf.example.net "122 Function not allowed"']);
});

/** Run one of scripts/lab/'s caller scenarios as docs/lab.md shows it; its exit code. */
async function labCaller(scenario: string, args: readonly string[]): Promise<{ code: number | null; out: string }> {
  const all = [
    '-sf', join(ROOT, 'scripts', 'lab', scenario), ...args,
    '-i', '127.0.0.1', '-p', String(await freePort()), '-cp', String(await freePort()), '-mp', String(await freePort(4)),
    '-m', '1', '-nostdin', '-timeout', '20s', `127.0.0.1:${sip}`,
  ];
  return new Promise((resolve) => {
    execFile(findBinary('sipp'), all, { cwd: dir }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

t.test('scripts/lab callers fail visibly on an unexpected outcome', async (t) => {
  const answered = await labCaller('invite.xml', ['-key', 'to', 'bob', '-key', 'from', 'alice']);
  t.equal(answered.code, 0, 'invite.xml, answered: exit 0');
  const blocked = await labCaller('invite.xml', ['-key', 'to', 'bob', '-key', 'from', 'spam']);
  t.equal(blocked.code, 1, 'invite.xml, 403: exit 1');
  const dnd = await labCaller('invite.xml', ['-key', 'to', 'carol', '-key', 'from', 'alice']);
  t.equal(dnd.code, 1, 'invite.xml, 480: exit 1');
  const expected = await labCaller('invite-reject.xml', ['-key', 'to', 'bob', '-key', 'from', 'spam', '-set', 'expect', '403']);
  t.equal(expected.code, 0, 'invite-reject.xml, 403 expected and got: exit 0');
  const other = await labCaller('invite-reject.xml', ['-key', 'to', 'carol', '-key', 'from', 'alice', '-set', 'expect', '403']);
  t.equal(other.code, 1, 'invite-reject.xml, 403 expected, 480 got: exit 1');
  const notRejected = await labCaller('invite-reject.xml', ['-key', 'to', 'bob', '-key', 'from', 'alice', '-set', 'expect', '403']);
  t.equal(notRejected.code, 1, 'invite-reject.xml, 403 expected, answered: exit 1');
});

t.test('scripts/lab/device.ts unregisters on Ctrl-C', async (t) => {
  const instance = newInstance();
  const listed = async (): Promise<string[]> => {
    const r = await lab.service.getJson('/users/dave/devices');
    return (r.body as { devices: { instance: string | null }[] }).devices.map((d) => d.instance ?? '');
  };
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'lab', 'device.ts'), 'dave', '--pager', '--instance', instance], {
    cwd: ROOT,
    env: { ...process.env, LAB_SIP_PORT: String(sip), LAB_RUN_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await until(async () => (out.includes('Ctrl-C to stop') ? true : undefined), 20_000, `device CLI up (${out})`);
  t.same(await listed(), [`<${instance}>`], 'registered');
  t.equal((await nonInvite({ sipPort: sip, method: 'OPTIONS', to: 'dave' })).status, 200, '--pager answers OPTIONS');
  child.kill('SIGINT');
  t.equal(await exited, 0, 'exit 0');
  t.match(out, /unregistered/);
  t.same(await listed(), [], 'gone from the registry');
  // and from Kamailio's usrloc: an INVITE finds no device (480), no 30 s wait for a dead port
  const r = await inviteExpecting({ dir, sipPort: sip, to: 'dave' }, 480);
  t.equal(r.code, 0);
  t.equal((await nonInvite({ sipPort: sip, method: 'OPTIONS', to: 'dave' })).status, 480, 'OPTIONS: 480 at once');
});
