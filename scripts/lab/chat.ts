/**
 * Place a chat through the lab's Kamailio (docs/lab.md "Chat"): INVITE with a chat SDP
 * offering a=setup:actpass (lab/chat-phone.ts ChatCaller), then MSRP; each stdin line goes
 * out as CPIM asking for a positive delivery notification (isComposing first); received
 * messages and notifications are printed. BYE on end of input, Ctrl-C or SIGTERM.
 *
 *   npm run lab:chat -- --from alice --to bob [--script <file> | --send <text> ...] [--timeout <ms>]
 * --send: each text is sent and its delivery notification awaited, then BYE.
 * Exit 0 when the chat was answered and the script (if any) ran to its end, else 1.
 * Env: LAB_SIP_PORT (else the running lab's run/lab/lab.json, else 5060).
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ChatCaller } from '../../lab/chat-phone.js';
import { parseScript, type Setup, type Step } from '../../lab/chat.js';
import { labPorts } from '../../lab/lab-state.js';

const USAGE = 'usage: npm run lab:chat -- --from <user> --to <user> [--script <file> | --send <text> ...] [--setup actpass|active|passive]';

const { values } = parseArgs({
  options: {
    from: { type: 'string', default: 'alice' },
    to: { type: 'string' },
    script: { type: 'string' },
    send: { type: 'string', multiple: true },
    setup: { type: 'string', default: 'actpass' },
    timeout: { type: 'string', default: '10000' },
    help: { type: 'boolean' },
  },
});
if (values.help || !values.to) {
  console.error(USAGE);
  process.exit(values.help ? 0 : 2);
}
const setup = values.setup;
if (setup !== 'actpass' && setup !== 'active' && setup !== 'passive') {
  console.error(`chat: --setup must be actpass, active or passive`);
  process.exit(2);
}
const timeoutMs = Number(values.timeout);
let script: Step[] | undefined;
try {
  if (values.script !== undefined) script = parseScript(readFileSync(values.script, 'utf8'));
  else if (values.send?.length) script = [...values.send.flatMap((text): Step[] => [{ kind: 'send', text }, { kind: 'wait-imdn' }]), { kind: 'bye' }];
} catch (err) {
  console.error(`chat: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
}

const { sipPort } = labPorts();
let caller: ChatCaller;
try {
  caller = await ChatCaller.place({ sipPort, from: values.from, to: values.to, setup: setup satisfies Setup, timeoutMs });
} catch (err) {
  console.error(`chat: ${err instanceof Error ? err.message : String(err)} (Kamailio at 127.0.0.1:${sipPort}: is the lab up?)`);
  process.exit(1);
}
if (caller.state === 'failed') process.exit(1);
caller.on('ended', () => process.exit(0));

let ending = false;
async function end(code: number): Promise<void> {
  if (ending) return;
  ending = true;
  await caller.hangup();
  process.exit(code);
}
process.once('SIGINT', () => void end(0));
process.once('SIGTERM', () => void end(0));

if (script) {
  try {
    await caller.session.run(script, timeoutMs);
    await end(0);
  } catch (err) {
    console.log(`script failed: ${err instanceof Error ? err.message : String(err)}`);
    await end(1);
  }
} else {
  console.log('type a line to send it; end of input (Ctrl-D) or Ctrl-C hangs up');
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => void caller.session.send(line).catch((err: unknown) => console.log(`send failed: ${err instanceof Error ? err.message : String(err)}`)));
  // end of input: the last lines out and their delivery notifications in, then BYE
  rl.on('close', () => void caller.session.settle(timeoutMs).then(() => end(0)));
}
