/**
 * HEP version 3 (the Homer encapsulation protocol), the capture format Kamailio's
 * siptrace module sends (`hep_mode_on`, `hep_version 3`; docs/lab.md "Live view"): what
 * the decision service's live view collects, and what the MSRP relay sends for its frames.
 *
 *   packet = "HEP3" | total length (u16) | chunk*
 *   chunk  = vendor id (u16) | type id (u16) | chunk length (u16, header included) | value
 *
 * All integers are network byte order. Generic chunks (vendor 0) used here:
 *
 *   1 IP family (u8: 2 IPv4, 10 IPv6)    2 IP protocol (u8: 6 TCP, 17 UDP)
 *   3/4 IPv4 source/destination (4 B)    5/6 IPv6 source/destination (16 B)
 *   7/8 source/destination port (u16)    9/10 time: seconds (u32), microseconds (u32)
 *   11 protocol type (u8: 1 SIP, 3 SDP)  12 capture agent id (u32)
 *   15 payload (bytes)                   17 correlation id (text)
 *
 * Other chunks (other vendors, compressed payloads, keep-alives) are skipped. Decoding is
 * pure and total: a packet that is not HEP3 or whose chunks do not fit gives a reason,
 * never an exception.
 */
import { Buffer } from 'node:buffer';

/** HEP3 protocol types of SIP and SDP. */
export const HEP_PROTO_SIP = 1;
export const HEP_PROTO_SDP = 3;
/**
 * MSRP has no protocol type in the published HEP list: this project's relay sends its
 * frames with this one (a private value; a Homer server would ignore them).
 */
export const HEP_PROTO_MSRP = 0xf1;

export interface HepPacket {
  readonly family: 'ipv4' | 'ipv6' | null;
  /** 6 TCP, 17 UDP, ... */
  readonly ipProto: number | null;
  readonly srcIp: string | null;
  readonly dstIp: string | null;
  readonly srcPort: number | null;
  readonly dstPort: number | null;
  /** Capture time, epoch ms with microseconds as the fraction; null when absent. */
  readonly timeMs: number | null;
  readonly protoType: number | null;
  readonly captureId: number | null;
  readonly correlationId: string | null;
  readonly payload: Buffer | null;
}

export type HepDecodeError = 'short' | 'not-hep3' | 'bad-length' | 'bad-chunk';

export type HepDecoded = { readonly ok: true; readonly packet: HepPacket } | { readonly ok: false; readonly error: HepDecodeError };

const HEADER = 6;
const MAGIC = 0x48455033; // "HEP3"

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(at + i).toString(16));
  return groups.join(':');
}

/** One HEP3 packet (one UDP datagram). */
export function decodeHep3(buf: Buffer): HepDecoded {
  if (buf.length < HEADER) return { ok: false, error: 'short' };
  if (buf.readUInt32BE(0) !== MAGIC) return { ok: false, error: 'not-hep3' };
  const total = buf.readUInt16BE(4);
  if (total < HEADER || total > buf.length) return { ok: false, error: 'bad-length' };
  let family: HepPacket['family'] = null;
  let ipProto: number | null = null;
  let srcIp: string | null = null;
  let dstIp: string | null = null;
  let srcPort: number | null = null;
  let dstPort: number | null = null;
  let sec: number | null = null;
  let usec = 0;
  let protoType: number | null = null;
  let captureId: number | null = null;
  let correlationId: string | null = null;
  let payload: Buffer | null = null;
  let at = HEADER;
  while (at < total) {
    if (at + HEADER > total) return { ok: false, error: 'bad-chunk' };
    const vendor = buf.readUInt16BE(at);
    const type = buf.readUInt16BE(at + 2);
    const len = buf.readUInt16BE(at + 4);
    if (len < HEADER || at + len > total) return { ok: false, error: 'bad-chunk' };
    const v = at + HEADER;
    const n = len - HEADER;
    at += len;
    if (vendor !== 0) continue;
    // a generic chunk of the wrong size is ignored, as an unknown one would be
    switch (type) {
      case 1:
        if (n === 1) family = buf[v] === 2 ? 'ipv4' : buf[v] === 10 ? 'ipv6' : null;
        break;
      case 2:
        if (n === 1) ipProto = buf[v]!;
        break;
      case 3:
        if (n === 4) srcIp = ipv4(buf, v);
        break;
      case 4:
        if (n === 4) dstIp = ipv4(buf, v);
        break;
      case 5:
        if (n === 16) srcIp = ipv6(buf, v);
        break;
      case 6:
        if (n === 16) dstIp = ipv6(buf, v);
        break;
      case 7:
        if (n === 2) srcPort = buf.readUInt16BE(v);
        break;
      case 8:
        if (n === 2) dstPort = buf.readUInt16BE(v);
        break;
      case 9:
        if (n === 4) sec = buf.readUInt32BE(v);
        break;
      case 10:
        if (n === 4) usec = buf.readUInt32BE(v);
        break;
      case 11:
        if (n === 1) protoType = buf[v]!;
        break;
      case 12:
        if (n === 4) captureId = buf.readUInt32BE(v);
        break;
      case 15:
        payload = buf.subarray(v, v + n);
        break;
      case 17:
        correlationId = buf.toString('utf8', v, v + n);
        break;
      default:
        break;
    }
  }
  const timeMs = sec === null ? null : sec * 1000 + Math.min(usec, 999_999) / 1000;
  return { ok: true, packet: { family, ipProto, srcIp, dstIp, srcPort, dstPort, timeMs, protoType, captureId, correlationId, payload } };
}

