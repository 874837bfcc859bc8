import t from 'tap';
import { decideInvite } from '../../../plugin/rules/invite.js';
import { releaseVersions } from '../../../plugin/rules/facts.js';
import { input, invite } from './fixtures/build.js';

const WARN = 'Warning: 399 pf.example.net "132 Version not supported"\r\n';

t.test('CPM-(client|serv)/OMA<major>.<minor> is read leniently', async (t) => {
  const cases: [string | undefined, string[]][] = [
    ['CPM-client/OMA2.2 RCS-client/UP_2.4', ['OMA2.2']],
    ['cpm-CLIENT/oma2.2', ['OMA2.2']],
    ['CPM-serv/OMA2.1', ['OMA2.1']],
    ['Foo/1.0 (x) CPM-client/OMA02.10 bar', ['OMA2.10']],
    ['CPM-client/OMA1.0 CPM-client/OMA2.0', ['OMA1.0', 'OMA2.0']],
    ['CPM-client/OMA2', []],
    ['RCS-client/UP_2.4', []],
    ['', []],
    [undefined, []],
  ];
  for (const [ua, want] of cases) t.same(releaseVersions(ua), want, String(ua));
});

t.test('CR step 1 decisions', async (t) => {
  const cases: { name: string; ua: string | null; supported: string[]; reject: boolean }[] = [
    { name: 'no policy list: no check', ua: null, supported: [], reject: false },
    { name: 'supported version', ua: 'CPM-client/OMA2.2', supported: ['OMA2.2'], reject: false },
    { name: 'one of several', ua: 'CPM-client/OMA2.1', supported: ['OMA2.2', 'OMA2.1'], reject: false },
    { name: 'unsupported version', ua: 'CPM-client/OMA1.0', supported: ['OMA2.2'], reject: true },
    { name: 'no User-Agent', ua: null, supported: ['OMA2.2'], reject: true },
    { name: 'User-Agent without CPM token', ua: 'RCS-client/UP_2.4', supported: ['OMA2.2'], reject: true },
    { name: 'garbled User-Agent', ua: 'CPM-client/OMA\u00e9.\u0000', supported: ['OMA2.2'], reject: true },
  ];
  for (const c of cases) {
    const d = decideInvite(input({ msg: invite({ 'User-Agent': c.ua }), policy: { supportedVersions: c.supported } }));
    if (c.reject) t.same(d, { action: 'reject', code: 403, reason: 'Forbidden', hdrs: WARN, stage: 'release-version' }, c.name);
    else t.equal(d.action, 'proxy', c.name);
  }
});
