/**
 * Coordination-specific errors. They extend the shared classes (so `instanceof NotAuthorizedError`
 * and the stable `code` keep working) and are registered so that they cross thread boundaries intact.
 */
import { NotAuthorizedError, registerErrorClass } from '../shared/errors.js';

/**
 * A claim-holder action (report, fail, renew, start) carried a fencing token that is no longer the
 * task's current one: the claim expired, was released and the task was claimed again. The caller's
 * work must be discarded. Code: `CONVERGE_NOT_AUTHORIZED`.
 */
export class StaleClaimError extends NotAuthorizedError {
  readonly taskId: string;
  readonly fencingToken: number;
  readonly currentFencingToken: number;
  constructor(taskId: string, fencingToken: number, currentFencingToken: number) {
    super(
      `task ${JSON.stringify(taskId)}: fencing token ${fencingToken} is stale (current claim is ${currentFencingToken}); ` +
        'the claim expired and the task was claimed again, so this result must be discarded',
    );
    this.taskId = taskId;
    this.fencingToken = fencingToken;
    this.currentFencingToken = currentFencingToken;
  }
}

registerErrorClass(StaleClaimError);
