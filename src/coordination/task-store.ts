/**
 * The persistence contract behind {@link TaskManager} and {@link PoolManager}. Every state change a
 * store offers is atomic inside the store: a claim is a single conditional update (memory: one
 * synchronous step; SQLite: a `BEGIN IMMEDIATE` transaction; PostgreSQL: `UPDATE … WHERE state =
 * 'pending'` / `FOR UPDATE SKIP LOCKED`), so any number of managers, threads or processes sharing a
 * store see one truth and exactly one claimant wins.
 *
 * Stores trust their inputs: the managers validate and fill defaults before calling them. Methods may
 * return a plain value instead of a promise (the memory store does, to keep the hot path free of
 * allocations); callers always `await` them.
 */
import type { PendingWake } from './pending-wake.js';
import type { ClaimHolder, NewTask, SettleOutcome, Settlement, Task, TaskFilter } from './task.js';

/** A value or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

/** What to list from the pending tasks. */
export interface PendingQuery {
  readonly filter?: TaskFilter | undefined;
  /**
   * Only tasks this agent may see: a task with a pool only if the agent is a member (as the store
   * knows it, unless `filter.poolIds` is given: see {@link TaskFilter}). Absent: every task.
   */
  readonly agentId?: string | undefined;
  /** true: (−priority, id). false: submission order. */
  readonly sortByPriority: boolean;
}

/** Task persistence. */
export interface TaskStore extends PoolStore {
  /** `'memory' | 'sqlite' | 'postgres'` or a third-party name; for diagnostics. */
  readonly kind: string;
  /**
   * Creates a task in `pending`. A taken id → `DuplicateIdError`. `poolId` may name a pool the store
   * does not know (pools may be managed on another store): it is kept as given.
   */
  insertTask(task: NewTask): Awaitable<Task>;
  /** Creates all tasks or none. A taken or repeated id → `DuplicateIdError`. */
  insertTasks(tasks: readonly NewTask[]): Awaitable<Task[]>;
  getTask(id: string): Awaitable<Task | null>;
  /**
   * Claims `id` for `agentId` if and only if it is pending and visible to the agent: a task with a
   * pool only for the pool's members as this store knows them (DESIGN §5).
   */
  claimTask(id: string, agentId: string, nowMs: number): Awaitable<Task | null>;
  /**
   * Batched `claimTask`: claims each of `ids` that is pending and visible to the agent, in one step
   * (PostgreSQL: one statement; SQLite: one transaction). Returns one entry per id, in order: the
   * claimed task, or null. Ids are distinct. Optional: the TaskManager falls back to `claimTask` per id.
   */
  claimTasks?(ids: readonly string[], agentId: string, nowMs: number): Awaitable<(Task | null)[]>;
  /**
   * Claims the first pending task in claim order that `filter` lets through and the agent may see
   * (a pooled task only for members: those of `filter.poolIds` when given, else as the store knows
   * them), or returns null.
   */
  claimNext(agentId: string, filter: TaskFilter, nowMs: number): Awaitable<Task | null>;
  /**
   * Batched `claimNext`: claims up to `max` visible pending tasks in claim order, in one atomic step
   * (PostgreSQL: one statement with `FOR UPDATE SKIP LOCKED`; SQLite: one transaction). Returns them
   * in claim order; fewer (or none) when fewer are free. Optional for third-party stores: the
   * TaskManager falls back to repeated `claimNext`.
   */
  claimNextBatch?(agentId: string, filter: TaskFilter, nowMs: number, max: number): Awaitable<Task[]>;
  /**
   * Settles many of `agentId`'s claims in one step (PostgreSQL: one statement; SQLite: one
   * transaction), each checked against its fencing token exactly as `completeTask` / `failTask`
   * would check it: a refused one gets its error in the outcomes and does not affect the others.
   * Returns one outcome per item, in order. Item ids are distinct. Optional: the TaskManager falls
   * back to one call per item.
   */
  settleTasks?(agentId: string, items: readonly Settlement[]): Awaitable<SettleOutcome[]>;
  /**
   * `settleTasks(agentId, items)` then `claimNextBatch(agentId, filter, nowMs, max)` in one round
   * trip and one transaction (PostgreSQL: one statement), so that a busy claimer's completions ride
   * on its next claim. Each settlement is decided exactly as `settleTasks` decides it. Optional: the
   * TaskManager falls back to the two calls.
   */
  settleAndClaimNext?(agentId: string, items: readonly Settlement[], filter: TaskFilter, nowMs: number, max: number): Awaitable<SettledAndClaimed>;
  /**
   * Arms a wake for an idle claimer (see {@link PendingWake}): it fires when tasks may have become
   * pending, and after `timeoutMs` at the latest. Optional: without it, idle claimers poll.
   */
  pendingWake?(timeoutMs: number): PendingWake;
  /** assigned → running for the holder. Unknown id → null. Not the holder → throws (see `claimHolderError`). */
  startTask(id: string, holder: ClaimHolder): Awaitable<Task | null>;
  /** claimed → completed with `result`; true. Unknown id → false. Not the holder → throws. */
  completeTask(id: string, holder: ClaimHolder, result: unknown): Awaitable<boolean>;
  /**
   * Non-terminal → failed with `reason` as the result. With a holder, only the holder may fail it
   * (throws otherwise); without, anyone may. Unknown or already terminal → false.
   */
  failTask(id: string, reason: unknown, holder: ClaimHolder | undefined): Awaitable<boolean>;
  /** Non-terminal → cancelled. Unknown or terminal → false. */
  cancelTask(id: string): Awaitable<boolean>;
  /** Restarts the holder's claim TTL from `nowMs`. Unknown id → null. Not the holder → throws. */
  renewClaim(id: string, holder: ClaimHolder, nowMs: number): Awaitable<Task | null>;
  /** Every claimed task whose TTL has run out at `nowMs` goes back to pending, unassigned. Returns their ids. */
  releaseExpiredClaims(nowMs: number): Awaitable<string[]>;
  listPendingTasks(query: PendingQuery): Awaitable<Task[]>;
  /** Resolves with the task once it is terminal (at once if it already is), null on timeout or unknown id. */
  waitUntilDone(id: string, timeoutMs: number): Promise<Task | null>;
  /** Releases connections and timers; idempotent. Later calls reject with `ClosedError`. */
  close(): Promise<void>;
}

