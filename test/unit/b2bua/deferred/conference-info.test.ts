// The conference-info reader (plugin/b2bua/deferred/conference-info.ts): case tables for
// parse and apply, and a fuzz of bad input (never throws, bounded output).
import t from 'tap';
import {
  applyConferenceInfo, MAX_CONFERENCE_INFO_BYTES, MAX_PARTICIPANTS, parseConferenceInfo, type ConferenceState,
} from '../../../../plugin/b2bua/deferred/conference-info.js';

const NS = 'urn:ietf:params:xml:ns:conference-info';
const doc = (attrs: string, users: string): string => `<conference-info xmlns="${NS}" entity="sip:c@f" ${attrs}><users>${users}</users></conference-info>`;
const user = (uri: string, extra = '', name?: string): string =>
  `<user entity="${uri}"${extra}>${name === undefined ? '' : `<display-text>${name}</display-text>`}</user>`;

t.test('parse: good and bad documents', async (t) => {
  const rows: { name: string; body: string; ok: boolean; users?: number; state?: string }[] = [
    { name: 'full', body: doc('state="full" version="1"', user('sip:a@x', '', 'A') + user('sip:b@x')), ok: true, users: 2, state: 'full' },
    { name: 'state defaults to full', body: doc('version="3"', user('sip:a@x')), ok: true, users: 1, state: 'full' },
    { name: 'partial with a deletion', body: doc('state="partial" version="2"', user('sip:a@x', ' state="deleted"')), ok: true, users: 1, state: 'partial' },
    { name: 'no users element', body: `<conference-info xmlns="${NS}" entity="x" version="1"/>`, ok: true, users: 0 },
    { name: 'a user without entity is skipped', body: doc('version="1"', '<user><display-text>x</display-text></user>' + user('sip:b@x')), ok: true, users: 1 },
    { name: 'a user with a bad URI is skipped', body: doc('version="1"', user('sip:a b@x') + user('<sip:x>'.replace(/[<>]/g, ''))), ok: true, users: 1 },
    { name: 'users of another namespace ignored', body: `<conference-info xmlns="${NS}" version="1"><users><user xmlns="urn:other" entity="sip:z@x"/></users></conference-info>`, ok: true, users: 0 },
    { name: 'no version', body: doc('state="full"', ''), ok: false },
    { name: 'bad version', body: doc('version="-1"', ''), ok: false },
    { name: 'bad state', body: doc('state="half" version="1"', ''), ok: false },
    { name: 'another root', body: '<x xmlns="urn:ietf:params:xml:ns:conference-info" version="1"/>', ok: false },
    { name: 'another namespace', body: '<conference-info version="1"/>', ok: false },
    { name: 'a DOCTYPE (entities)', body: `<!DOCTYPE c [<!ENTITY e "x">]>${doc('version="1"', user('sip:&e;@x'))}`, ok: false },
    { name: 'an external entity', body: `<!DOCTYPE c SYSTEM "file:///etc/passwd">${doc('version="1"', '')}`, ok: false },
    { name: 'an undeclared entity', body: doc('version="1"', user('sip:&x;@x')), ok: false },
    { name: 'not XML', body: 'hello', ok: false },
    { name: 'empty', body: '', ok: false },
    { name: 'too large', body: doc('version="1"', user('sip:a@x', '', 'x'.repeat(MAX_CONFERENCE_INFO_BYTES))), ok: false },
  ];
  for (const r of rows) {
    const out = parseConferenceInfo(r.body);
    t.equal(out.ok, r.ok, r.name);
    if (out.ok && r.users !== undefined) t.equal(out.doc.users.length, r.users, `${r.name}: users`);
    if (out.ok && r.state !== undefined) t.equal(out.doc.state, r.state, `${r.name}: state`);
  }
});

