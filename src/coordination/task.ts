/**
 * The task record every store keeps, and the pure rules about it that all stores share: which states
 * are terminal, who may see a pending task, the claim order, and whether a caller still holds a claim.
 */
import { InvalidStateError, NotAuthorizedError } from '../shared/errors.js';
import { StaleClaimError } from './errors.js';

/** Lifecycle of a task. `assigned` and `running` are the two claimed states. */
export type TaskState = 'pending' | 'assigned' | 'running' | 'completed' | 'failed' | 'cancelled';

/** Every state, in lifecycle order. */
export const TASK_STATES: readonly TaskState[] = Object.freeze(['pending', 'assigned', 'running', 'completed', 'failed', 'cancelled']);

/** States a task never leaves. */
export const TERMINAL_STATES: readonly TaskState[] = Object.freeze(['completed', 'failed', 'cancelled']);

/**
 * An immutable snapshot of a task as the store held it when the call returned.
 *
 * `fencingToken` is the claim generation: 0 before the first claim, and one higher on every claim.
 * A claimant keeps the token it got from `claimNext`/`claimTask` and passes it back to `report`,
 * `failTask`, `renewClaim` and `startTask`; once its claim has expired and the task has been claimed
 * again, the token no longer matches and the call is refused with `StaleClaimError` (a
 * `NotAuthorizedError`), so a result can never be recorded twice.
 */
export interface Task<P = unknown, R = unknown> {
  readonly id: string;
  readonly state: TaskState;
  /** What the submitter asked for. Must be a JSON value for the SQLite and PostgreSQL stores. */
  readonly payload: P;
  /** The reported result (completed), the failure reason (failed), otherwise null. */
  readonly result: R | null;
  readonly poolId: string | null;
  readonly topic: string | null;
  readonly requiredCapabilities: readonly string[];
  /** Higher is claimed first. A 32-bit signed integer. */
  readonly priority: number;
  /** The claimant, kept after completion or failure for the record; cleared when a claim is released. */
  readonly assignedTo: string | null;
  /** Epoch ms of the claim (or of its last renewal); null when not claimed. */
  readonly claimedAt: number | null;
  /** How long a claim lives without renewal; null means it never expires. */
  readonly claimTtlMs: number | null;
  /** Number of times the task has been claimed. */
  readonly attempts: number;
  /** The current claim generation (see the interface comment). */
  readonly fencingToken: number;
}

/** What a store needs to create a task; the manager fills every default. */
export interface NewTask {
  readonly id: string;
  readonly payload: unknown;
  readonly poolId: string | null;
  readonly topic: string | null;
  readonly requiredCapabilities: readonly string[];
  readonly priority: number;
  readonly claimTtlMs: number | null;
}

/**
 * Which pending tasks an agent may see or claim. An absent field applies no filter (the caller
 * vouches for the agent); a present one restricts:
 * - `poolIds`: a task with a pool is visible only when its pool is listed; a task without one always is.
 *   Absent, a task with a pool is visible only to the members the store knows (pools made by a
 *   PoolManager on the same store); present, the list stands for the agent's memberships (the pools
 *   may live elsewhere), so the store's membership is not consulted;
 * - `capabilities`: a task's required capabilities must all be listed;
 * - `topics`: a task with a topic is visible only when its topic is listed; a task without one always
 *   is, unless `topicRequired` is true (then only tasks whose topic is listed are: a worker that must
 *   never take another system's tasks).
 */
export interface TaskFilter {
  readonly poolIds?: readonly string[] | undefined;
  readonly capabilities?: readonly string[] | undefined;
  readonly topics?: readonly string[] | undefined;
  readonly topicRequired?: boolean | undefined;
}

/** Who claims to hold a task's claim: the agent, and optionally the fencing token it was given. */
export interface ClaimHolder {
  readonly agentId: string;
  readonly fencingToken?: number | undefined;
}

/** The snapshot of a task just inserted from `task`. */
export function pendingTask(task: NewTask): Task {
  return {
    id: task.id,
    state: 'pending',
    payload: task.payload,
    result: null,
    poolId: task.poolId,
    topic: task.topic,
    requiredCapabilities: task.requiredCapabilities,
    priority: task.priority,
    assignedTo: null,
    claimedAt: null,
    claimTtlMs: task.claimTtlMs,
    attempts: 0,
    fencingToken: 0,
  };
}

/** True for completed, failed and cancelled. */
export function isTerminalState(state: TaskState): boolean {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}

/** True for the two claimed states. */
export function isClaimedState(state: TaskState): boolean {
  return state === 'assigned' || state === 'running';
}

