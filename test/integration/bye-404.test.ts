/**
 * The "404 Not here" to a BYE under load (docs/reliability.md "404 Not here on BYE"), in
 * small form on real Kamailio. A lossy hop (a UDP relay in this file) sits between
 * Kamailio and the answering device and plays what a loaded machine did in the soak:
 * it drops the device's 200 to the BYE (a full socket buffer) and delivers a late
 * duplicate ACK right after the BYE (the caller ACKs every retransmitted 200 of the
 * INVITE).
 *
 *   caller --INVITE/ACK/BYE--> Kamailio --> hop --> device (sipp UAS)
 *                                             x  <-- 200 to the BYE (dropped once)
 *
 * - The soak's former device (uas-answer.xml) answers the BYE and ends the call at the
 *   late ACK (sipp aborts a call on an unexpected message; otherwise its 500 ms timewait
 *   ends it). Kamailio's retransmissions of the BYE then reach a call sipp has ended, so
 *   nobody answers them. The caller's BYE times out, and sipp's clean-up sends its own
 *   BYE with no Route set (branch ...--1, no rport). loose_route() finds no Route, so
 *   lab.cfg WITHINDLG answers "404 Not here". That 404 is the one the soak saw.
 * - The soak's device now (uas-answer-linger.xml) keeps the dialog for Timer J and
 *   answers the retransmitted BYE: the call completes.
 */
import t from 'tap';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { Lab, runDir } from '../../lab/lab.js';
import { Binding, newInstance, vars } from '../../lab/calls.js';
import { freePort } from '../../lab/proc.js';
import { register, sipUdpRequest, CPM_DEVICE_PARAMS } from '../../lab/sip.js';
import { SippAgent, runSipp, requestsIn, responsesIn, headerValues } from '../../lab/sipp.js';

const dir = runDir('it-bye-404');
const lab = await Lab.start({ dir });
const agents: SippAgent[] = [];
const hops: Socket[] = [];
t.teardown(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const h of hops) h.close();
  await lab.stop();
});

interface Hop {
  /** BYEs Kamailio sent to the device (the first and its retransmissions). */
  byes: number;
  /** 200s to the BYE the hop dropped. */
  dropped: number;
  /** Late duplicate ACKs the hop delivered. */
  lateAcks: number;
}

/**
 * A device for `user` behind a lossy hop: registered from the hop's port (the fork goes
 * to the REGISTER's source), its Contact rewritten to the hop, so in-dialog requests
 * pass the hop too.
 */
async function lossyDevice(user: string, scenario: string, extraVars: Record<string, string | number>): Promise<Hop> {
  const hopPort = await freePort();
  const devPort = await freePort();
  const instance = newInstance();
  const binding = new Binding({ user, instance, params: CPM_DEVICE_PARAMS });
  const reg = await register(lab.sipPort, { ...binding.next(hopPort, 600), fromPort: hopPort });
  if (reg.status !== 200) throw new Error(`registration of ${user}: ${reg.status}`);
  agents.push(
    await SippAgent.start({
      dir,
      name: `dev-${user}`,
      port: devPort,
      scenario,
      vars: { CONTACT_PARAMS: `;+sip.instance="<${instance}>"`, RINGING: '', SETUP: 'passive', ...extraVars },
    }),
  );
  const stats: Hop = { byes: 0, dropped: 0, lateAcks: 0 };
  const sock = createSocket('udp4');
  hops.push(sock);
  let lastAck: Buffer | null = null;
  sock.on('message', (msg: Buffer, from: RemoteInfo) => {
    const text = msg.toString('latin1');
    if (from.port === devPort) {
      if (/^SIP\/2\.0 200 /.test(text) && /^CSeq:\s*\d+ BYE\r?$/im.test(text) && stats.dropped === 0) {
        stats.dropped++;
        return;
      }
      sock.send(Buffer.from(text.replaceAll(`127.0.0.1:${devPort}`, `127.0.0.1:${hopPort}`), 'latin1'), lab.sipPort, '127.0.0.1');
      return;
    }
    sock.send(msg, devPort, '127.0.0.1');
    if (text.startsWith('ACK ')) lastAck = msg;
    if (text.startsWith('BYE ')) {
      stats.byes++;
      if (stats.byes === 1 && lastAck) {
        stats.lateAcks++;
        sock.send(lastAck, devPort, '127.0.0.1');
      }
    }
  });
  await new Promise<void>((resolve) => sock.bind(hopPort, '127.0.0.1', resolve));
  return stats;
}

