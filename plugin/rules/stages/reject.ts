/** Building rejection decisions (a SIP rejection is a value, not an exception: docs/architecture.md). */
import type { RejectDecision, Stage } from '../decision.js';
import { warningLine } from '../cpm.js';

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  480: 'Temporarily Unavailable',
  488: 'Not Acceptable Here',
};

export function reject(stage: Stage, code: number, pfHost: string | null, warning: string | null): RejectDecision {
  return {
    action: 'reject',
    code,
    reason: REASONS[code] ?? 'Rejected',
    hdrs: pfHost !== null && warning !== null ? warningLine(pfHost, warning) : '',
    stage,
  };
}
