/**
 * Public API of the coordination layer (DESIGN §5): tasks and their stores, pools, and the
 * negotiation, consensus, bidding and delegation protocols. Explicit exports only.
 *
 * Claiming, in short (a stable API; pool workers build on it):
 * - `TaskManager.submit(input)` / `submitMany(inputs)` (one statement or transaction for a burst);
 * - `claimTask(agent, id)` / `claim(agent, id)`: one task by id; `claimNext(agent, filter?)` → Task |
 *   null; `claimNext(agent, filter, { max })` → Task[]: up to `max` in claim order, one statement;
 * - each claimed Task carries `fencingToken`: pass it back to `report` / `failTask` / `renewClaim` /
 *   `startTask`, or in `settleMany(agent, [{ taskId, outcome, result, fencingToken }])`, which
 *   completes, fails and releases many claims in one statement, refusing stale ones one by one;
 * - a pooled task is visible and claimable only by the pool's members (give the TaskManager and the
 *   PoolManager one store, or pass the agent's pools as the filter's `poolIds`);
 * - `TaskClaimer`: a worker's local queue over all of that — batched claims refilled in the
 *   background, batched settlements (`complete` / `fail` / `release`), an idle wait woken by new
 *   tasks (LISTEN/NOTIFY on PostgreSQL), and `run(handler, { concurrency })`.
 */
export { TaskManager } from './task-manager.js';
export type { TaskManagerOptions, SubmitTaskInput, AgentTaskListOptions, HolderOptions, FailTaskOptions, ClaimBatchOptions, TaskSettlement } from './task-manager.js';
export { TaskClaimer } from './task-claimer.js';
export type { TaskClaimerOptions, ClaimerRunOptions, TaskClaimerStats } from './task-claimer.js';
export type { PendingWake } from './pending-wake.js';
export { TASK_STATES, TERMINAL_STATES, isTerminalState, isVisible, compareClaimOrder } from './task.js';
export type { Task, TaskState, TaskFilter, NewTask, ClaimHolder, Settlement, SettleOutcome } from './task.js';
export type { TaskStore, PoolStore, PoolRecord, PendingQuery, Awaitable, SettledAndClaimed } from './task-store.js';
export { MemoryStore } from './memory-store.js';
export type { MemoryStoreOptions } from './memory-store.js';
export { SqliteStore } from './sqlite-store.js';
export type { SqliteStoreOptions } from './sqlite-store.js';
export { PostgresStore } from './postgres-store.js';
export type { PostgresStoreOptions, PostgresPoolLike } from './postgres-store.js';
export { LeaderLock } from './leader-lock.js';
export type { LeaderLockOptions } from './leader-lock.js';
// The shared error classes a coordination caller can meet, so that `instanceof` checks need no
// second import (the same classes as the main entry's: one module, no database driver).
export {
  ClosedError,
  ConvergeError,
  DuplicateIdError,
  ErrorCode,
  InvalidStateError,
  NotAuthorizedError,
  NotFoundError,
  StoreError,
  TimeoutError,
  ValidationError,
} from '../shared/errors.js';
export type { ValidationIssue } from '../shared/errors.js';
export { StaleClaimError, StoreConnectionError, STORE_CONNECTION_CODE } from './errors.js';
export { MissingDependencyError, MISSING_DEPENDENCY_CODE } from './optional-deps.js';
export { PoolManager } from './pool-manager.js';
export type { Pool, PoolManagerOptions, CreatePoolInput, AdmissionPolicy, AdmissionContext, TrustProvider } from './pool-manager.js';
export { NegotiationProtocol } from './negotiation.js';
export type { NegotiationSession, NegotiationState, Proposal, NegotiationOptions } from './negotiation.js';
export { Consensus } from './consensus.js';
export type { Votes } from './consensus.js';
export { BiddingProtocol, AUCTION_TYPES } from './bidding.js';
export type { AuctionType, BiddingOptions, AuctionResult, AuctionStatus, Bid } from './bidding.js';
export { DelegationProtocol } from './delegation.js';
export type { Delegation, DelegationType, DelegateOptions, DelegationOptions } from './delegation.js';
