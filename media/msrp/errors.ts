import type { MsrpErrorCode, MsrpHeader } from './types.js';

/** What a parser knew when it failed: enough to answer 400 when paths were already read. */
export interface PartialHead {
  transactionId: string;
  method?: string;
  headers: MsrpHeader[];
}

/** Every error the stack raises on purpose carries a stable code. */
export class MsrpError extends Error {
  readonly code: MsrpErrorCode;
  readonly transactionId?: string;
  readonly partialHead?: PartialHead;

  constructor(code: MsrpErrorCode, message: string, partialHead?: PartialHead) {
    super(message);
    this.name = 'MsrpError';
    this.code = code;
    if (partialHead !== undefined) {
      this.partialHead = partialHead;
      this.transactionId = partialHead.transactionId;
    }
  }
}
