// Second-user approval of response actions (issue 14; hub config `approvals`: block, remediate, watch,
// ticket; retro-remediation proposals): what every kind of request shares — the errors, and who counts as
// the requester.
import { ApiError } from '../api/errors.ts';

export class ApprovalError extends Error {
  readonly code:
    | 'not_pending'
    | 'approval_by_requester'
    | 'ticket_not_found'
    | 'watch_not_found'
    | 'action_not_found'
    | 'proposal_not_found';
  constructor(code: ApprovalError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

/** HTTP status of each approval error. */
export const APPROVAL_STATUS: Record<ApprovalError['code'], number> = {
  not_pending: 409,
  approval_by_requester: 403,
  ticket_not_found: 404,
  watch_not_found: 404,
  action_not_found: 404,
  proposal_not_found: 404,
};

/**
 * Whether `user` asked for a request recorded as made by `requester`: themselves, or through something
 * they set up (a ticket a watch of theirs opened is recorded as `watch:<user>`).
 */
export function requestedBy(requester: string, user: string): boolean {
  return requester === user || requester === `watch:${user}`;
}

/** An approval error as the API's answer (its status and stable code); anything else goes on as it is. */
export function asApiError(err: unknown): never {
  if (err instanceof ApprovalError) throw new ApiError(APPROVAL_STATUS[err.code], err.code, err.message);
  throw err;
}
