/**
 * A lab phone that chats (docs/lab.md "Chat"): listens on a SIP port, registers <user> with
 * the CPM feature tags, answers INVITEs with its own MSRP path (lab/chat-phone.ts Phone),
 * prints what arrives (CPIM From, text, Message-Direction), answers delivery notification
 * requests, and sends what is typed on stdin (isComposing first). Ctrl-C / SIGTERM: BYE,
 * then REGISTER expires=0, then exit.
 *
 *   npm run lab:phone -- --user bob [--instance <n> | urn:uuid:...] [--ring | --answer-after <ms>]
 *                        [--mmtel] [--script <file> | --send <text> ...] [--timeout <ms>]
 * Env: LAB_SIP_PORT (else the running lab's run/lab/lab.json, else 5060).
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Phone, instanceFor, type Answer } from '../../lab/chat-phone.js';
import { parseScript, type Step } from '../../lab/chat.js';
import { labPorts } from '../../lab/lab-state.js';
import { CPM_DEVICE_PARAMS, MMTEL_DEVICE_PARAMS } from '../../lab/sip.js';

const USAGE = 'usage: npm run lab:phone -- --user <user> [--instance <n>] [--ring | --answer-after <ms>] [--mmtel] [--script <file> | --send <text> ...]';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    user: { type: 'string' },
    instance: { type: 'string' },
    ring: { type: 'boolean' },
    'answer-after': { type: 'string' },
    mmtel: { type: 'boolean' },
    script: { type: 'string' },
    send: { type: 'string', multiple: true },
    timeout: { type: 'string' },
    help: { type: 'boolean' },
  },
});
const user = values.user ?? positionals[0];
if (values.help || !user) {
  console.error(USAGE);
  process.exit(values.help ? 0 : 2);
}
const ms = (v: string | undefined, def: number): number => {
  const n = v === undefined ? def : Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`phone: not a number of ms: ${v}`);
    process.exit(2);
  }
  return n;
};
const answer: Answer = values.ring ? { kind: 'ring' } : { kind: 'after', ms: ms(values['answer-after'], 0) };
let script: Step[] | undefined;
try {
  if (values.script !== undefined) script = parseScript(readFileSync(values.script, 'utf8'));
  else if (values.send?.length) script = values.send.map((text) => ({ kind: 'send', text }));
} catch (err) {
  console.error(`phone: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
}

const { sipPort } = labPorts();
const phone = await Phone.start({
  sipPort,
  user,
  instance: instanceFor(user, values.instance ?? `${process.pid}`),
  params: values.mmtel ? MMTEL_DEVICE_PARAMS : CPM_DEVICE_PARAMS,
  answer,
  ...(script ? { script } : {}),
  timeoutMs: ms(values.timeout, 10_000),
}).catch((err: unknown) => {
  console.error(`phone: ${err instanceof Error ? err.message : String(err)} (Kamailio at 127.0.0.1:${sipPort}: is the lab up?)`);
  process.exit(1);
});
console.log(`phone ${user} ${answer.kind === 'ring' ? 'rings' : 'answers'}${values.mmtel ? ' (MMTEL only)' : ''}; type to chat, Ctrl-C to stop`);

if (!script) {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const s = phone.session;
    if (!s) console.log('(no chat yet)');
    else void s.send(line).catch((err: unknown) => console.log(`send failed: ${err instanceof Error ? err.message : String(err)}`));
  });
}

async function stop(): Promise<void> {
  const ok = await phone.stop();
  process.exit(ok ? 0 : 1);
}
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
