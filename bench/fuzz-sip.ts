/**
 * `npm run fuzz:sip [-- --cases N --seed S]`: mutation fuzzing of parseSipMessage ->
 * decideInvite / selectForkTargets (default 100,000 cases), then the cost of
 * decideInvite on the unmutated seed INVITEs (5 rounds, median and spread).
 * Exits 1 on any finding (an exception other than SipParseError, or a decision that
 * breaks docs/jsonrpc.md).
 */
import { parseArgs } from 'node:util';
import { parseSipMessage, type SipRequest } from '../plugin/sip/message.js';
import { decideInvite } from '../plugin/rules/invite.js';
import { DEVICES, DOCS, fuzz, NOW, POLICY, SEEDS } from './fuzz-sip-lib.js';

const { values } = parseArgs({ options: { cases: { type: 'string', default: '100000' }, seed: { type: 'string', default: '1' } } });
const cases = Number(values.cases);
const seed = Number(values.seed);

const t0 = performance.now();
const stats = fuzz(cases, seed);
const secs = (performance.now() - t0) / 1000;
console.log(`fuzz: ${stats.cases} cases, seed ${seed}, ${secs.toFixed(1)} s (${Math.round(stats.cases / secs)} cases/s)`);
console.log(`  SipParseError: ${stats.parseErrors}, not an INVITE: ${stats.notInvite}, proxy decisions in the text form read back: ${stats.textForms}`);
console.log(`  decisions by stage: ${JSON.stringify(stats.stages)}`);
for (const f of stats.findings) console.log(`FINDING ${f.error}\n  input (base64): ${Buffer.from(f.input).toString('base64')}`);

// decideInvite cost on valid INVITEs (message parsed once, as the service does).
const msgs = SEEDS.map((s) => parseSipMessage(s) as SipRequest);
const rounds: number[] = [];
const N = 20_000;
for (let round = 0; round < 6; round++) {
  const start = performance.now();
  for (let i = 0; i < N; i++) {
    decideInvite({
      msg: msgs[i % msgs.length]!,
      servedUser: 'sip:bob@example.net',
      docs: DOCS,
      devices: DEVICES,
      sessionDevices: () => null,
      policy: POLICY,
      pfHost: 'pf.example.net',
      now: NOW,
    });
  }
  if (round > 0) rounds.push(((performance.now() - start) * 1000) / N); // round 0 is warm-up
}
rounds.sort((a, b) => a - b);
console.log(`decideInvite (12 devices, pre-parsed docs): median ${rounds[2]!.toFixed(1)} us/call, min ${rounds[0]!.toFixed(1)}, max ${rounds[4]!.toFixed(1)} (5 rounds x ${N})`);

const parseRounds: number[] = [];
for (let round = 0; round < 6; round++) {
  const start = performance.now();
  for (let i = 0; i < N; i++) parseSipMessage(SEEDS[i % SEEDS.length]!);
  if (round > 0) parseRounds.push(((performance.now() - start) * 1000) / N);
}
parseRounds.sort((a, b) => a - b);
console.log(`parseSipMessage: median ${parseRounds[2]!.toFixed(1)} us/msg, min ${parseRounds[0]!.toFixed(1)}, max ${parseRounds[4]!.toFixed(1)}`);

process.exitCode = stats.findings.length ? 1 : 0;

// A hostile INVITE: 10,000 Reject-Contact values, a user with 50 devices.
{
  const rc = Array.from({ length: 10_000 }, (_, i) => `*;+sip.instance="<urn:uuid:x${i}>"`).join(', ');
  const raw = SEEDS[0]!.replace('\r\nContent-Type:', `\r\nReject-Contact: ${rc}\r\nContent-Type:`);
  const many = Array.from({ length: 50 }, (_, i) => ({ ...DEVICES[i % DEVICES.length]!, instance: `<urn:uuid:y${i}>`, contact: `sip:bob@127.0.0.1:${7000 + i}` }));
  const times: number[] = [];
  for (let round = 0; round < 6; round++) {
    const start = performance.now();
    const msg = parseSipMessage(raw) as SipRequest;
    decideInvite({ msg, servedUser: 'sip:bob@example.net', docs: DOCS, devices: many, sessionDevices: () => null, policy: POLICY, pfHost: 'pf.example.net', now: NOW });
    if (round > 0) times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  console.log(`hostile INVITE (${Math.round(raw.length / 1024)} KiB, 10,000 Reject-Contact, 50 devices), parse + decide: median ${times[2]!.toFixed(1)} ms, min ${times[0]!.toFixed(1)}, max ${times[4]!.toFixed(1)}`);
}