/** One call from a sipp caller; its BYE's 200 is awaited `recvTimeoutMs`. */
const callTo = (user: string, recvTimeoutMs: number): ReturnType<typeof runSipp> =>
  runSipp({
    scenario: 'uac-call.xml',
    dir,
    name: `call-${user}`,
    remote: `127.0.0.1:${lab.sipPort}`,
    vars: vars({ dir, sipPort: lab.sipPort, to: user }, 200, 0),
    extraArgs: ['-recv_timeout', String(recvTimeoutMs)],
    timeoutMs: 30_000,
  });

const branchOf = (msg: string): string => /;branch=([^;\s]+)/.exec(headerValues(msg, 'Via')[0] ?? '')?.[1] ?? '';

t.test('reproduced: the device ended the call, the BYE times out, sipp clean-up BYE gets 404', async (t) => {
  const hop = await lossyDevice('lossyold', 'uas-answer.xml', {});
  const r = await callTo('lossyold', 3000);
  t.not(r.code, 0, 'the call failed at the caller');
  t.match(r.errors, /receive timeout on message uac-call:8/, 'no 200 to the BYE (uac-call.xml index 8)');
  // sipp retransmits its own BYE too (uac-call.xml retrans="500"): one entry per branch
  const byBranch = new Map(requestsIn(r.messages, 'BYE').map((m) => [branchOf(m), m] as const));
  t.equal(byBranch.size, 2, "the scenario's BYE and sipp's clean-up BYE");
  const [own, cleanup] = [...byBranch.values()].map((m) => m);
  t.ok(headerValues(own ?? '', 'Route').length > 0, "the scenario's BYE follows the Record-Route set");
  t.equal(headerValues(cleanup ?? '', 'Route').length, 0, 'the clean-up BYE has no Route header');
  t.match(branchOf(cleanup ?? ''), /--1$/, 'the clean-up BYE has message index -1 in its branch');
  t.notMatch(headerValues(cleanup ?? '', 'Via')[0] ?? '', /rport/, 'and no rport');
  // sipp may exit before the 404 comes in (its one call has ended): the 404 is checked
  // by sending the clean-up BYE again from the caller's port (no rport: Kamailio answers
  // the Via's port)
  const uacPort = Number(/^SIP\/2\.0\/UDP 127\.0\.0\.1:(\d+)/.exec(headerValues(cleanup ?? '', 'Via')[0] ?? '')?.[1]);
  const again = await sipUdpRequest(lab.sipPort, () => `${cleanup ?? ''}\r\n\r\n`, 3000, uacPort);
  t.equal(again.final.status, 404, "lab.cfg WITHINDLG's 404: loose_route() found no Route");
  t.equal(again.final.reason, 'Not here');
  t.equal(branchOf(again.final.raw), branchOf(cleanup ?? ''), 'the 404 answers the clean-up BYE (the branch the soak saw), not the BYE relayed');
  const seen = responsesIn(r.messages).find((x) => x.status === 404) ?? (/Dead call [^\n]*received 'SIP\/2\.0 404/.test(r.errors) ? 'dead' : undefined);
  t.comment(`the caller itself ${seen ? 'saw' : 'exited before'} the 404`);
  t.equal(hop.dropped, 1, "the device's 200 to the BYE was dropped");
  t.ok(hop.byes >= 2, `Kamailio retransmitted the BYE (${hop.byes} copies reached the device)`);
  const devErrors = agents.at(-1)?.errors() ?? '';
  // "while pausing" (its timewait after the 200 to the BYE); on a loaded machine a
  // retransmitted 200 of the INVITE may bring the duplicate ACK before the BYE instead
  t.match(devErrors, /Aborting call on unexpected message[^]*received 'ACK /, 'the device ended the call at a duplicate ACK');
  t.match(devErrors, /Dead call [^ ]+ \(aborted at index \d+\), received 'BYE /, 'the retransmitted BYE reached an ended call');
});

t.test('fixed: a device that keeps the dialog for Timer J answers the retransmitted BYE', async (t) => {
  const hop = await lossyDevice('lossynew', 'uas-answer-linger.xml', { LINGER_MS: 32_000 });
  const r = await callTo('lossynew', 10_000);
  t.equal(r.code, 0, `the call completed${r.code === 0 ? '' : `: ${r.errors}`}`);
  t.equal(hop.dropped, 1, "the device's first 200 to the BYE was dropped");
  t.equal(hop.lateAcks, 1, 'a late duplicate ACK reached the device');
  t.ok(hop.byes >= 2, 'Kamailio retransmitted the BYE, and the device answered the copy');
  t.notOk(requestsIn(r.messages, 'BYE').some((m) => /--1$/.test(branchOf(m))), 'no clean-up BYE');
  t.notOk(responsesIn(r.messages).some((x) => x.status === 404), 'no 404');
});
