/**
 * The default, in-process store. Every operation is one synchronous step on the event loop, which is
 * what makes it atomic: two managers sharing one MemoryStore see one truth, and of any number of
 * concurrent claimants in this process exactly one wins. It does not cross processes or threads; use
 * {@link SqliteStore} or {@link PostgresStore} for that.
 *
 * Pending tasks live in one binary heap per routing partition (pool, topic, required capabilities), so
 * `claimNext` looks at the top of each partition it may see instead of scanning every pending task.
 * Heap entries are removed lazily: an entry is live only while it is still the task's current
 * (pending) snapshot, so a task claimed by id, cancelled or failed is skipped when it surfaces.
 *
 * Payloads and results are kept by reference, not copied.
 */
import { ClosedError, DuplicateIdError } from '../shared/errors.js';
import { BinaryHeap } from './binary-heap.js';
import { DoneWaiters } from './done-waiters.js';
import {
  claimHolderError,
  compareClaimOrder,
  failDecision,
  isClaimExpired,
  isTerminalState,
  isVisible,
  type ClaimHolder,
  type NewTask,
  type Task,
  type TaskFilter,
  type TaskState,
} from './task.js';
import type { PendingQuery, PoolRecord, TaskStore } from './task-store.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * How many terminal tasks to remember (oldest forgotten first). Default 100 000: enough for
   * `getTask`/`waitUntilDone` after completion, bounded so that a long-running process does not grow
   * without limit.
   */
  readonly maxFinishedTasks?: number;
}

const DEFAULT_MAX_FINISHED_TASKS = 100_000;

interface Partition {
  readonly key: string;
  readonly poolId: string | null;
  readonly topic: string | null;
  readonly requiredCapabilities: readonly string[];
  readonly heap: BinaryHeap<Task>;
}

interface MemoryPool {
  readonly id: string;
  readonly topics: readonly string[];
  readonly trustThreshold: number | null;
  readonly hasAdmissionPolicy: boolean;
  readonly createdAt: number;
  readonly members: Set<string>;
}

