import t from 'tap';
import type { Header } from '../../../plugin/b2bua/sip/build.js';
import { callerAnswer, answerSessionTimer, type CallerAnswerInput } from '../../../plugin/rules/stages/b2bua-answer.js';
import { CHAT_SDP, invite } from './fixtures/build.js';
import type { HeaderMap } from '../../../lab/sip-fixtures.js';

const ANSWER = CHAT_SDP.replace('a=setup:active', 'a=setup:passive');

function input(h: HeaderMap = {}, over: Partial<CallerAnswerInput> = {}): CallerAnswerInput {
  return { original: invite(h), contact: 'sip:b2bua@127.0.0.1:5080;transport=tcp', sessionExpires: 1800, userAgent: 'CPM-serv/OMA2.2', answerSdp: ANSWER, ...over };
}

const values = (h: readonly Header[], name: string): string[] => h.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

t.test('CR 8.3.2.1 200 OK procedure: the whole answer', async (t) => {
  const a = callerAnswer(input({ Supported: 'timer', 'Session-Expires': '1200', 'InReplyTo-Contribution-ID': 'prev-1' }));
  t.same(a, {
    headers: [
      ['Conversation-ID', 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6'],
      ['Contribution-ID', 'abcdef-1234'],
      ['InReplyTo-Contribution-ID', 'prev-1'],
      ['Contact', '<sip:b2bua@127.0.0.1:5080;transport=tcp>'],
      ['Supported', 'timer'],
      ['Require', 'timer'],
      ['Session-Expires', '1200;refresher=uac'],
      ['User-Agent', 'CPM-serv/OMA2.2'],
    ],
    body: ANSWER,
    contentType: 'application/sdp',
  });
});

t.test('session identifiers: copied as they are, absent ones left out', async (t) => {
  const cases: [HeaderMap, [string, string][]][] = [
    [{}, [['Conversation-ID', 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6'], ['Contribution-ID', 'abcdef-1234']]],
    [{ 'Conversation-ID': null, 'Contribution-ID': null }, []],
    [{ 'Contribution-ID': 'AbC, with comma' }, [['Conversation-ID', 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6'], ['Contribution-ID', 'AbC, with comma']]],
  ];
  for (const [h, want] of cases) {
    const ids = callerAnswer(input(h)).headers.filter(([n]) => /-ID$/i.test(n));
    t.same(ids, want, JSON.stringify(h));
  }
});

t.test('RFC 4028 §9: the session timer of the 200', async (t) => {
  const cases: { name: string; h: HeaderMap; configured?: number; want: [number, 'uac' | 'uas'] | null }[] = [
    { name: 'no Supported: timer: none', h: { 'Session-Expires': '1200' }, want: null },
    { name: 'Supported: timer, no Session-Expires: configured, uac', h: { Supported: 'timer' }, want: [1800, 'uac'] },
    { name: 'compact k and x', h: { k: '100rel, TIMER', x: '600;refresher=uas' }, want: [600, 'uas'] },
    { name: "caller's interval lower: taken", h: { Supported: 'timer', 'Session-Expires': '1200;refresher=uac' }, want: [1200, 'uac'] },
    { name: "caller's interval higher: ours", h: { Supported: 'timer', 'Session-Expires': '7200' }, want: [1800, 'uac'] },
    { name: 'refresher=uas respected', h: { Supported: 'timer', 'Session-Expires': '7200;refresher=UAS' }, want: [1800, 'uas'] },
    { name: 'Min-SE above ours: never below it', h: { Supported: 'timer', 'Session-Expires': '7200', 'Min-SE': '3600' }, want: [3600, 'uac'] },
    { name: 'configured below 90: 90', h: { Supported: 'timer' }, configured: 30, want: [90, 'uac'] },
    { name: 'garbled Session-Expires: as absent', h: { Supported: 'timer', 'Session-Expires': 'soon;refresher=uas' }, want: [1800, 'uac'] },
    { name: 'garbled Min-SE: 90', h: { Supported: 'timer', 'Session-Expires': '100', 'Min-SE': 'x' }, want: [100, 'uac'] },
    { name: 'an unknown refresher: uac', h: { Supported: 'timer', 'Session-Expires': '1000;refresher=both' }, want: [1000, 'uac'] },
  ];
  for (const c of cases) {
    const i = input(c.h, c.configured === undefined ? {} : { sessionExpires: c.configured });
    const timer = answerSessionTimer(i.original, i.sessionExpires);
    t.same(timer && [timer.interval, timer.refresher], c.want, c.name);
    const a = callerAnswer(i);
    const want = c.want;
    t.same(
      [values(a.headers, 'Supported'), values(a.headers, 'Require'), values(a.headers, 'Session-Expires')],
      want === null ? [[], [], []] : [['timer'], want[1] === 'uac' ? ['timer'] : [], [`${want[0]};refresher=${want[1]}`]],
      `${c.name}: headers`,
    );
  }
});

t.test('Contact bracketed once', async (t) => {
  t.same(values(callerAnswer(input({}, { contact: '<sip:b@h>' })).headers, 'Contact'), ['<sip:b@h>']);
});
