/**
 * What is never logged (docs/deployment.md "What is never logged"): on real Kamailio in
 * B2BUA mode, a whole chat through the relay (a message each way, in CPIM, with its
 * delivery notification), the operator's token used on /users, on XCAP and the live
 * routes (and a wrong one), then every log the lab wrote (service at debug, relay,
 * Kamailio) is scanned: neither message text nor either token is in any of them.
 */
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LAB_LEG_TOKEN, Lab, runDir } from '../../lab/lab.js';
import { until } from '../../lab/proc.js';
import { ChatCaller, Phone, instanceFor, type ChatSession } from '../../lab/chat-phone.js';
import { blacklistDoc, RESOURCE_LISTS } from '../../lab/xdm.js';

const dir = runDir('it-secrets');
const lab = await Lab.start({ dir, mode: 'b2bua', serviceLogLevel: 'debug', b2bua: { multiDevice: 'A' } });
const phones: Phone[] = [];
let stopped = false;
t.teardown(async () => {
  await Promise.all(phones.map((p) => p.stop()));
  if (!stopped) await lab.stop();
});

t.test('a B2BUA chat and the operator token leave no trace in the logs', async (t) => {
  const outText = `secret-out-${randomBytes(8).toString('hex')}`;
  const backText = `secret-back-${randomBytes(8).toString('hex')}`;
  const wrongToken = `wrong-${randomBytes(12).toString('hex')}`;

  // the operator's token at work: XCAP, /users, and a wrong one refused
  t.equal(await lab.service.putXcap('resource-lists', 'sip:bob@example.net', blacklistDoc(['sip:spam@example.net']), RESOURCE_LISTS), 201);
  t.equal((await lab.service.getJson('/users/bob/devices')).status, 200);
  const wrong = await fetch(`${lab.service.url}/users/bob/devices`, { headers: { authorization: `Bearer ${wrongToken}` } });
  t.equal(wrong.status, 401);

  const phone = await Phone.start({ sipPort: lab.sipPort, user: 'bob', instance: instanceFor('bob', '1'), answer: { kind: 'after', ms: 0 }, out: () => undefined });
  phones.push(phone);
  const sessions: ChatSession[] = [];
  phone.on('connected', (_id, s) => sessions.push(s));
  const caller = await ChatCaller.place({ sipPort: lab.sipPort, from: 'alice', to: 'bob', out: () => undefined });
  t.equal(caller.state, 'confirmed', 'alice is in a chat with bob through the B2BUA');
  await until(async () => (sessions.length > 0 ? true : undefined), 10_000, 'the phone connected');
  const bob = sessions[0]!;
  await caller.session.send(outText);
  await bob.waitFor((e) => e.kind === 'chat' && e.text === outText);
  await bob.send(backText);
  await caller.session.waitFor((e) => e.kind === 'chat' && e.text === backText);
  t.pass('a message each way went through the relay');
  await caller.hangup();
  await phone.stop();
  phones.length = 0;
  // stop everything so every log line is on disk
  stopped = true;
  await lab.stop();

  const logs = readdirSync(dir).filter((f) => f.endsWith('.log'));
  t.ok(logs.includes('service.log') && logs.includes('relay.log') && logs.includes('kamailio.log'), `the lab's logs: ${logs.join(', ')}`);
  const all = logs.map((f) => [f, readFileSync(join(dir, f), 'utf8')] as const);
  t.ok(all.find(([f]) => f === 'service.log')![1].includes('http request refused'), 'the service logged the refusal (the scan reads real lines)');
  for (const [f, text] of all) {
    for (const [what, secret] of [
      ['message text out', outText],
      ['message text back', backText],
      ['operator token', lab.operatorToken],
      ['wrong token', wrongToken],
      ['B2BUA leg token', LAB_LEG_TOKEN],
    ] as const) {
      t.notOk(text.includes(secret), `${f}: no ${what}`);
    }
  }
});
