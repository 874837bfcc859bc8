// Session matching (RFC 4975 §5.4, §6.1) and the relay's SDP, as case tables.
import t from 'tap';
import { LoadPeer } from '../../../bench/msrp-load.js';
import { MsrpRelay } from '../../../media/relay/relay.js';
import { readMsrpMedia, relaySdp } from '../../../media/relay/sdp.js';
import { sdpFor } from './helpers.js';

t.test('relay SDP', async t => {
  const offer = sdpFor('msrp://a.example:7654/s1;tcp msrp://b.example:1/s2;tcp', 'actpass').replace('a=setup', 'a=max-size:2048\r\na=setup');
  const m = readMsrpMedia(offer);
  t.same(m.path, ['msrp://a.example:7654/s1;tcp', 'msrp://b.example:1/s2;tcp']);
  const out = relaySdp(offer, { host: '127.0.0.1', port: 2855, uri: 'msrp://127.0.0.1:2855/abc;tcp' });
  t.match(out, /^v=0\r\n/);
  t.match(out, /\r\nc=IN IP4 127\.0\.0\.1\r\n/);
  t.match(out, /\r\nm=message 2855 TCP\/MSRP \*\r\n/);
  t.match(out, /\r\na=path:msrp:\/\/127\.0\.0\.1:2855\/abc;tcp\r\n/);
  t.match(out, /\r\na=accept-types:message\/cpim application\/im-iscomposing\+xml\r\n/);
  t.match(out, /\r\na=accept-wrapped-types:text\/plain message\/imdn\+xml\r\n/);
  t.match(out, /\r\na=max-size:2048\r\n/);
  t.match(out, /\r\na=setup:passive\r\n$/);
  t.notMatch(out, /actpass|a\.example/);
  const cases: [string, string][] = [
    ['no m=message', 'v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n'],
    ['rejected stream', sdpFor('msrp://a:1/x;tcp').replace('m=message 9', 'm=message 0')],
    ['no a=path', sdpFor('msrp://a:1/x;tcp').replace(/a=path:[^\r]*\r\n/, '')],
  ];
  for (const [name, sdp] of cases) t.throws(() => readMsrpMedia(sdp), name);
});

t.test('the answer to a multi-stream offer declines every stream but the MSRP one (RFC 3264 §6)', async t => {
  const own = { host: '127.0.0.1', port: 2855, uri: 'msrp://127.0.0.1:2855/abc;tcp' };
  const chat = sdpFor('msrp://a.example:7654/s1;tcp', 'active');
  const [head, msrp] = chat.split(/(?=m=message)/) as [string, string];
  const offer = `${head}m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n${msrp}m=message 7655 TCP/MSRP *\r\na=path:msrp://a.example:7655/s2;tcp\r\na=file-selector:name:"f.jpg" type:image/jpeg size:10\r\n`;
  const answer = relaySdp(offer, own, 'passive', true);
  const ms = answer.split('\r\n').filter((l) => l.startsWith('m='));
  t.same(ms, ['m=audio 0 RTP/AVP 0 8', 'm=message 2855 TCP/MSRP *', 'm=message 0 TCP/MSRP *'], 'same m= lines, in order; only the first MSRP stream carried');
  t.match(answer, /m=message 2855 TCP\/MSRP \*\r\na=path:msrp:\/\/127\.0\.0\.1:2855\/abc;tcp\r\n/, 'its attributes follow its own m= line');
  t.notMatch(answer, /rtpmap|file-selector|a\.example/, 'nothing of the declined streams');
  const noOrigin = (sdp: string): string => sdp.replace(/^o=.*\r\n/m, '');
  t.equal(noOrigin(relaySdp(chat, own, 'passive', true)), noOrigin(relaySdp(chat, own, 'passive')), 'a one-stream offer: the same answer as before');
  t.equal(relaySdp(offer, own).split('\r\n').filter((l) => l.startsWith('m=')).length, 1, 'a device offer (not an answer) has the one stream');
});

