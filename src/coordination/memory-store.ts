/**
 * The default, in-process store. Every operation is one synchronous step on the event loop, which is
 * what makes it atomic: two managers sharing one MemoryStore see one truth, and of any number of
 * concurrent claimants in this process exactly one wins. It does not cross processes or threads; use
 * {@link SqliteStore} or {@link PostgresStore} for that.
 *
 * Built for the claim hot path (≥ 1 M submit → claimNext → report per second):
 * - pending tasks live in one binary heap per routing partition (pool, topic, required capabilities),
 *   so `claimNext` looks at the top of each partition it may see instead of scanning every task;
 * - a task is one mutable internal record for its whole life; callers get fresh snapshots, so no
 *   caller can change the store's state by mutating what it was given;
 * - heap entries are removed lazily: a record stays in its heap after a claim by id, a cancel or a
 *   failure and is skipped when it surfaces unless it is pending again. Its ordering key (priority,
 *   id) never changes, so a record released back to pending that is still in the heap is simply
 *   live again and is never pushed twice.
 *
 * Payloads and results are kept by reference, not copied.
 */
import { z } from 'zod';
import { ClosedError, DuplicateIdError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';
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
   * How many terminal tasks to remember for `getTask`/`waitUntilDone` (oldest forgotten first;
   * `Infinity` keeps all). Default 10 000: bounded so that a long-running process does not grow
   * without limit.
   */
  readonly maxFinishedTasks?: number;
}

const DEFAULT_MAX_FINISHED_TASKS = 10_000;
const OptionsSchema = z.object({
  maxFinishedTasks: z.union([z.number().int().min(0), z.literal(Number.POSITIVE_INFINITY)]).optional(),
});

/** A task's mutable internal state. Never handed out: callers get {@link snapshot}s. */
interface TaskRecord {
  readonly id: string;
  state: TaskState;
  readonly payload: unknown;
  result: unknown;
  readonly poolId: string | null;
  readonly topic: string | null;
  readonly requiredCapabilities: readonly string[];
  readonly priority: number;
  assignedTo: string | null;
  claimedAt: number | null;
  readonly claimTtlMs: number | null;
  attempts: number;
  fencingToken: number;
  /** Whether an entry for this record sits in its partition's heap. */
  inHeap: boolean;
}

interface Partition {
  readonly key: string;
  readonly poolId: string | null;
  readonly topic: string | null;
  readonly requiredCapabilities: readonly string[];
  readonly heap: BinaryHeap<TaskRecord>;
}

interface MemoryPool {
  readonly id: string;
  readonly topics: readonly string[];
  readonly trustThreshold: number | null;
  readonly hasAdmissionPolicy: boolean;
  readonly members: Set<string>;
}