export interface HepEncodeInput {
  /** IPv4 dotted quads only (what the relay and the tests send). */
  readonly srcIp?: string;
  readonly dstIp?: string;
  readonly srcPort?: number;
  readonly dstPort?: number;
  /** 6 TCP, 17 UDP. */
  readonly ipProto?: number;
  readonly timeMs: number;
  readonly protoType: number;
  readonly captureId?: number;
  readonly correlationId?: string;
  readonly payload: Buffer;
}

function chunk(type: number, value: Buffer): Buffer {
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt16BE(0, 0);
  h.writeUInt16BE(type, 2);
  h.writeUInt16BE(HEADER + value.length, 4);
  return Buffer.concat([h, value]);
}

const u8 = (n: number): Buffer => Buffer.from([n & 0xff]);
const u16 = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n & 0xffff, 0);
  return b;
};
const u32 = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};
const quad = (ip: string): Buffer | null => {
  const p = ip.split('.').map(Number);
  return p.length === 4 && p.every((x) => Number.isInteger(x) && x >= 0 && x <= 255) ? Buffer.from(p) : null;
};

/** Largest payload that fits one packet with its other chunks (the total length is a u16). */
export const HEP3_MAX_PAYLOAD = 65_535 - 1024;

/** One HEP3 packet; the payload is cut to HEP3_MAX_PAYLOAD. */
export function encodeHep3(p: HepEncodeInput): Buffer {
  const chunks: Buffer[] = [];
  const src = p.srcIp === undefined ? null : quad(p.srcIp);
  const dst = p.dstIp === undefined ? null : quad(p.dstIp);
  if (src || dst) chunks.push(chunk(1, u8(2)));
  if (p.ipProto !== undefined) chunks.push(chunk(2, u8(p.ipProto)));
  if (src) chunks.push(chunk(3, src));
  if (dst) chunks.push(chunk(4, dst));
  if (p.srcPort !== undefined) chunks.push(chunk(7, u16(p.srcPort)));
  if (p.dstPort !== undefined) chunks.push(chunk(8, u16(p.dstPort)));
  const sec = Math.floor(p.timeMs / 1000);
  chunks.push(chunk(9, u32(sec)), chunk(10, u32(Math.round((p.timeMs - sec * 1000) * 1000))));
  chunks.push(chunk(11, u8(p.protoType)));
  if (p.captureId !== undefined) chunks.push(chunk(12, u32(p.captureId)));
  if (p.correlationId !== undefined) chunks.push(chunk(17, Buffer.from(p.correlationId.slice(0, 128), 'utf8')));
  chunks.push(chunk(15, p.payload.length > HEP3_MAX_PAYLOAD ? p.payload.subarray(0, HEP3_MAX_PAYLOAD) : p.payload));
  const body = Buffer.concat(chunks);
  const head = Buffer.allocUnsafe(HEADER);
  head.writeUInt32BE(MAGIC, 0);
  head.writeUInt16BE(HEADER + body.length, 4);
  return Buffer.concat([head, body]);
}
