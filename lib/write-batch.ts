/**
 * Coalesces the writes of one event-loop turn into one socket write.
 *
 * Under load a process answers many messages per turn: the B2BUA's SIP to Kamailio, the
 * JSON-RPC answers to janssonrpcc, the relay's control verbs. Written one by one, each is
 * a write(2) on a loopback socket, and the profile of the B2BUA at its highest rate had a
 * quarter of the service's CPU in those calls (docs/benchmarks.md §8). Here the texts are
 * kept until `setImmediate` (after the I/O callbacks of this turn, before the next poll),
 * then go out as one string: the bytes and their order on the wire are the same, only the
 * number of system calls changes. At low load a batch is one message, sent in the same
 * loop turn.
 */
export class WriteBatch {
  #parts: string[] = [];
  #bytes = 0;
  #scheduled: NodeJS.Immediate | null = null;

  /** `sink` writes the joined text; `parts` are the messages in it, in order. */
  constructor(private readonly sink: (text: string, parts: readonly string[]) => void) {}

  /** Messages waiting. */
  get size(): number {
    return this.#parts.length;
  }

  /** UTF-8 bytes waiting, as given to `add`. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Queue one message; `bytes` its UTF-8 length when the caller knows it (for `bytes`). */
  add(text: string, bytes = 0): void {
    this.#parts.push(text);
    this.#bytes += bytes;
    this.#scheduled ??= setImmediate(this.flush);
  }

  /** Write what waits now (also run by the scheduled turn). */
  readonly flush = (): void => {
    if (this.#scheduled !== null) clearImmediate(this.#scheduled);
    this.#scheduled = null;
    const parts = this.#parts;
    if (parts.length === 0) return;
    this.#parts = [];
    this.#bytes = 0;
    this.sink(parts.length === 1 ? parts[0]! : parts.join(''), parts);
  };

  /** Forget what waits and return it (a connection gone before the turn ended). */
  take(): string[] {
    if (this.#scheduled !== null) clearImmediate(this.#scheduled);
    this.#scheduled = null;
    const parts = this.#parts;
    this.#parts = [];
    this.#bytes = 0;
    return parts;
  }
}
