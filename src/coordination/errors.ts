/**
 * Coordination-specific errors. They extend the shared classes (so `instanceof NotAuthorizedError`
 * and the stable `code` keep working) and are registered so that they cross thread boundaries intact.
 */
import { NotAuthorizedError, StoreError, registerErrorClass } from '../shared/errors.js';

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

/** Code of {@link StoreConnectionError}. */
export const STORE_CONNECTION_CODE = 'CONVERGE_STORE_CONNECTION';

/**
 * A store could not reach its database: the connection was refused, the host is unknown, the
 * server did not answer within `connectTimeoutMs`, it refused the login, or the connection broke.
 * Nothing was written by the failed call. A `StoreError` (so `instanceof StoreError` still
 * catches it) with its own code: `CONVERGE_STORE_CONNECTION`. `cause` holds the driver's error.
 */
export class StoreConnectionError extends StoreError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    (this as { code: string }).code = STORE_CONNECTION_CODE;
  }
}

registerErrorClass(StoreConnectionError);