t.test('frames matched to sessions and legs', async t => {
  const relay = new MsrpRelay({ port: 0 });
  const port = await relay.listen();
  const o = relay.offer({ 'call-id': 'm1', sdp: sdpFor('msrp://orig.example:5000/o1;tcp') });
  if (o.result !== 'ok') throw new Error('offer');
  relay.answer({ 'call-id': 'm1', leg: 'd1', sdp: sdpFor('msrp://Device.Example:6000/dev1;tcp') });
  relay.answer({ 'call-id': 'm1', leg: 'd2', sdp: sdpFor('msrp://10.0.0.9:6001/dev2;tcp') });
  relay.answer({ 'call-id': 'm1', leg: 'd3', sdp: sdpFor('msrp://Device3.Example:6000/dev3;tcp') });
  const origUri = o['relay-uri'];
  const devUri = o['device-relay-uri'];
  const sid = (u: string): string => /\/([^/;]+);tcp$/.exec(u)![1]!;
  const flipCase = (x: string): string => [...x].map(ch => (ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase())).join('');
  // A leg whose connection closed stays closed, so the refusals for dev1 come first.
  const cases: Array<{ name: string; to: string; from: string; method?: string; expect: number | null }> = [
    { name: 'unknown session', to: `msrp://127.0.0.1:${port}/nosuch;tcp`, from: 'msrp://x:1/y;tcp', expect: 481 },
    { name: 'session-id is case-sensitive', to: origUri.replace(sid(origUri), flipCase(sid(origUri))), from: 'msrp://x:1/y;tcp', expect: 481 },
    { name: 'relay URI not last in To-Path', to: `${origUri} msrp://other:1/zz;tcp`, from: 'msrp://x:1/y;tcp', expect: 481 },
    { name: 'device, other port', to: devUri, from: 'msrp://device.example:6001/dev1;tcp', expect: 481 },
    { name: 'device, other session-id', to: devUri, from: 'msrp://device.example:6000/DEV1;tcp', expect: 481 },
    { name: 'stranger on the device URI', to: devUri, from: 'msrp://evil.example:6000/dev1;tcp', expect: 481 },
    { name: 'originator side, relay URI', to: origUri, from: 'msrp://orig.example:5000/o1;tcp', expect: 200 },
    { name: 'device, exact From-Path', to: devUri, from: 'msrp://Device.Example:6000/dev1;tcp', expect: 200 },
    { name: 'device, host name case ignored', to: devUri, from: 'msrp://device3.example:6000/dev3;tcp', expect: 200 },
    { name: 'device via a relay: last From-Path URI counts', to: devUri, from: 'msrp://relay.example:9/r;tcp msrp://10.0.0.9:6001/dev2;tcp', expect: 200 },
    { name: 'closed leg stays closed', to: devUri, from: 'msrp://Device.Example:6000/dev1;tcp', expect: 481 },
    { name: 'unknown method', to: origUri, from: 'msrp://orig.example:5000/o1;tcp', method: 'FETCH', expect: 501 },
    { name: 'REPORT for unknown session: no response', to: `msrp://127.0.0.1:${port}/nosuch;tcp`, from: 'msrp://x:1/y;tcp', method: 'REPORT', expect: null },
  ];
  for (const c of cases) {
    const p = await LoadPeer.connect(port, () => c.from);
    const statuses: number[] = [];
    p.onFrame = f => {
      if (f.head.kind === 'response') statuses.push(f.head.status);
    };
    const tid = `tid${Math.random().toString(36).slice(2, 10)}`;
    // With a body: an empty SEND from a not-yet-answered device would be parked (200).
    p.write(`MSRP ${tid} ${c.method ?? 'SEND'}\r\nTo-Path: ${c.to}\r\nFrom-Path: ${c.from}\r\nMessage-ID: m${tid}\r\nByte-Range: 1-2/2\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------${tid}$\r\n`);
    // A second, valid frame to our own unknown session: its 481 proves the first was handled.
    const tid2 = `${tid}x`;
    p.write(`MSRP ${tid2} SEND\r\nTo-Path: msrp://127.0.0.1:${port}/fence;tcp\r\nFrom-Path: ${c.from}\r\nMessage-ID: f\r\nByte-Range: 1-0/0\r\n-------${tid2}$\r\n`);
    await p.until(() => statuses.length >= (c.expect === null ? 1 : 2), 5000, c.name);
    t.same(statuses, c.expect === null ? [481] : [c.expect, 481], c.name);
    p.close();
  }
  await relay.close();
});
