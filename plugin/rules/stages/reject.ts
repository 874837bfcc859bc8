/** Building rejection decisions (a SIP rejection is a value, not an exception: docs/architecture.md). */
import type { Decision, RejectDecision, Stage } from '../decision.js';
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

/**
 * Policy `diagnosticWarning` (docs/policy.md): a rejection without a Warning gets
 * `Warning: 399 <pfHost> "<stage>"`; every other decision is returned as is. The CR
 * gives these rejections no Warning (e.g. step 4 and step 6: a bare 480).
 */
export function withDiagnosticWarning(decision: Decision, pfHost: string): Decision {
  if (decision.action !== 'reject' || /^Warning:/im.test(decision.hdrs)) return decision;
  return { ...decision, hdrs: decision.hdrs + warningLine(pfHost, decision.stage) };
}