/** Whether a task with these routing fields is visible under `filter` (see {@link TaskFilter}). */
export function isVisible(
  poolId: string | null,
  topic: string | null,
  requiredCapabilities: readonly string[],
  filter: TaskFilter,
): boolean {
  if (poolId !== null && filter.poolIds !== undefined && !filter.poolIds.includes(poolId)) return false;
  if (filter.topics !== undefined && (topic === null ? filter.topicRequired === true : !filter.topics.includes(topic))) return false;
  const capabilities = filter.capabilities;
  if (capabilities !== undefined) {
    for (const required of requiredCapabilities) if (!capabilities.includes(required)) return false;
  }
  return true;
}

/** Claim order: higher priority first, then smaller id (ids are time-ordered, so FIFO by default). */
export function compareClaimOrder(a: Pick<Task, 'priority' | 'id'>, b: Pick<Task, 'priority' | 'id'>): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** True when a claimed task's claim has outlived its TTL at `nowMs`. */
export function isClaimExpired(task: Pick<Task, 'state' | 'claimedAt' | 'claimTtlMs'>, nowMs: number): boolean {
  return isClaimedState(task.state) && task.claimTtlMs !== null && task.claimedAt !== null && task.claimedAt + task.claimTtlMs <= nowMs;
}

/**
 * The error for a caller that acts on `task` as `holder` but does not hold its claim, or null when it
 * does. Shared by every store so that all of them refuse in the same way and in the same order:
 * a stale fencing token first, then another agent, then a task that is no longer claimed.
 */
export function claimHolderError(task: Pick<Task, 'id' | 'state' | 'assignedTo' | 'fencingToken'>, holder: ClaimHolder): Error | null {
  return claimHolderErrorOf(task, holder.agentId, holder.fencingToken);
}

/** {@link claimHolderError} with the holder's fields as arguments (no holder object on the hot path). */
export function claimHolderErrorOf(task: Pick<Task, 'id' | 'state' | 'assignedTo' | 'fencingToken'>, agentId: string, fencingToken: number | undefined): Error | null {
  if (fencingToken !== undefined && fencingToken !== task.fencingToken) {
    return new StaleClaimError(task.id, fencingToken, task.fencingToken);
  }
  if (task.assignedTo !== agentId) {
    return new NotAuthorizedError(
      task.assignedTo === null
        ? `agent ${JSON.stringify(agentId)} does not hold task ${JSON.stringify(task.id)}: it is ${task.state} and unassigned`
        : `agent ${JSON.stringify(agentId)} does not hold task ${JSON.stringify(task.id)}: it is assigned to ${JSON.stringify(task.assignedTo)}`,
    );
  }
  if (!isClaimedState(task.state)) {
    return new InvalidStateError(`task ${JSON.stringify(task.id)} is already ${task.state}`);
  }
  return null;
}

/**
 * What `failTask` does to `task`: fail it, skip it (already terminal: returns false), or refuse with
 * the error. Without a holder anyone may fail a live task (a system-level failure); with one, only the
 * holder may, and a holder whose task already finished gets `'skip'` rather than an error.
 */
export function failDecision(task: Pick<Task, 'id' | 'state' | 'assignedTo' | 'fencingToken'>, holder: ClaimHolder | undefined): 'fail' | 'skip' | Error {
  if (holder === undefined) return isTerminalState(task.state) ? 'skip' : 'fail';
  const error = claimHolderError(task, holder);
  if (error === null) return 'fail';
  return error instanceof InvalidStateError ? 'skip' : error;
}

/**
 * One claim to settle in a batch (`TaskStore.settleTasks`): complete it with `result`, fail it with
 * `result` as the reason, or release it back to pending (a claimer handing back a task it has not
 * started). Checked against `fencingToken` like the single calls.
 */
export interface Settlement {
  readonly id: string;
  readonly fencingToken?: number | undefined;
  readonly state: 'completed' | 'failed' | 'pending';
  /** The result (completed) or the reason (failed); ignored for pending. */
  readonly result: unknown;
}

/**
 * What became of one {@link Settlement}: true when applied; false when there was nothing to do (an
 * unknown id, or a failure or release of a task that already finished); otherwise the error that
 * refuses it (`StaleClaimError`, `NotAuthorizedError`, `InvalidStateError`), exactly as the single
 * call (`report`, `failTask`) would have thrown it.
 */
export type SettleOutcome = boolean | Error;

/** The outcome {@link Settlement} `item` by `agentId` would have on `task`, or `'apply'` when it may be applied. */
export function settleDecision(task: Pick<Task, 'id' | 'state' | 'assignedTo' | 'fencingToken'>, agentId: string, item: Settlement): 'apply' | SettleOutcome {
  if (item.state === 'completed') return claimHolderErrorOf(task, agentId, item.fencingToken) ?? 'apply';
  const decision = failDecision(task, { agentId, fencingToken: item.fencingToken });
  return decision === 'fail' ? 'apply' : decision === 'skip' ? false : decision;
}