/** In-process {@link TaskStore}. */
export class MemoryStore implements TaskStore {
  readonly kind = 'memory';
  readonly #tasks = new Map<string, Task>();
  readonly #claimed = new Set<string>();
  readonly #partitions = new Map<string, Partition>();
  readonly #finished: string[] = [];
  #finishedHead = 0;
  readonly #maxFinished: number;
  readonly #waiters = new DoneWaiters();
  readonly #pools = new Map<string, MemoryPool>();
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    const max = options.maxFinishedTasks ?? DEFAULT_MAX_FINISHED_TASKS;
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`maxFinishedTasks must be a non-negative integer, got ${String(max)}`);
    this.#maxFinished = max;
  }

  insertTask(input: NewTask): Task {
    this.#assertOpen();
    if (this.#tasks.has(input.id)) throw new DuplicateIdError('task', input.id);
    const task = pendingTask(input);
    this.#tasks.set(task.id, task);
    this.#enqueue(task);
    return task;
  }

  insertTasks(inputs: readonly NewTask[]): Task[] {
    this.#assertOpen();
    const seen = new Set<string>();
    for (const input of inputs) {
      if (this.#tasks.has(input.id) || seen.has(input.id)) throw new DuplicateIdError('task', input.id);
      seen.add(input.id);
    }
    return inputs.map((input) => this.insertTask(input));
  }

  getTask(id: string): Task | null {
    this.#assertOpen();
    return this.#tasks.get(id) ?? null;
  }

  claimTask(id: string, agentId: string, nowMs: number): Task | null {
    this.#assertOpen();
    const task = this.#tasks.get(id);
    if (task === undefined || task.state !== 'pending') return null;
    // The heap entry for `task` goes stale by replacement; claimNext skips it.
    return this.#claim(task, agentId, nowMs);
  }

  claimNext(agentId: string, filter: TaskFilter, nowMs: number): Task | null {
    this.#assertOpen();
    let best: Task | undefined;
    let bestPartition: Partition | undefined;
    for (const partition of this.#partitions.values()) {
      if (!isVisible(partition.poolId, partition.topic, partition.requiredCapabilities, filter)) continue;
      const top = this.#liveTop(partition);
      if (top === undefined) continue;
      if (best === undefined || compareClaimOrder(top, best) < 0) {
        best = top;
        bestPartition = partition;
      }
    }
    if (best === undefined || bestPartition === undefined) return null;
    bestPartition.heap.pop();
    return this.#claim(best, agentId, nowMs);
  }

  startTask(id: string, holder: ClaimHolder, nowMs: number): Task | null {
    this.#assertOpen();
    const task = this.#tasks.get(id);
    if (task === undefined) return null;
    const error = claimHolderError(task, holder);
    if (error !== null) throw error;
    if (task.state === 'running') return task;
    return this.#replace(task, 'running', task.result, task.assignedTo, task.claimedAt, nowMs);
  }

  completeTask(id: string, holder: ClaimHolder, result: unknown, nowMs: number): Task | null {
    this.#assertOpen();
    const task = this.#tasks.get(id);
    if (task === undefined) return null;
    const error = claimHolderError(task, holder);
    if (error !== null) throw error;
    return this.#finish(task, 'completed', result, nowMs);
  }

  failTask(id: string, reason: unknown, holder: ClaimHolder | undefined, nowMs: number): boolean {
    this.#assertOpen();
    const task = this.#tasks.get(id);
    if (task === undefined) return false;
    const decision = failDecision(task, holder);
    if (decision === 'skip') return false;
    if (decision !== 'fail') throw decision;
    this.#finish(task, 'failed', reason, nowMs);
    return true;
  }

  cancelTask(id: string, nowMs: number): boolean {
    this.#assertOpen();
    const task = this.#tasks.get(id);
    if (task === undefined || isTerminalState(task.state)) return false;
    this.#finish(task, 'cancelled', task.result, nowMs);
    return true;
  }

  renewClaim(id: string, holder: ClaimHolder, nowMs: number): Task | null {
    this.#assertOpen();
    const task = this.#tasks.get(id);
    if (task === undefined) return null;
    const error = claimHolderError(task, holder);
    if (error !== null) throw error;
    return this.#replace(task, task.state, task.result, task.assignedTo, nowMs, nowMs);
  }

  releaseExpiredClaims(nowMs: number): string[] {
    this.#assertOpen();
    const released: string[] = [];
    for (const id of this.#claimed) {
      const task = this.#tasks.get(id);
      if (task === undefined || !isClaimExpired(task, nowMs)) continue;
      this.#claimed.delete(id);
      const pending = this.#replace(task, 'pending', null, null, null, nowMs);
      this.#enqueue(pending);
      released.push(id);
    }
    return released;
  }

  listPendingTasks(query: PendingQuery): Task[] {
    this.#assertOpen();
    const out: Task[] = [];
    const filter = query.filter;
    for (const task of this.#tasks.values()) {
      if (task.state !== 'pending') continue;
      if (filter !== undefined && !isVisible(task.poolId, task.topic, task.requiredCapabilities, filter)) continue;
      out.push(task);
    }
    if (query.sortByPriority) out.sort(compareClaimOrder);
    return out;
  }

  waitUntilDone(id: string, timeoutMs: number): Promise<Task | null> {
    try {
      this.#assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    const task = this.#tasks.get(id);
    // Synchronous check-then-register: nothing can finish the task in between.
    if (task === undefined) return Promise.resolve(null);
    if (isTerminalState(task.state)) return Promise.resolve(task);
    if (timeoutMs <= 0) return Promise.resolve(null);
    return this.#waiters.wait(id, timeoutMs);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.closeAll('MemoryStore');
  }

  insertPool(pool: Omit<PoolRecord, 'members'>): PoolRecord {
    this.#assertOpen();
    if (this.#pools.has(pool.id)) throw new DuplicateIdError('pool', pool.id);
    const stored: MemoryPool = { ...pool, members: new Set() };
    this.#pools.set(pool.id, stored);
    return poolRecord(stored);
  }

  getPool(id: string): PoolRecord | null {
    this.#assertOpen();
    const pool = this.#pools.get(id);
    return pool === undefined ? null : poolRecord(pool);
  }

  listPools(): PoolRecord[] {
    this.#assertOpen();
    return [...this.#pools.values()].map(poolRecord);
  }

  addPoolMember(poolId: string, agentId: string): boolean {
    this.#assertOpen();
    const pool = this.#pools.get(poolId);
    if (pool === undefined) return false;
    pool.members.add(agentId);
    return true;
  }

  removePoolMember(poolId: string, agentId: string): boolean {
    this.#assertOpen();
    return this.#pools.get(poolId)?.members.delete(agentId) ?? false;
  }

  getPoolsForAgent(agentId: string): string[] {
    this.#assertOpen();
    const out: string[] = [];
    for (const pool of this.#pools.values()) if (pool.members.has(agentId)) out.push(pool.id);
    return out;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('MemoryStore');
  }

  #claim(task: Task, agentId: string, nowMs: number): Task {
    const claimed = makeTask(task, 'assigned', null, agentId, nowMs, task.attempts + 1, task.fencingToken + 1, nowMs);
    this.#tasks.set(claimed.id, claimed);
    this.#claimed.add(claimed.id);
    return claimed;
  }

  #replace(task: Task, state: TaskState, result: unknown, assignedTo: string | null, claimedAt: number | null, nowMs: number): Task {
    const next = makeTask(task, state, result, assignedTo, claimedAt, task.attempts, task.fencingToken, nowMs);
    this.#tasks.set(next.id, next);
    return next;
  }

  #finish(task: Task, state: 'completed' | 'failed' | 'cancelled', result: unknown, nowMs: number): Task {
    const done = this.#replace(task, state, result, task.assignedTo, task.claimedAt, nowMs);
    this.#claimed.delete(done.id);
    this.#waiters.notify(done);
    this.#remember(done.id);
    return done;
  }

  /** Records a terminal task and forgets the oldest ones beyond `maxFinishedTasks`. */
  #remember(id: string): void {
    const finished = this.#finished;
    finished.push(id);
    while (finished.length - this.#finishedHead > this.#maxFinished) {
      const oldest = finished[this.#finishedHead++];
      if (oldest !== undefined) this.#tasks.delete(oldest);
    }
    // Compact the queue now and then instead of shifting on every eviction (O(n) each).
    if (this.#finishedHead > 4096 && this.#finishedHead * 2 > finished.length) {
      finished.splice(0, this.#finishedHead);
      this.#finishedHead = 0;
    }
  }

  #enqueue(task: Task): void {
    const caps = task.requiredCapabilities;
    const key = task.poolId === null && task.topic === null && caps.length === 0 ? '' : `${task.poolId ?? ''}\u0000${task.topic ?? ''}\u0000${caps.join('\u0000')}`;
    let partition = this.#partitions.get(key);
    if (partition === undefined) {
      partition = { key, poolId: task.poolId, topic: task.topic, requiredCapabilities: caps, heap: new BinaryHeap<Task>(compareClaimOrder) };
      this.#partitions.set(key, partition);
    }
    partition.heap.push(task);
  }

  /** The partition's best live entry, discarding stale ones; drops the partition once it is empty. */
  #liveTop(partition: Partition): Task | undefined {
    const heap = partition.heap;
    for (;;) {
      const top = heap.peek();
      if (top === undefined) {
        // Keep the default partition: it is the hot one and recreating it costs an allocation.
        if (partition.key !== '') this.#partitions.delete(partition.key);
        return undefined;
      }
      if (this.#tasks.get(top.id) === top) return top;
      heap.pop();
    }
  }
}

function pendingTask(input: NewTask): Task {
  return Object.freeze<Task>({
    id: input.id,
    state: 'pending',
    payload: input.payload,
    result: null,
    poolId: input.poolId,
    topic: input.topic,
    requiredCapabilities: input.requiredCapabilities,
    priority: input.priority,
    assignedTo: null,
    claimedAt: null,
    claimTtlMs: input.claimTtlMs,
    attempts: 0,
    fencingToken: 0,
    createdAt: input.createdAt,
    updatedAt: input.createdAt,
  });
}

// One object literal with every field in one order keeps all task snapshots on one hidden class.
function makeTask(
  from: Task,
  state: TaskState,
  result: unknown,
  assignedTo: string | null,
  claimedAt: number | null,
  attempts: number,
  fencingToken: number,
  updatedAt: number,
): Task {
  return Object.freeze<Task>({
    id: from.id,
    state,
    payload: from.payload,
    result: result ?? null,
    poolId: from.poolId,
    topic: from.topic,
    requiredCapabilities: from.requiredCapabilities,
    priority: from.priority,
    assignedTo,
    claimedAt,
    claimTtlMs: from.claimTtlMs,
    attempts,
    fencingToken,
    createdAt: from.createdAt,
    updatedAt,
  });
}

function poolRecord(pool: MemoryPool): PoolRecord {
  return Object.freeze({
    id: pool.id,
    topics: pool.topics,
    trustThreshold: pool.trustThreshold,
    hasAdmissionPolicy: pool.hasAdmissionPolicy,
    members: Object.freeze([...pool.members]),
    createdAt: pool.createdAt,
  });
}
