/**
 * The HEP3 codec (wire/hep3.ts): what Kamailio's siptrace sends and the relay's frame
 * trace writes. Round trips, then truncated and garbage packets: every one decodes to a
 * reason, none throws.
 */
import t from 'tap';
import { Buffer } from 'node:buffer';
import { decodeHep3, encodeHep3, HEP3_MAX_PAYLOAD, HEP_PROTO_MSRP, HEP_PROTO_SIP, type HepDecoded } from '../../../wire/hep3.js';

const SIP = Buffer.from('OPTIONS sip:127.0.0.1 SIP/2.0\r\nCall-ID: c1\r\n\r\n');

/** A chunk by hand: vendor, type, declared length, value. */
function chunk(vendor: number, type: number, value: Buffer, declared = value.length + 6): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt16BE(vendor, 0);
  h.writeUInt16BE(type, 2);
  h.writeUInt16BE(declared, 4);
  return Buffer.concat([h, value]);
}
function packet(chunks: Buffer[], total?: number, magic = 'HEP3'): Buffer {
  const body = Buffer.concat(chunks);
  const h = Buffer.alloc(6);
  h.write(magic, 0, 'latin1');
  h.writeUInt16BE(total ?? body.length + 6, 4);
  return Buffer.concat([h, body]);
}
const ok = (d: HepDecoded) => (d.ok ? d.packet : null);

t.test('round trip', async (t) => {
  const cases: Array<[string, Parameters<typeof encodeHep3>[0]]> = [
    ['SIP over UDP, as siptrace sends it', { srcIp: '127.0.0.1', dstIp: '127.0.0.2', srcPort: 5062, dstPort: 5060, ipProto: 17, timeMs: 1_700_000_000_123.456, protoType: HEP_PROTO_SIP, captureId: 1, payload: SIP }],
    ['MSRP without addresses, with a correlation id', { timeMs: 5.5, protoType: HEP_PROTO_MSRP, correlationId: 'abc@h', payload: Buffer.from('MSRP t1 SEND\r\n') }],
    ['empty payload', { timeMs: 0, protoType: 1, payload: Buffer.alloc(0) }],
  ];
  for (const [name, input] of cases) {
    const p = ok(decodeHep3(encodeHep3(input)));
    t.ok(p, `${name}: decodes`);
    if (!p) continue;
    t.equal(p.srcIp, input.srcIp ?? null, `${name}: source`);
    t.equal(p.dstIp, input.dstIp ?? null, `${name}: destination`);
    t.equal(p.srcPort, input.srcPort ?? null, `${name}: source port`);
    t.equal(p.dstPort, input.dstPort ?? null, `${name}: destination port`);
    t.equal(p.ipProto, input.ipProto ?? null, `${name}: IP protocol`);
    t.equal(p.family, input.srcIp ? 'ipv4' : null, `${name}: family`);
    t.ok(Math.abs((p.timeMs ?? NaN) - input.timeMs) < 0.002, `${name}: time to the microsecond`);
    t.equal(p.protoType, input.protoType, `${name}: protocol type`);
    t.equal(p.captureId, input.captureId ?? null, `${name}: capture id`);
    t.equal(p.correlationId, input.correlationId ?? null, `${name}: correlation id`);
    t.same(p.payload, input.payload, `${name}: payload`);
  }
  const big = ok(decodeHep3(encodeHep3({ timeMs: 1, protoType: 1, payload: Buffer.alloc(70_000, 0x41) })));
  t.equal(big?.payload?.length, HEP3_MAX_PAYLOAD, 'a payload too large for one packet is cut');
});

t.test('chunks the decoder reads, skips or ignores', async (t) => {
  const v6 = Buffer.from('20010db8000000000000000000000001', 'hex');
  const p = ok(decodeHep3(packet([
    chunk(0, 1, Buffer.from([10])), chunk(0, 5, v6), chunk(0, 6, v6),
    chunk(0x0002, 15, Buffer.from('vendor chunk: skipped')),
    chunk(0, 7, Buffer.from([1, 2, 3])), // wrong size for a port: ignored
    chunk(0, 99, Buffer.from('unknown type')),
    chunk(0, 15, SIP),
  ])));
  t.equal(p?.family, 'ipv6');
  t.equal(p?.srcIp, '2001:db8:0:0:0:0:0:1');
  t.equal(p?.srcPort, null, 'a port chunk of 3 bytes is ignored');
  t.same(p?.payload, SIP, 'the generic payload, not the vendor one');
  t.equal(p?.timeMs, null, 'no time chunk');
  const trailing = ok(decodeHep3(Buffer.concat([packet([chunk(0, 15, SIP)]), Buffer.from('after the declared length')])));
  t.same(trailing?.payload, SIP, 'bytes after the declared total length are not read');
});

t.test('bad packets give a reason', async (t) => {
  const good = packet([chunk(0, 11, Buffer.from([1])), chunk(0, 15, SIP)]);
  const cases: Array<[string, Buffer, string]> = [
    ['empty', Buffer.alloc(0), 'short'],
    ['five bytes', Buffer.from('HEP3\u0000'), 'short'],
    ['HEP2 magic', packet([chunk(0, 15, SIP)], undefined, 'HEP2'), 'not-hep3'],
    ['text', Buffer.from('INVITE sip:bob@example.net SIP/2.0\r\n'), 'not-hep3'],
    ['total length over the datagram', packet([chunk(0, 15, SIP)], 5000), 'bad-length'],
    ['total length under the header', packet([chunk(0, 15, SIP)], 3), 'bad-length'],
    ['chunk length under its header', packet([chunk(0, 15, SIP, 5)]), 'bad-chunk'],
    ['chunk length 0', packet([chunk(0, 15, SIP, 0)]), 'bad-chunk'],
    ['chunk past the total', packet([chunk(0, 15, SIP, SIP.length + 7)]), 'bad-chunk'],
    ['half a chunk header at the end', packet([chunk(0, 15, SIP), Buffer.from([0, 0, 0])]), 'bad-chunk'],
  ];
  for (const [name, buf, error] of cases) t.same(decodeHep3(buf), { ok: false, error }, name);
  // every truncation of a good packet: a reason (its total length says more than there is)
  for (let n = 0; n < good.length; n++) {
    const d = decodeHep3(good.subarray(0, n));
    if (d.ok) t.fail(`truncated to ${n} bytes decoded`);
  }
  t.pass('no truncation decodes');
});

t.test('garbage never throws', async (t) => {
  // a fixed generator: the same bytes every run
  let seed = 0x2545f491;
  const next = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  const good = encodeHep3({ srcIp: '127.0.0.1', dstIp: '127.0.0.1', srcPort: 1, dstPort: 2, ipProto: 17, timeMs: 1, protoType: 1, payload: SIP });
  let decoded = 0;
  for (let i = 0; i < 3000; i++) {
    let buf: Buffer;
    if (i % 2 === 0) {
      buf = Buffer.alloc(next() % 200);
      for (let j = 0; j < buf.length; j++) buf[j] = next() & 0xff;
      if (i % 4 === 0 && buf.length >= 6) buf.write('HEP3', 0, 'latin1');
    } else {
      buf = Buffer.from(good);
      for (let k = 0; k < 3; k++) buf[next() % buf.length] = next() & 0xff; // flip bytes of a good one
    }
    const d = decodeHep3(buf);
    if (d.ok) decoded++;
  }
  t.pass(`3000 garbage packets decoded without an exception (${decoded} still parsed)`);
});
