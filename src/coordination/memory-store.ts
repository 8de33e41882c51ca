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
 *   caller can change the store's state by mutating what it was given; records of forgotten
 *   finished tasks are reused for new ones (fewer survivors for the young-generation GC to copy);
 * - heap entries are removed lazily: a record stays in its heap after a claim by id, a cancel or a
 *   failure and is skipped when it surfaces unless it is pending again. Its ordering key (priority,
 *   id) never changes, so a record released back to pending that is still in the heap is simply
 *   live again and is never pushed twice. A record still in a heap is never reused;
 * - tasks are found by id without hashing the id in the common case: generated ids end in a
 *   per-process counter, which indexes a direct-mapped table (see `#slots`); other ids, and the
 *   rare keyed id whose slot is taken, go to an ordinary map;
 * - generated ids with the same head (everything before the counter) are ordered by their counters
 *   as numbers, which is the same order as comparing the strings.
 *
 * Payloads and results are kept by reference, not copied.
 */
import { z } from 'zod';
import { ClosedError, DuplicateIdError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';
import { BinaryHeap } from './binary-heap.js';
import { DoneWaiters } from './done-waiters.js';
import { PendingWakers, type PendingWake } from './pending-wake.js';
import {
  claimHolderError,
  claimHolderErrorOf,
  compareClaimOrder,
  failDecision,
  isClaimExpired,
  isTerminalState,
  isVisible,
  settleDecision,
  type ClaimHolder,
  type SettleOutcome,
  type Settlement,
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
const OptionsSchema = z.strictObject({
  maxFinishedTasks: z.union([z.number().int().min(0), z.literal(Number.POSITIVE_INFINITY)]).optional(),
});

/**
 * A task's mutable internal state. Never handed out: callers get {@link snapshot}s. Every field is
 * writable because records are recycled: a record forgotten by the finished-task retention (and no
 * longer referenced by a heap) is reused for the next inserted task instead of becoming garbage.
 */
interface TaskRecord {
  id: string;
  state: TaskState;
  payload: unknown;
  result: unknown;
  poolId: string | null;
  topic: string | null;
  requiredCapabilities: readonly string[];
  priority: number;
  assignedTo: string | null;
  claimedAt: number | null;
  claimTtlMs: number | null;
  attempts: number;
  fencingToken: number;
  /** Whether an entry for this record sits in its partition's heap. */
  inHeap: boolean;
  /** The id's {@link suffixKey}, or -1. */
  key: number;
  /** Where the record is indexed: ≥ 0 its index in `#slots`, else {@link IN_BY_ID}. */
  slot: number;
  /** Insertion sequence number: submission order across the indexes. */
  order: number;
  /**
   * For an id made by `newId`, its head (`lastIdHead()`: everything before the counter digits);
   * null for any other id. Two ids with the same head sort as their counters, which are their
   * suffix keys.
   */
  head: string | null;
}

/**
 * Claim order ({@link compareClaimOrder}) of two records. Ids with the same generated head are
 * compared by their counters (numbers) instead of character by character; the result is the same.
 */
function compareRecords(a: TaskRecord, b: TaskRecord): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.head !== null && a.head === b.head) return a.key - b.key;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** `slot` of a record in `#byId`. */
const IN_BY_ID = -2;
/** Digits of an id's numeric suffix used as its key: 9, so that every key is a small integer. */
const SUFFIX_DIGITS = 9;
const INITIAL_SLOTS = 1024;

/**
 * The index key of an id that ends in at least {@link SUFFIX_DIGITS} ASCII digits and is longer than
 * that (every generated id: the digits are its per-process counter), else -1. Reading a few
 * characters and keying a map by a small integer costs far less than hashing a fresh 28-character
 * string, which is what a string-keyed map does once per new id.
 */
function suffixKey(id: string): number {
  const length = id.length;
  if (length <= SUFFIX_DIGITS) return -1;
  let key = 0;
  for (let index = length - SUFFIX_DIGITS; index < length; index++) {
    const digit = id.charCodeAt(index) - 48;
    if (digit < 0 || digit > 9) return -1;
    key = key * 10 + digit;
  }
  return key;
}

/** At most this many forgotten records are kept for reuse. */
const MAX_SPARE_RECORDS = 1024;

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
  /**
   * Every task the store knows, in one of two indexes. A record whose id has a numeric suffix key
   * (see {@link suffixKey}; every generated id has one, and consecutive ids have consecutive keys)
   * lives in `#slots`, a direct-mapped table indexed by `key & (length - 1)`, when its slot is free:
   * no hashing, and a stream of submitted tasks visits the slots in order like a ring buffer. Any
   * other record lives in `#byId`. A lookup checks the id's slot, comparing the whole id, and then
   * `#byId`, which it skips for a keyed id while no keyed record is there (`#keyedInById`).
   */
  #slots: (TaskRecord | undefined)[] = new Array<TaskRecord | undefined>(INITIAL_SLOTS).fill(undefined);
  #slotsUsed = 0;
  /** How many records in `#byId` have a suffix key (their slot was taken when they came). */
  #keyedInById = 0;
  readonly #byId = new Map<string, TaskRecord>();
  #insertions = 0;
  readonly #claimed = new Set<TaskRecord>();
  readonly #partitions = new Map<string, Partition>();
  /** Tasks without pool, topic or required capabilities: visible to everyone, and the common case. */
  readonly #open: Partition = { key: '', poolId: null, topic: null, requiredCapabilities: [], heap: new BinaryHeap<TaskRecord>(compareRecords) };
  readonly #finished: TaskRecord[] = [];
  #finishedHead = 0;
  /** Forgotten records ready for reuse (see {@link TaskRecord}). */
  readonly #spare: TaskRecord[] = [];
  readonly #maxFinished: number;
  readonly #waiters = new DoneWaiters();
  readonly #wakers = new PendingWakers();
  readonly #pools = new Map<string, MemoryPool>();
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    const { maxFinishedTasks } = parseInput(OptionsSchema, options, 'options');
    this.#maxFinished = maxFinishedTasks ?? DEFAULT_MAX_FINISHED_TASKS;
    this.#partitions.set('', this.#open);
  }

  insertTask(input: NewTask): Task {
    this.#assertOpen();
    const key = suffixKey(input.id);
    if (this.#find(input.id, key) !== undefined) throw new DuplicateIdError('task', input.id);
    return snapshot(this.#insert(input.id, key, null, input.payload, input.poolId, input.topic, input.requiredCapabilities, input.priority, input.claimTtlMs));
  }

  /**
   * {@link insertTask} with the task's fields as arguments: the TaskManager's fast path, which
   * saves building a {@link NewTask} per submit. Same contract; the caller has validated and
   * normalised every field. `head`: `lastIdHead()` when the caller made `id` with `newId` just
   * now, else null.
   * @internal
   */
  insertTaskFields(
    id: string,
    head: string | null,
    payload: unknown,
    poolId: string | null,
    topic: string | null,
    requiredCapabilities: readonly string[],
    priority: number,
    claimTtlMs: number | null,
  ): Task {
    this.#assertOpen();
    const key = suffixKey(id);
    if (this.#find(id, key) !== undefined) throw new DuplicateIdError('task', id);
    return snapshot(this.#insert(id, key, head, payload, poolId, topic, requiredCapabilities, priority, claimTtlMs));
  }

  insertTasks(inputs: readonly NewTask[]): Task[] {
    this.#assertOpen();
    const seen = new Set<string>();
    for (const input of inputs) {
      if (this.#lookup(input.id) !== undefined || seen.has(input.id)) throw new DuplicateIdError('task', input.id);
      seen.add(input.id);
    }
    return inputs.map((input) => snapshot(this.#insert(input.id, suffixKey(input.id), null, input.payload, input.poolId, input.topic, input.requiredCapabilities, input.priority, input.claimTtlMs)));
  }

  getTask(id: string): Task | null {
    this.#assertOpen();
    const record = this.#lookup(id);
    return record === undefined ? null : snapshot(record);
  }

  claimTask(id: string, agentId: string, nowMs: number): Task | null {
    this.#assertOpen();
    const record = this.#lookup(id);
    if (record === undefined || record.state !== 'pending') return null;
    if (record.poolId !== null && !this.#isMember(record.poolId, agentId)) return null;
    return snapshot(this.#claim(record, agentId, nowMs));
  }

  /** claimTask for each id, in one synchronous step. */
  claimTasks(ids: readonly string[], agentId: string, nowMs: number): (Task | null)[] {
    this.#assertOpen();
    return ids.map((id) => this.claimTask(id, agentId, nowMs));
  }

  claimNext(agentId: string, filter: TaskFilter, nowMs: number): Task | null {
    this.#assertOpen();
    const record = this.#claimNextRecord(agentId, filter, nowMs);
    return record === undefined ? null : snapshot(record);
  }

  /** Up to `max` claimNext in one synchronous step. */
  claimNextBatch(agentId: string, filter: TaskFilter, nowMs: number, max: number): Task[] {
    this.#assertOpen();
    const out: Task[] = [];
    for (let i = 0; i < max; i++) {
      const record = this.#claimNextRecord(agentId, filter, nowMs);
      if (record === undefined) break;
      out.push(snapshot(record));
    }
    return out;
  }

  settleTasks(agentId: string, items: readonly Settlement[]): SettleOutcome[] {
    this.#assertOpen();
    const outcomes: SettleOutcome[] = [];
    for (const item of items) {
      const record = this.#lookup(item.id);
      if (record === undefined) {
        outcomes.push(false);
        continue;
      }
      const decision = settleDecision(record, agentId, item);
      if (decision !== 'apply') {
        outcomes.push(decision);
        continue;
      }
      if (item.state === 'pending') this.#release(record);
      else this.#finish(record, item.state, item.result);
      outcomes.push(true);
    }
    return outcomes;
  }

  pendingWake(timeoutMs: number): PendingWake {
    return this.#wakers.arm(timeoutMs, this.#closed ? Promise.reject(new ClosedError('MemoryStore')) : undefined);
  }

  #claimNextRecord(agentId: string, filter: TaskFilter, nowMs: number): TaskRecord | undefined {
    // Tasks without pool, topic or capabilities (the open partition) are visible to every filter
    // but one that requires a topic.
    const openVisible = filter.topicRequired !== true || filter.topics === undefined;
    if (this.#partitions.size === 1) {
      if (!openVisible) return undefined;
      // Only the open partition exists: no filter can hide it, no comparison across heaps.
      const top = this.#liveTop(this.#open);
      if (top === undefined) return undefined;
      this.#open.heap.pop();
      top.inHeap = false;
      return this.#claim(top, agentId, nowMs);
    }
    let best: TaskRecord | undefined;
    let bestPartition: Partition | undefined;
    for (const partition of this.#partitions.values()) {
      if (partition.key === '') {
        if (!openVisible) continue;
      } else {
        if (!isVisible(partition.poolId, partition.topic, partition.requiredCapabilities, filter)) continue;
        if (partition.poolId !== null && filter.poolIds === undefined && !this.#isMember(partition.poolId, agentId)) continue;
      }
      const top = this.#liveTop(partition);
      if (top === undefined) continue;
      if (best === undefined || compareRecords(top, best) < 0) {
        best = top;
        bestPartition = partition;
      }
    }
    if (best === undefined || bestPartition === undefined) return undefined;
    bestPartition.heap.pop();
    best.inHeap = false;
    return this.#claim(best, agentId, nowMs);
  }

  startTask(id: string, holder: ClaimHolder): Task | null {
    this.#assertOpen();
    const record = this.#lookup(id);
    if (record === undefined) return null;
    const error = claimHolderError(record, holder);
    if (error !== null) throw error;
    record.state = 'running';
    return snapshot(record);
  }

  completeTask(id: string, holder: ClaimHolder, result: unknown): boolean {
    return this.completeTaskAs(id, holder.agentId, holder.fencingToken, result);
  }

  /**
   * {@link completeTask} with the holder's fields as arguments (the TaskManager's fast path, which
   * saves a holder object per report).
   * @internal
   */
  completeTaskAs(id: string, agentId: string, fencingToken: number | undefined, result: unknown): boolean {
    this.#assertOpen();
    const record = this.#lookup(id);
    if (record === undefined) return false;
    const error = claimHolderErrorOf(record, agentId, fencingToken);
    if (error !== null) throw error;
    this.#finish(record, 'completed', result);
    return true;
  }

  failTask(id: string, reason: unknown, holder: ClaimHolder | undefined): boolean {
    this.#assertOpen();
    const record = this.#lookup(id);
    if (record === undefined) return false;
    const decision = failDecision(record, holder);
    if (decision === 'skip') return false;
    if (decision !== 'fail') throw decision;
    this.#finish(record, 'failed', reason);
    return true;
  }

  cancelTask(id: string): boolean {
    this.#assertOpen();
    const record = this.#lookup(id);
    if (record === undefined || isTerminalState(record.state)) return false;
    this.#finish(record, 'cancelled', record.result);
    return true;
  }

  renewClaim(id: string, holder: ClaimHolder, nowMs: number): Task | null {
    this.#assertOpen();
    const record = this.#lookup(id);
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
      this.#release(record);
      released.push(record.id);
    }
    return released;
  }

  listPendingTasks(query: PendingQuery): Task[] {
    this.#assertOpen();
    const out: Task[] = [];
    const filter = query.filter;
    const agentId = query.agentId;
    for (const record of this.#records()) {
      if (record.state !== 'pending') continue;
      if (agentId !== undefined && record.poolId !== null && filter?.poolIds === undefined && !this.#isMember(record.poolId, agentId)) continue;
      if (filter !== undefined && !isVisible(record.poolId, record.topic, record.requiredCapabilities, filter)) continue;
      out.push(snapshot(record));
    }
    if (query.sortByPriority) out.sort(compareClaimOrder);
    return out;
  }

  waitUntilDone(id: string, timeoutMs: number): Promise<Task | null> {
    if (this.#closed) return Promise.reject(new ClosedError('MemoryStore'));
    const record = this.#lookup(id);
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
    this.#wakers.notify();
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

  /**
   * DESIGN §5: a task with a pool is visible only to the pool's members: those listed in a filter's
   * `poolIds` when one is given, else those this store knows (see {@link TaskFilter}).
   */
  #isMember(poolId: string, agentId: string): boolean {
    return this.#pools.get(poolId)?.members.has(agentId) === true;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('MemoryStore');
  }

  /** Every record, in insertion order. */
  #records(): TaskRecord[] {
    const all: TaskRecord[] = [];
    for (const record of this.#slots) if (record !== undefined) all.push(record);
    for (const record of this.#byId.values()) all.push(record);
    return all.sort((a, b) => a.order - b.order);
  }

  /** The record of `id`, or undefined. */
  #lookup(id: string): TaskRecord | undefined {
    return this.#find(id, suffixKey(id));
  }

  /** The record of `id`, whose {@link suffixKey} is `key`, or undefined. */
  #find(id: string, key: number): TaskRecord | undefined {
    if (key >= 0) {
      const slots = this.#slots;
      const record = slots[key & (slots.length - 1)];
      if (record !== undefined && record.id === id) return record;
      if (this.#keyedInById === 0) return undefined;
    }
    return this.#byId.get(id);
  }

  /** Adds a record whose id is not taken, and whose id's {@link suffixKey} is `key`, to an index. */
  #index(record: TaskRecord, key: number): void {
    record.key = key;
    if (key >= 0) {
      let slots = this.#slots;
      if (slots[key & (slots.length - 1)] !== undefined && this.#slotsUsed * 2 >= slots.length) slots = this.#resizeSlots(slots.length * 2);
      const slot = key & (slots.length - 1);
      if (slots[slot] === undefined) {
        slots[slot] = record;
        record.slot = slot;
        this.#slotsUsed += 1;
        return;
      }
      this.#keyedInById += 1;
    }
    this.#byId.set(record.id, record);
    record.slot = IN_BY_ID;
  }

  #unindex(record: TaskRecord): void {
    if (record.slot >= 0) {
      const slots = this.#slots;
      slots[record.slot] = undefined;
      this.#slotsUsed -= 1;
      // Give the memory of a past burst back (hysteresis: the table grows at half full).
      if (slots.length > INITIAL_SLOTS && this.#slotsUsed * 8 < slots.length) this.#resizeSlots(slots.length / 2);
      return;
    }
    this.#byId.delete(record.id);
    if (record.key >= 0) this.#keyedInById -= 1;
  }

  /**
   * Rebuilds the slot table with `length` slots. A slot record that now collides moves to `#byId`;
   * a keyed record in `#byId` whose slot is free now moves in.
   */
  #resizeSlots(length: number): (TaskRecord | undefined)[] {
    const old = this.#slots;
    const slots = new Array<TaskRecord | undefined>(length).fill(undefined);
    const mask = length - 1;
    this.#slots = slots;
    this.#slotsUsed = 0;
    for (const record of old) {
      if (record === undefined) continue;
      const slot = record.key & mask;
      if (slots[slot] === undefined) {
        slots[slot] = record;
        record.slot = slot;
        this.#slotsUsed += 1;
      } else {
        this.#byId.set(record.id, record);
        record.slot = IN_BY_ID;
        this.#keyedInById += 1;
      }
    }
    if (this.#keyedInById > 0) {
      for (const record of this.#byId.values()) {
        if (record.key < 0 || record.slot >= 0) continue;
        const slot = record.key & mask;
        if (slots[slot] !== undefined) continue;
        this.#byId.delete(record.id);
        this.#keyedInById -= 1;
        slots[slot] = record;
        record.slot = slot;
        this.#slotsUsed += 1;
      }
    }
    return slots;
  }

  #insert(
    id: string,
    key: number,
    head: string | null,
    payload: unknown,
    poolId: string | null,
    topic: string | null,
    requiredCapabilities: readonly string[],
    priority: number,
    claimTtlMs: number | null,
  ): TaskRecord {
    let record = this.#spare.pop();
    if (record === undefined) {
      record = { id, state: 'pending', payload, result: null, poolId, topic, requiredCapabilities, priority, assignedTo: null, claimedAt: null, claimTtlMs, attempts: 0, fencingToken: 0, inHeap: false, key: -1, slot: IN_BY_ID, order: 0, head };
    } else {
      record.id = id;
      record.state = 'pending';
      record.payload = payload;
      record.result = null;
      record.poolId = poolId;
      record.topic = topic;
      record.requiredCapabilities = requiredCapabilities;
      record.priority = priority;
      record.assignedTo = null;
      record.claimedAt = null;
      record.claimTtlMs = claimTtlMs;
      record.attempts = 0;
      record.fencingToken = 0;
      record.head = head;
    }
    record.order = this.#insertions++;
    this.#index(record, key);
    this.#enqueue(record);
    if (this.#wakers.size > 0) this.#wakers.notify();
    return record;
  }

  /** A claimed record back to pending, unassigned (its fencing token stays: the next claim issues a new one). */
  #release(record: TaskRecord): void {
    this.#claimed.delete(record);
    record.state = 'pending';
    record.assignedTo = null;
    record.claimedAt = null;
    if (!record.inHeap) this.#enqueue(record);
    if (this.#wakers.size > 0) this.#wakers.notify();
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
      if (oldest !== undefined) {
        this.#unindex(oldest);
        // Nothing else refers to it once it has left its heap (a task cancelled while pending may
        // still sit there until it surfaces): keep it for the next insert.
        if (!oldest.inHeap && this.#spare.length < MAX_SPARE_RECORDS) {
          oldest.payload = null;
          oldest.result = null;
          this.#spare.push(oldest);
        }
      }
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
      partition = { key, poolId: record.poolId, topic: record.topic, requiredCapabilities: caps, heap: new BinaryHeap<TaskRecord>(compareRecords) };
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