/** What {@link TaskStore.settleAndClaimNext} returns: one outcome per settlement, in order, and the tasks claimed. */
export interface SettledAndClaimed {
  readonly outcomes: SettleOutcome[];
  readonly tasks: Task[];
}

/** A pool as stored. Admission policies and trust providers are functions and live in the manager. */
export interface PoolRecord {
  readonly id: string;
  readonly topics: readonly string[];
  readonly trustThreshold: number | null;
  /** Whether the pool was created with an admission policy (managers without it refuse joins). */
  readonly hasAdmissionPolicy: boolean;
  /** Agent ids in join order. */
  readonly members: readonly string[];
}

/** Pool persistence; implemented by every TaskStore so that one store holds one deployment's state. */
export interface PoolStore {
  /** A taken id → `DuplicateIdError`. */
  insertPool(pool: Omit<PoolRecord, 'members'>): Awaitable<PoolRecord>;
  getPool(id: string): Awaitable<PoolRecord | null>;
  /** In creation order. */
  listPools(): Awaitable<PoolRecord[]>;
  /** false when the pool does not exist; true when the agent is (now or already) a member. */
  addPoolMember(poolId: string, agentId: string): Awaitable<boolean>;
  /** true when the agent was a member. */
  removePoolMember(poolId: string, agentId: string): Awaitable<boolean>;
  /** Ids of the pools the agent belongs to, in pool creation order. */
  getPoolsForAgent(agentId: string): Awaitable<string[]>;
}
