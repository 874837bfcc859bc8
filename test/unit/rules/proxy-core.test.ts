/**
 * The PF's proxy decision, applied to the INVITE, then forked by the lab core's RFC 3841
 * matcher (`core.fork`): the core reaches exactly the devices the PF found suitable.
 */
import t from 'tap';
import type { Device } from '../../../plugin/devices/types.js';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { selectForkTargets } from '../../../plugin/callerprefs/fork.js';
import { parseSipMessage, type SipRequest } from '../../../plugin/sip/message.js';
import { device, ENC, ICSI_GROUP, input, inviteText, NOW, TAGS } from './fixtures/build.js';

/** Apply a proxy decision the way Kamailio does (remove_hf, then append_hf). */
function applied(raw: string, remove: readonly string[], hdrs: string): SipRequest {
  const [head, body] = raw.split('\r\n\r\n') as [string, string];
  const drop = new Set(remove.map((r) => r.toLowerCase()));
  const lines = head.split('\r\n').filter((l, i) => i === 0 || !drop.has(l.slice(0, l.indexOf(':')).toLowerCase()));
  const m = parseSipMessage(`${lines.join('\r\n')}\r\n${hdrs}\r\n${body}`);
  if (m.kind !== 'request') throw new Error('not a request');
  return m;
}

function forked(headers: Record<string, string | null>, devices: Device[]): { decided: string; reached: string[] } {
  const raw = inviteText(headers);
  const d = decideInvite(input({ msg: parseSipMessage(raw) as SipRequest, devices }));
  if (d.action !== 'proxy') return { decided: d.action, reached: [] };
  const f = selectForkTargets(applied(raw, d.remove, d.hdrs), devices, NOW);
  return { decided: d.stage, reached: f.code === 200 ? f.rtjson.routes.map((r) => r.uri) : [] };
}

const named = (name: string, tags: Record<string, string | true>): Device => device(name, tags, { contact: `sip:${name}@127.0.0.1` });
const unnamed = (name: string, tags: Record<string, string | true>): Device => device(name, tags, { contact: `sip:${name}@127.0.0.1`, instance: null, params: tags });

t.test('1-1 chat: CPM and SIMPLE IM devices reached, MMTEL never', async (t) => {
  const devices = [named('cpm', TAGS.cpm), named('im', TAGS.simpleIm), named('mmtel', TAGS.mmtel), unnamed('mmtel-noinst', TAGS.mmtel), unnamed('im-noinst', TAGS.simpleIm)];
  const r = forked({}, devices);
  t.equal(r.decided, 'proxy');
  t.same(r.reached.sort(), ['sip:cpm@127.0.0.1', 'sip:im-noinst@127.0.0.1', 'sip:im@127.0.0.1']);
});

t.test('no device without an instance: no extra Accept-Contact', async (t) => {
  const raw = inviteText({});
  const d = decideInvite(input({ msg: parseSipMessage(raw) as SipRequest, devices: [named('cpm', TAGS.cpm), named('mmtel', TAGS.mmtel)] }));
  t.notMatch(d.action === 'proxy' ? d.hdrs : '', /Accept-Contact/);
});

t.test('group session: only devices with the group ICSI (or SIMPLE IM)', async (t) => {
  const devices = [named('one', TAGS.cpm), named('both', TAGS.cpmGroup), named('im', TAGS.simpleIm), unnamed('one-noinst', TAGS.cpm)];
  const r = forked({ 'P-Preferred-Service': ICSI_GROUP, 'Accept-Contact': `*;+g.3gpp.icsi-ref="${ENC(ICSI_GROUP)}"` }, devices);
  t.same(r.reached.sort(), ['sip:both@127.0.0.1', 'sip:im@127.0.0.1']);
});

t.test('known limit: a device with no feature tags and no instance cannot be excluded', async (t) => {
  const r = forked({}, [named('cpm', TAGS.cpm), unnamed('bare', {})]);
  t.same(r.reached, ['sip:cpm@127.0.0.1', 'sip:bare@127.0.0.1'], 'RFC 3841 leaves a tagless contact immune');
});