/** In-process {@link TaskStore}. */
export class MemoryStore implements TaskStore {
  readonly kind = 'memory';
  readonly #tasks = new Map<string, TaskRecord>();
  readonly #claimed = new Set<TaskRecord>();
  readonly #partitions = new Map<string, Partition>();
  /** Tasks without pool, topic or required capabilities: visible to everyone, and the common case. */
  readonly #open: Partition = { key: '', poolId: null, topic: null, requiredCapabilities: [], heap: new BinaryHeap<TaskRecord>(compareClaimOrder) };
  readonly #finished: TaskRecord[] = [];
  #finishedHead = 0;
  readonly #maxFinished: number;
  readonly #waiters = new DoneWaiters();
  readonly #pools = new Map<string, MemoryPool>();
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    const { maxFinishedTasks } = parseInput(OptionsSchema, options, 'options');
    this.#maxFinished = maxFinishedTasks ?? DEFAULT_MAX_FINISHED_TASKS;
    this.#partitions.set('', this.#open);
  }

  insertTask(input: NewTask): Task {
    this.#assertOpen();
    if (this.#tasks.has(input.id)) throw new DuplicateIdError('task', input.id);
    return snapshot(this.#insert(input));
  }

  insertTasks(inputs: readonly NewTask[]): Task[] {
    this.#assertOpen();
    const seen = new Set<string>();
    for (const input of inputs) {
      if (this.#tasks.has(input.id) || seen.has(input.id)) throw new DuplicateIdError('task', input.id);
      seen.add(input.id);
    }
    return inputs.map((input) => snapshot(this.#insert(input)));
  }

  getTask(id: string): Task | null {
    this.#assertOpen();
    const record = this.#tasks.get(id);
    return record === undefined ? null : snapshot(record);
  }

  claimTask(id: string, agentId: string, nowMs: number): Task | null {
    this.#assertOpen();
    const record = this.#tasks.get(id);
    if (record === undefined || record.state !== 'pending') return null;
    return snapshot(this.#claim(record, agentId, nowMs));
  }

  claimNext(agentId: string, filter: TaskFilter, nowMs: number): Task | null {
    this.#assertOpen();
    if (this.#partitions.size === 1) {
      // Only the open partition exists: no filter can hide it, no comparison across heaps.
      const top = this.#liveTop(this.#open);
      if (top === undefined) return null;
      this.#open.heap.pop();
      top.inHeap = false;
      return snapshot(this.#claim(top, agentId, nowMs));
    }
    let best: TaskRecord | undefined;
    let bestPartition: Partition | undefined;
    for (const partition of this.#partitions.values()) {
      if (partition.key !== '' && !isVisible(partition.poolId, partition.topic, partition.requiredCapabilities, filter)) continue;
      const top = this.#liveTop(partition);
      if (top === undefined) continue;
      if (best === undefined || compareClaimOrder(top, best) < 0) {
        best = top;
        bestPartition = partition;
      }
    }
    if (best === undefined || bestPartition === undefined) return null;
    bestPartition.heap.pop();
    best.inHeap = false;
    return snapshot(this.#claim(best, agentId, nowMs));
  }

  startTask(id: string, holder: ClaimHolder): Task | null {
    this.#assertOpen();
    const record = this.#tasks.get(id);
    if (record === undefined) return null;
    const error = claimHolderError(record, holder);
    if (error !== null) throw error;
    record.state = 'running';
    return snapshot(record);
  }

  completeTask(id: string, holder: ClaimHolder, result: unknown): boolean {
    this.#assertOpen();
    const record = this.#tasks.get(id);
    if (record === undefined) return false;
    const error = claimHolderError(record, holder);
    if (error !== null) throw error;
    this.#finish(record, 'completed', result);
    return true;
  }

  failTask(id: string, reason: unknown, holder: ClaimHolder | undefined): boolean {
    this.#assertOpen();
    const record = this.#tasks.get(id);
    if (record === undefined) return false;
    const decision = failDecision(record, holder);
    if (decision === 'skip') return false;
    if (decision !== 'fail') throw decision;
    this.#finish(record, 'failed', reason);
    return true;
  }

  cancelTask(id: string): boolean {
    this.#assertOpen();
    const record = this.#tasks.get(id);
    if (record === undefined || isTerminalState(record.state)) return false;
    this.#finish(record, 'cancelled', record.result);
    return true;
  }

  renewClaim(id: string, holder: ClaimHolder, nowMs: number): Task | null {
    this.#assertOpen();
    const record = this.#tasks.get(id);
    if (record === undefined) return null;
    const error = claimHolderError(record, holder);
    if (error !== null) throw error;
    record.claimedAt = nowMs;
    return snapshot(record);
  }

  releaseExpiredClaims(nowMs: number): string[] {
    this.#assertOpen();
    const released: string[] = [];
    for (const record of this.#claimed) {
      if (!isClaimExpired(record, nowMs)) continue;
      this.#claimed.delete(record);
      record.state = 'pending';
      record.assignedTo = null;
      record.claimedAt = null;
      if (!record.inHeap) this.#enqueue(record);
      released.push(record.id);
    }
    return released;
  }

  listPendingTasks(query: PendingQuery): Task[] {
    this.#assertOpen();
    const out: Task[] = [];
    const filter = query.filter;
    for (const record of this.#tasks.values()) {
      if (record.state !== 'pending') continue;
      if (filter !== undefined && !isVisible(record.poolId, record.topic, record.requiredCapabilities, filter)) continue;
      out.push(snapshot(record));
    }
    if (query.sortByPriority) out.sort(compareClaimOrder);
    return out;
  }

  waitUntilDone(id: string, timeoutMs: number): Promise<Task | null> {
    if (this.#closed) return Promise.reject(new ClosedError('MemoryStore'));
    const record = this.#tasks.get(id);
    // Synchronous check-then-register: nothing can finish the task in between.
    if (record === undefined) return Promise.resolve(null);
    if (isTerminalState(record.state)) return Promise.resolve(snapshot(record));
    if (timeoutMs <= 0) return Promise.resolve(null);
    return this.#waiters.wait(id, timeoutMs).promise;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.closeAll('MemoryStore');
  }

  insertPool(pool: Omit<PoolRecord, 'members'>): PoolRecord {
    this.#assertOpen();
    if (this.#pools.has(pool.id)) throw new DuplicateIdError('pool', pool.id);
    const stored: MemoryPool = { id: pool.id, topics: pool.topics, trustThreshold: pool.trustThreshold, hasAdmissionPolicy: pool.hasAdmissionPolicy, members: new Set() };
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

  #insert(input: NewTask): TaskRecord {
    const record: TaskRecord = {
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
      inHeap: false,
    };
    this.#tasks.set(record.id, record);
    this.#enqueue(record);
    return record;
  }

  #claim(record: TaskRecord, agentId: string, nowMs: number): TaskRecord {
    record.state = 'assigned';
    record.assignedTo = agentId;
    record.claimedAt = nowMs;
    record.attempts += 1;
    record.fencingToken += 1;
    // Only claims that can expire need to be found by releaseExpiredClaims.
    if (record.claimTtlMs !== null) this.#claimed.add(record);
    return record;
  }

  #finish(record: TaskRecord, state: 'completed' | 'failed' | 'cancelled', result: unknown): void {
    record.state = state;
    record.result = result ?? null;
    if (record.claimTtlMs !== null) this.#claimed.delete(record);
    if (this.#waiters.size > 0) this.#waiters.notify(snapshot(record));
    this.#remember(record);
  }

  /** Records a terminal task and forgets the oldest ones beyond `maxFinishedTasks`. */
  #remember(record: TaskRecord): void {
    const finished = this.#finished;
    finished.push(record);
    while (finished.length - this.#finishedHead > this.#maxFinished) {
      const oldest = finished[this.#finishedHead];
      finished[this.#finishedHead++] = undefined as unknown as TaskRecord;
      // The map still holds `oldest` under its id: a terminal record is remembered once, and its id
      // cannot be taken by a new task until it is forgotten here.
      if (oldest !== undefined) this.#tasks.delete(oldest.id);
    }
    // Compact now and then instead of shifting on every eviction (O(n) each).
    if (this.#finishedHead >= 1024 && this.#finishedHead * 2 >= finished.length) {
      finished.splice(0, this.#finishedHead);
      this.#finishedHead = 0;
    }
  }

  #enqueue(record: TaskRecord): void {
    const caps = record.requiredCapabilities;
    const key = record.poolId === null && record.topic === null && caps.length === 0 ? '' : `${record.poolId ?? ''}\u0000${record.topic ?? ''}\u0000${caps.join('\u0000')}`;
    let partition = key === '' ? this.#open : this.#partitions.get(key);
    if (partition === undefined) {
      partition = { key, poolId: record.poolId, topic: record.topic, requiredCapabilities: caps, heap: new BinaryHeap<TaskRecord>(compareClaimOrder) };
      this.#partitions.set(key, partition);
    }
    partition.heap.push(record);
    record.inHeap = true;
  }

  /** The partition's best pending record, discarding entries that are no longer pending. */
  #liveTop(partition: Partition): TaskRecord | undefined {
    const heap = partition.heap;
    for (;;) {
      const top = heap.peek();
      if (top === undefined) {
        // Keep the default partition: it is the hot one, and recreating it would cost an allocation.
        if (partition.key !== '') this.#partitions.delete(partition.key);
        return undefined;
      }
      if (top.state === 'pending') return top;
      heap.pop();
      top.inHeap = false;
    }
  }
}

/** A caller's copy of a record. One literal with every field in one order: one hidden class. */
function snapshot(record: TaskRecord): Task {
  return {
    id: record.id,
    state: record.state,
    payload: record.payload,
    result: record.result,
    poolId: record.poolId,
    topic: record.topic,
    requiredCapabilities: record.requiredCapabilities,
    priority: record.priority,
    assignedTo: record.assignedTo,
    claimedAt: record.claimedAt,
    claimTtlMs: record.claimTtlMs,
    attempts: record.attempts,
    fencingToken: record.fencingToken,
  };
}

function poolRecord(pool: MemoryPool): PoolRecord {
  return { id: pool.id, topics: pool.topics, trustThreshold: pool.trustThreshold, hasAdmissionPolicy: pool.hasAdmissionPolicy, members: [...pool.members] };
}
