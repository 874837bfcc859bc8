// MSRP stack public types (RFC 4975, RFC 4976). The relay codes against these:
// changes here are additive only.
import type { Buffer } from 'node:buffer';
import type { X509Certificate } from 'node:crypto';

/** RFC 4975 §7.1.1 continuation flag on the end-line: `$` complete, `+` more, `#` abort. */
export type ContinuationFlag = '$' | '+' | '#';

/** One header in wire order. `name` keeps the wire spelling; match it case-insensitively. */
export interface MsrpHeader {
  name: string;
  value: string;
}

interface HeadBase {
  transactionId: string;
  /** All header lines in wire order (To-Path, From-Path, ...). */
  headers: MsrpHeader[];
  /** True when the header block was followed by a blank line, i.e. a body section exists (may be empty). */
  hasBody: boolean;
  /**
   * Raw bytes of the head exactly as received: start-line and header lines (each with CRLF),
   * plus the blank CRLF when hasBody. Empty for heads built in code.
   */
  raw: Buffer;
}

export interface RequestHead extends HeadBase {
  kind: 'request';
  /** SEND, REPORT, or any other token (unknown methods are kept). */
  method: string;
}

export interface ResponseHead extends HeadBase {
  kind: 'response';
  status: number;
  /** Optional reason text after the status code. */
  comment?: string;
}

export type FrameHead = RequestHead | ResponseHead;

/** A whole frame (one chunk, RFC 4975 §5.1), as produced by MsrpFrameParser or built for sending. */
export interface Frame {
  head: FrameHead;
  /** Body bytes (the data between the blank line and the CRLF before the end-line); empty when none. */
  body: Buffer;
  flag: ContinuationFlag;
}

/** Streaming parser events. Called synchronously from `feed()`, in wire order. */
export interface ParserHandler {
  frameStart(head: FrameHead): void;
  /** A slice of body bytes; pieces of one frame concatenate to its body. Never empty. */
  body(piece: Buffer): void;
  frameEnd(flag: ContinuationFlag): void;
}

export interface ParserLimits {
  /** Max start-line bytes including CRLF. Default 1024. */
  maxStartLine: number;
  /** Max bytes of the whole head (start-line + headers + blank line). Default 16384. */
  maxHeaderBlock: number;
  /** Max number of header lines. Default 64. */
  maxHeaders: number;
}

/** Stable parser/protocol error codes (MsrpError.code). */
export type MsrpErrorCode =
  | 'MSRP_START_LINE_TOO_LARGE'
  | 'MSRP_HEADER_TOO_LARGE'
  | 'MSRP_TOO_MANY_HEADERS'
  | 'MSRP_BAD_START_LINE'
  | 'MSRP_BAD_HEADER'
  | 'MSRP_BAD_ENCODING'
  | 'MSRP_BODY_TOO_LARGE'
  | 'MSRP_TRUNCATED'
  | 'MSRP_PARSER_FAILED'
  | 'MSRP_BAD_URI'
  | 'MSRP_BAD_BYTE_RANGE'
  | 'MSRP_BAD_STATUS'
  | 'MSRP_MISSING_HEADER'
  | 'MSRP_QUEUE_OVERFLOW'
  | 'MSRP_HEADER_TIMEOUT'
  | 'MSRP_IDLE_TIMEOUT'
  | 'MSRP_CONNECTION_CLOSED';

/** RFC 4975 §6 URI. Spelling is kept as received (compare with msrpUriEquals); IPv6 host without brackets. */
export interface MsrpUri {
  scheme: 'msrp' | 'msrps';
  user?: string;
  host: string;
  port?: number;
  /** Absent in relay URIs (RFC 4976). Case-sensitive. */
  sessionId?: string;
  /** `tcp` or another token, as received (compared case-insensitively). */
  transport: string;
  /** Extra `;name[=value]` parameters in order. */
  params: Array<{ name: string; value?: string }>;
}

/** RFC 4975 §9 Byte-Range: `start-end/total`, end and total may be `*`. 1-based, inclusive. */
export interface ByteRange {
  start: number;
  end: number | '*';
  total: number | '*';
}

/** RFC 4975 §9 Status header: `namespace SP code [SP comment]` (namespace 000). */
export interface StatusValue {
  namespace: number;
  code: number;
  comment?: string;
}

export type ReportMode = 'yes' | 'no' | 'partial';

/** Connection options (media/msrp/connection.ts). */
export interface ConnectionOptions {
  limits?: Partial<ParserLimits>;
  /**
   * Bound on bytes queued for output (socket writableLength + our queue). write() returns false
   * above `highWaterMark`; above `maxQueuedBytes` the connection is closed with
   * MSRP_QUEUE_OVERFLOW. Defaults: highWaterMark 256 KiB, maxQueuedBytes 4 MiB.
   */
  highWaterMark?: number;
  maxQueuedBytes?: number;
  /** Close if a frame head is not complete this long after its first byte. Default 10 s. 0 = off. */
  headerTimeoutMs?: number;
  /** Close after this long without any inbound byte. Default 0 = off. */
  idleTimeoutMs?: number;
  /**
   * Close if no frame head completes this long after the connection opened (a peer that
   * connects and stays silent). MsrpEndpoint uses headerTimeoutMs for accepted connections;
   * default 0 (off) for MsrpConnection.connect().
   */
  firstFrameTimeoutMs?: number;
}

/**
 * Per-session receiver registered on an MsrpEndpoint. Frames reach it once the
 * To-Path last URI's session-id matches (RFC 4975 §5.4).
 */
export interface SessionSink {
  /**
   * Return undefined (or nothing) to accept. Return a status (403/413/415/...) to refuse a request: the
   * endpoint answers it (Failure-Report permitting) and drops the rest of that frame.
   */
  frameStart(conn: MsrpConnectionLike, head: FrameHead): number | undefined;
  /**
   * Asked right after frameStart accepted a SEND: true when the sink answers it itself
   * (responseFor, later), so the endpoint sends no 200 at its end-line.
   */
  respondsItself?(conn: MsrpConnectionLike, head: FrameHead): boolean;
  body(conn: MsrpConnectionLike, piece: Buffer): void;
  frameEnd(conn: MsrpConnectionLike, head: FrameHead, flag: ContinuationFlag): void;
  /** The connection carrying this session closed (error set when abnormal). */
  connectionClosed?(conn: MsrpConnectionLike, err?: Error): void;
}

/** What the relay needs from a connection. Implemented by MsrpConnection. */
export interface MsrpConnectionLike {
  readonly id: string;
  /** Session-ids bound to this connection so far. */
  readonly sessions: ReadonlySet<string>;
  /** Queue bytes; false means "over high-water mark, wait for 'drain'". */
  write(data: Buffer): boolean;
  /** Serialize and write a whole frame. */
  sendFrame(frame: Frame): boolean;
  /** Current bytes waiting to go out (ours + socket's). */
  readonly queuedBytes: number;
  close(err?: Error): void;
  readonly closed: boolean;
  /** Stop / restart reading from the peer (read-side backpressure). */
  pause(): void;
  resume(): void;
  /** Hold writes until uncork() (coalescing); false once the connection is gone. */
  cork(): boolean;
  uncork(): void;
  on(event: 'drain', fn: () => void): this;
  on(event: 'close', fn: (err?: Error) => void): this;
  /** Over TLS: the certificate the peer presented (none: undefined); absent or undefined over TCP. */
  peerCertificate?(): X509Certificate | undefined;
}