t.test('apply: full replaces, partial by entity, stale ignored, deleted empties', async (t) => {
  const parse = (s: string) => {
    const r = parseConferenceInfo(s);
    if (!r.ok) throw new Error(r.why);
    return r.doc;
  };
  let s: ConferenceState | null = null;
  const steps: { body: string; want: string[]; version: number }[] = [
    { body: doc('state="full" version="1"', user('sip:a@x', '', 'A') + user('sip:b@x')), want: ['sip:a@x=A', 'sip:b@x'], version: 1 },
    { body: doc('state="partial" version="2"', user('sip:b@x', ' state="deleted"') + user('sip:c@x', '', 'C')), want: ['sip:a@x=A', 'sip:c@x=C'], version: 2 },
    { body: doc('state="partial" version="3"', user('sip:a@x')), want: ['sip:a@x=A', 'sip:c@x=C'], version: 3 },
    { body: doc('state="full" version="3"', user('sip:z@x')), want: ['sip:a@x=A', 'sip:c@x=C'], version: 3 },
    { body: doc('state="full" version="2"', user('sip:z@x')), want: ['sip:a@x=A', 'sip:c@x=C'], version: 3 },
    { body: doc('state="full" version="4"', user('sip:d@x')), want: ['sip:d@x'], version: 4 },
    { body: doc('state="deleted" version="5"', user('sip:d@x')), want: [], version: 5 },
  ];
  for (const [i, st] of steps.entries()) {
    s = applyConferenceInfo(s, parse(st.body));
    t.same(s.participants.map((p) => (p.name ? `${p.uri}=${p.name}` : p.uri)), st.want, `step ${i + 1}`);
    t.equal(s.version, st.version, `step ${i + 1} version`);
  }
});

t.test('bounded: at most MAX_PARTICIPANTS kept', async (t) => {
  const many = Array.from({ length: MAX_PARTICIPANTS + 50 }, (_, i) => user(`sip:u${i}@x`)).join('');
  const r = parseConferenceInfo(doc('version="1"', many));
  t.ok(r.ok);
  if (r.ok) t.equal(applyConferenceInfo(null, r.doc).participants.length, MAX_PARTICIPANTS);
  const tooMany = Array.from({ length: MAX_PARTICIPANTS * 2 + 1 }, (_, i) => `<user entity="sip:${i}"/>`).join('');
  t.notOk(parseConferenceInfo(doc('version="1"', tooMany)).ok, 'more users than twice the bound: refused');
});

t.test('fuzz: mutated documents never throw and stay bounded', async (t) => {
  let seed = 0x2545f491;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const base = doc('state="partial" version="7"', user('sip:a@x', '', 'A &amp; B') + user('sip:b@x', ' state="deleted"') + '<![CDATA[x]]>');
  const pieces = ['<', '>', '&', '"', "'", '<!DOCTYPE x>', '<!ENTITY a "b">', '&a;', '\u0000', '\uffff', '<user entity="sip:q@x">', '</users>', 'version="9"', ']]>', '<?pi?>', '\ud800'];
  let ok = 0;
  for (let i = 0; i < 3000; i++) {
    let s = base;
    for (let k = 0; k <= rnd(4); k++) {
      const at = rnd(s.length + 1);
      const op = rnd(3);
      if (op === 0) s = s.slice(0, at) + pieces[rnd(pieces.length)]! + s.slice(at);
      else if (op === 1) s = s.slice(0, at) + s.slice(at + 1 + rnd(8));
      else s = s.slice(0, at) + String.fromCharCode(rnd(0x3000)) + s.slice(at);
    }
    let r;
    try {
      r = parseConferenceInfo(s);
    } catch (err) {
      t.fail(`threw on ${JSON.stringify(s)}: ${String(err)}`);
      continue;
    }
    if (r.ok) {
      ok++;
      const st = applyConferenceInfo(null, r.doc);
      if (st.participants.length > MAX_PARTICIPANTS || st.participants.some((p) => p.uri.length > 1024 || (p.name?.length ?? 0) > 256)) t.fail('unbounded');
    }
  }
  t.ok(ok > 0, `some mutations still parse (${ok})`);
});
