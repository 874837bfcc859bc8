// The relay's frames for the lab's live view (docs/lab.md "Live view"): each frame head
// the relay receives or writes, and the answer it gives, as one HEP3 packet over UDP
// (wire/hep3.ts, protocol type HEP_PROTO_MSRP) to the decision service's collector; and
// at `offer`, the session's two relay URIs as SDP (HEP protocol type 3) with the
// caller's Call-ID as correlation id, so the collector files the frames and the B2BUA's
// leg INVITEs (whose SDP names the device URI) under the caller's call. Off unless the
// relay's `trace-hep` is set: then the relay's modules call it, else nothing is built.
// Sending is fire-and-forget: a lost datagram costs a line of the view, never a frame.

import dgram from 'node:dgram';
import { responseFor, serializeFrame, serializeHead, type FrameHead } from '../msrp/index.js';
import { encodeHep3, HEP_PROTO_MSRP, HEP_PROTO_SDP } from '../../wire/hep3.js';
/** Bytes of a written frame kept: its head and the start of a body. */
const MAX_BYTES = 1024;

export interface FrameTrace {
  /** A relay session for the caller's call `callId`, with its relay URIs. */
  session(callId: string, uris: readonly string[]): void;
  /** A frame head from a peer; `status` is the sink's answer (undefined: taken). */
  received(head: FrameHead, status: number | undefined): void;
  /** The first buffer of a frame written to a peer. */
  sent(first: Buffer): void;
}

export class HepFrameTrace implements FrameTrace {
  private readonly socket: dgram.Socket;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    this.socket.on('error', () => {}); // a collector that is not there costs nothing
    this.socket.unref();
  }

  private send(protoType: number, payload: Buffer, correlationId?: string): void {
    const packet = encodeHep3({ timeMs: performance.timeOrigin + performance.now(), protoType, payload, ipProto: 6, ...(correlationId === undefined ? {} : { correlationId }) });
    this.socket.send(packet, this.port, this.host);
  }

  session(callId: string, uris: readonly string[]): void {
    this.send(HEP_PROTO_SDP, Buffer.from(uris.map((u) => `a=path:${u}\r\n`).join(''), 'utf8'), callId);
  }

  received(head: FrameHead, status: number | undefined): void {
    this.send(HEP_PROTO_MSRP, head.raw.length > 0 ? head.raw.subarray(0, MAX_BYTES) : serializeHead(head));
    // what the endpoint answers (media/msrp/endpoint.ts): the sink's status, or 200 to a taken SEND
    if (head.kind !== 'request' || (status === undefined && head.method !== 'SEND')) return;
    const res = responseFor(head, status ?? 200);
    if (res) this.send(HEP_PROTO_MSRP, serializeFrame(res));
  }

  sent(first: Buffer): void {
    this.send(HEP_PROTO_MSRP, first.subarray(0, MAX_BYTES));
  }

  close(): void {
    this.socket.close();
  }
}
