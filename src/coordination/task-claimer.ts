/**
 * A claimer-side local queue over a {@link TaskManager}: it claims tasks in batches
 * (`claimNext(agent, filter, { max })`), refills in the background before the queue runs dry, and
 * settles completions, failures and releases in batches (`settleMany`), so that a busy worker costs
 * the store one statement per batch instead of two per task.
 *
 * Nothing about a task's claim changes: each queued task holds its own claim with its own TTL and
 * fencing token, every settlement is checked against that token, and a refused one (a claim that
 * expired and was taken over) is refused alone. A claimer that dies loses nothing: its queued
 * claims expire and return to pending like any other. Keep `batchSize` well below what the workers
 * get through in one claim TTL: a task that waited in the queue past its TTL is not handed out (its
 * claim is released instead).
 *
 * When a claim comes back empty and someone is waiting in `next()`, the claimer goes idle: it arms
 * the store's wake (PostgreSQL: LISTEN/NOTIFY; memory and SQLite: the instance's own submits),
 * claims once more, and sleeps until woken, or for `idlePollMs` at most.
 *
 * ```ts
 * const claimer = new TaskClaimer(tasks, { agentId: 'worker-1', batchSize: 100 });
 * const running = claimer.run(async (task) => render(task.payload), { concurrency: 8 });
 * // … later:
 * await claimer.close(); // stops claiming, releases what was not started, flushes settlements
 * await running;
 * ```
 */
import { z } from 'zod';
import { ClosedError, InvalidStateError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';
import type { PendingWake } from './pending-wake.js';
import { assertPlainData } from './plain-data.js';
import { IdSchema, MAX_CLAIM_BATCH, MAX_SETTLE_BATCH, TaskFilterSchema } from './schemas.js';
import type { SettleOutcome, Task, TaskFilter } from './task.js';
import type { TaskManager, TaskSettlement } from './task-manager.js';

/** Options of {@link TaskClaimer}. */
export interface TaskClaimerOptions {
  /** The agent every claim is made for. */
  readonly agentId: string;
  /** Which tasks to claim (see `TaskFilter`); pool membership applies as for every claim. */
  readonly filter?: TaskFilter;
  /** Most tasks one claim takes, and the size of the local queue. Default 100. */
  readonly batchSize?: number;
  /** Refill in the background once the queue holds this many or fewer. Default `batchSize / 2`. */
  readonly refillAt?: number;
  /**
   * How long a settlement waits to be flushed with others. 0 (default): the next turn of the event
   * loop, so settlements made together go together; while a flush is in flight the next batch grows.
   */
  readonly flushDelayMs?: number;
  /** Most settlements in one flush. Default 1 000. */
  readonly maxFlushSize?: number;
  /** An idle claimer claims again after this long even without a wake-up. Default 1 000 ms. */
  readonly idlePollMs?: number;
  /**
   * Claims in flight at once while the queue refills (each for part of `batchSize`), so that a fast
   * worker does not wait for one claim's round trip (and commit) after another. Default 2: on
   * PostgreSQL with no-op work, 2 drained a deep queue ~1.8× and a shallow one ~1.5× faster than 1
   * (bench/RESULTS.md, 2026-12-07 23:30).
   */
  readonly claimConcurrency?: number;
  /**
   * Settlements made while a claim is in flight wait for the next claim and ride on it: one round
   * trip and one commit for both (`TaskManager.settleAndClaimNext`), about half the statements and
   * commits of a busy claimer. Default false: measured on PostgreSQL with no-op work it saved
   * 1-3 µs of CPU per task but did not drain faster (the settlement lengthens the claim, which is
   * what the workers wait for); worth it where a commit is dear (a slow disk, synchronous replicas).
   */
  readonly settleWithClaims?: boolean;
  /** Background failures (a failed claim or flush, a refused settlement in `run`). Default: `process.emitWarning`. */
  readonly onError?: (error: unknown) => void;
  /** Clock for the claim TTL check of queued tasks (epoch ms). Default `Date.now`; use the TaskManager's. */
  readonly now?: () => number;
}

/** Options of {@link TaskClaimer.run}. */
export interface ClaimerRunOptions {
  /** How many tasks the handler works on at once. Default 1. */
  readonly concurrency?: number;
}

/** What a {@link TaskClaimer} has done so far. */
export interface TaskClaimerStats {
  /** Tasks claimed from the store. */
  claimed: number;
  /** Claim statements (batches) issued. */
  claimBatches: number;
  /** Tasks handed out by `next()`. */
  handedOut: number;
  /** Settlements applied (completed, failed, released). */
  settled: number;
  /** Settlements refused (stale token, another holder, already finished). */
  refused: number;
  /** Flushes (settle statements) issued, those that rode on a claim included. */
  flushes: number;
  /** Flushes that rode on a claim (one statement for both). */
  flushesWithClaims: number;
  /** Queued tasks whose claim TTL ran out before they were handed out (released, not run). */
  expiredInQueue: number;
}

const OptionsSchema = z
  .strictObject({
    agentId: IdSchema,
    filter: TaskFilterSchema.optional(),
    batchSize: z.number().int().min(1).max(MAX_CLAIM_BATCH).optional(),
    refillAt: z.number().int().min(0).max(MAX_CLAIM_BATCH).optional(),
    flushDelayMs: z.number().int().min(0).max(60_000).optional(),
    maxFlushSize: z.number().int().min(1).max(MAX_SETTLE_BATCH).optional(),
    idlePollMs: z.number().int().min(1).max(3_600_000).optional(),
    claimConcurrency: z.number().int().min(1).max(16).optional(),
    settleWithClaims: z.boolean().optional(),
    onError: z.custom<(error: unknown) => void>((value) => typeof value === 'function', 'must be a function').optional(),
    now: z.custom<() => number>((value) => typeof value === 'function', 'must be a function returning epoch ms').optional(),
  })
  .refine((options) => options.refillAt === undefined || options.refillAt < (options.batchSize ?? DEFAULT_BATCH_SIZE), {
    path: ['refillAt'],
    message: 'must be below batchSize',
  });
const RunOptionsSchema = z.strictObject({ concurrency: z.number().int().min(1).max(10_000).optional() });

const DEFAULT_BATCH_SIZE = 100;
const DEFAULT_MAX_FLUSH = 1_000;
const DEFAULT_IDLE_POLL_MS = 1_000;
/** First back-off after a failed claim; doubles up to `idlePollMs`. */
const FIRST_BACKOFF_MS = 10;

interface QueuedSettlement {
  readonly item: TaskSettlement;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** A local queue of claimed tasks with batched refills and batched settlements (see the file comment). */
export class TaskClaimer {
  readonly agentId: string;
  readonly #manager: TaskManager;
  readonly #filter: TaskFilter | undefined;
  readonly #batchSize: number;
  readonly #refillAt: number;
  readonly #flushDelayMs: number;
  readonly #maxFlush: number;
  readonly #idlePollMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #now: () => number;
  readonly #stats: TaskClaimerStats = { claimed: 0, claimBatches: 0, handedOut: 0, settled: 0, refused: 0, flushes: 0, flushesWithClaims: 0, expiredInQueue: 0 };

  #queue: (Task | undefined)[] = [];
  #head = 0;
  readonly #takers: ((task: Task | null) => void)[] = [];
  /** Background claim loops running (at most `claimConcurrency`). */
  readonly #fetches = new Set<Promise<void>>();
  /** Tasks asked for by claims in flight (so that loops together never ask for more than the queue holds). */
  #requested = 0;
  /** Whether a loop is idle, waiting for a wake (only one is). */
  #idling = false;
  readonly #claimConcurrency: number;
  readonly #settleWithClaims: boolean;
  /** Claim statements in flight (settlements made meanwhile wait to ride on the next one). */
  #claimsInFlight = 0;
  #wake: PendingWake | undefined;

  #pending: QueuedSettlement[] = [];
  /** Task ids with a settlement queued or in flight: a second one for the same task is refused at once. */
  readonly #settling = new Set<string>();
  #flushTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #flushing: Promise<void> | undefined;
  readonly #drained = new Set<() => void>();

  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(manager: TaskManager, options: TaskClaimerOptions) {
    const resolved = parseInput(OptionsSchema, options, 'options');
    this.#manager = manager;
    this.agentId = resolved.agentId;
    this.#filter = resolved.filter;
    this.#batchSize = resolved.batchSize ?? DEFAULT_BATCH_SIZE;
    this.#refillAt = resolved.refillAt ?? Math.floor(this.#batchSize / 2);
    this.#flushDelayMs = resolved.flushDelayMs ?? 0;
    this.#maxFlush = resolved.maxFlushSize ?? DEFAULT_MAX_FLUSH;
    this.#idlePollMs = resolved.idlePollMs ?? DEFAULT_IDLE_POLL_MS;
    this.#claimConcurrency = resolved.claimConcurrency ?? 2;
    this.#settleWithClaims = resolved.settleWithClaims ?? false;
    this.#onError = resolved.onError ?? ((error: unknown) => process.emitWarning(`TaskClaimer ${this.agentId}: ${String(error)}`));
    this.#now = resolved.now ?? Date.now;
  }

  /** Counters (a live object; read, do not write). */
  get stats(): Readonly<TaskClaimerStats> {
    return this.#stats;
  }

  /** Tasks claimed and waiting in the local queue. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * The next claimed task: from the local queue at once, else as soon as one is claimed (waiting,
   * idle, for as long as it takes). Null once the claimer is closed.
   */
  next(): Promise<Task | null> {
    if (this.#closed) return Promise.resolve(null);
    const task = this.#take();
    if (task !== undefined) {
      this.#refill();
      return Promise.resolve(task);
    }
    return new Promise((resolve) => {
      this.#takers.push(resolve);
      this.#refill();
    });
  }

  /**
   * The next task if one is free right now: from the local queue, else from one claim. Null when
   * none is free (it does not wait for submissions) or the claimer is closed. For draining a backlog.
   */
  async poll(): Promise<Task | null> {
    for (let round = 0; round < 2 && !this.#closed; round++) {
      const task = this.#take();
      if (task !== undefined) {
        this.#refill();
        return task;
      }
      if (this.#fetches.size > 0) {
        await Promise.race(this.#fetches);
        continue;
      }
      const tasks = await this.#claim(Math.max(1, this.#batchSize - this.queued));
      if (tasks === null || tasks.length === 0) return null;
      this.#deliver(tasks);
    }
    const task = this.#take();
    return task ?? null;
  }

  /** Completes `task` with `result` (batched). Rejects with this task's refusal alone (e.g. `StaleClaimError`). */
  complete(task: Task, result?: unknown): Promise<void> {
    return this.#settle(task, 'completed', result ?? null, 'result');
  }

  /** Fails `task` with `reason` (batched). An already finished task resolves (nothing to do). */
  fail(task: Task, reason?: unknown): Promise<void> {
    return this.#settle(task, 'failed', reason ?? null, 'reason');
  }

  /** Hands `task` back to pending, unstarted (batched). */
  release(task: Task): Promise<void> {
    return this.#settle(task, 'released', null, 'result');
  }

  /**
   * Takes tasks with `concurrency` workers until the claimer is closed: `handler`'s result completes
   * the task, a throw fails it with `{ name, message, code }`. A refused settlement (the claim was
   * lost) goes to `onError`. Resolves once closed and every settlement is flushed.
   */
  async run(handler: (task: Task) => unknown, options: ClaimerRunOptions = {}): Promise<void> {
    if (typeof handler !== 'function') parseInput(z.custom(() => false, 'must be a function'), handler, 'handler');
    const { concurrency = 1 } = parseInput(RunOptionsSchema, options, 'options');
    const report = (error: unknown): void => this.#onError(error);
    const worker = async (): Promise<void> => {
      for (let task = await this.next(); task !== null; task = await this.next()) {
        let settled: Promise<void>;
        try {
          settled = this.complete(task, await handler(task));
        } catch (error) {
          settled = this.fail(task, describeError(error));
        }
        settled.catch(report);
        // Backpressure: do not run far ahead of the store.
        if (this.#pending.length >= this.#maxFlush * 2) await this.#whenDrained();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await this.#whenDrained();
  }

  /**
   * Stops claiming, wakes `next()` callers with null, releases the queued tasks nobody took (back
   * to pending for others), and flushes every settlement. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#wake?.cancel();
    for (const taker of this.#takers.splice(0)) taker(null);
    while (this.#fetches.size > 0) await Promise.all(this.#fetches);
    const unstarted: Task[] = [];
    for (let task = this.#take(false); task !== undefined; task = this.#take(false)) unstarted.push(task);
    const released = Promise.all(unstarted.map((task) => this.release(task).catch((error: unknown) => this.#onError(error))));
    // Flush now: no flush delay after close.
    if (this.#flushTimer !== undefined) this.#startFlush();
    await released;
    await this.#whenDrained();
  }

  /** The next queued task whose claim is still live; an expired one is released instead. */
  #take(count = true): Task | undefined {
    while (this.#head < this.#queue.length) {
      const task = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined;
      if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (task.claimTtlMs !== null && task.claimedAt !== null && task.claimedAt + task.claimTtlMs <= this.#now()) {
        this.#stats.expiredInQueue += 1;
        this.release(task).catch(() => undefined); // refused if someone already took it over: nothing lost
        continue;
      }
      if (count) this.#stats.handedOut += 1;
      return task;
    }
    return undefined;
  }

  /** Starts a background claim when the queue is low or someone waits. */
  #refill(): void {
    if (this.#closed || this.#fetches.size >= this.#claimConcurrency || this.#idling) return;
    if (this.queued + this.#requested > this.#refillAt && this.#takers.length === 0) return;
    if (this.#batchSize - this.queued - this.#requested <= 0) return;
    const fetch: Promise<void> = this.#fetch().finally(() => {
      this.#fetches.delete(fetch);
      // Someone may have started waiting while the last claim was finishing.
      if (this.#takers.length > 0) this.#refill();
    });
    this.#fetches.add(fetch);
    // Another loop may claim alongside this one (claimConcurrency > 1).
    queueMicrotask(() => this.#refill());
  }

  async #fetch(): Promise<void> {
    let backoff = FIRST_BACKOFF_MS;
    while (!this.#closed) {
      const want = Math.min(Math.ceil(this.#batchSize / this.#claimConcurrency), this.#batchSize - this.queued - this.#requested);
      if (want <= 0) return;
      this.#requested += want;
      let tasks: Task[] | null;
      try {
        tasks = await this.#claim(want);
      } finally {
        this.#requested -= want;
      }
      if (tasks === null) {
        // Failed (reported): back off, then try again while someone waits.
        if (this.#takers.length === 0) return;
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, this.#idlePollMs);
        continue;
      }
      backoff = FIRST_BACKOFF_MS;
      if (tasks.length > 0) {
        this.#deliver(tasks);
        if (this.queued + this.#requested > this.#refillAt && this.#takers.length === 0) return;
        continue;
      }
      // Nothing free: one loop waits for a wake-up, the others stop.
      if (this.#takers.length === 0 || this.#idling) return;
      this.#idling = true;
      try {
        await this.#idle();
      } finally {
        this.#idling = false;
      }
    }
  }

  /** Waits for a wake-up: arm, claim once more (a task submitted before arming), then sleep. */
  async #idle(): Promise<void> {
    const store = this.#manager.store;
    const wake = store.pendingWake?.(this.#idlePollMs) ?? timeoutWake(this.#idlePollMs);
    this.#wake = wake;
    try {
      await wake.ready;
    } catch (error) {
      // Without the wake the timeout still bounds the sleep.
      if (!this.#closed) this.#onError(error);
    }
    if (!this.#closed) {
      const tasks = await this.#claim(Math.max(1, this.#batchSize - this.queued));
      if (tasks !== null && tasks.length > 0) {
        wake.cancel();
        this.#deliver(tasks);
      }
    }
    await wake.woken;
    this.#wake = undefined;
  }

  /**
   * One batched claim; null when it failed (reported). Tasks claimed after close are released.
   * Settlements waiting for a flush (when none is in flight) ride on the claim: one round trip and
   * one transaction for both (see `TaskManager.settleAndClaimNext`).
   */
  async #claim(max: number): Promise<Task[] | null> {
    this.#claimsInFlight += 1;
    try {
      return await this.#claimOnce(max);
    } finally {
      this.#claimsInFlight -= 1;
      // Settlements held back for this claim: the next claim (started in this same turn, if the
      // queue is still low) takes them; otherwise they are flushed on their own.
      this.#scheduleFlush();
    }
  }

  async #claimOnce(max: number): Promise<Task[] | null> {
    let tasks: Task[];
    const batch = this.#settleWithClaims && !this.#closed && this.#flushing === undefined && this.#pending.length > 0 ? this.#takeBatch() : undefined;
    if (batch !== undefined) {
      this.#stats.flushesWithClaims += 1;
      let claimed!: (value: Task[] | null) => void;
      const result = new Promise<Task[] | null>((resolve) => (claimed = resolve));
      this.#runFlush(batch, async () => {
        let settled;
        try {
          settled = await this.#manager.settleAndClaimNext(
            this.agentId,
            batch.map((queued) => queued.item),
            this.#filter,
            { max },
          );
        } catch (error) {
          claimed(null);
          throw error;
        }
        claimed(settled.tasks);
        return settled.outcomes;
      });
      const got = await result;
      if (got === null) {
        // The flush above reported the failure (unless closed).
        return null;
      }
      tasks = got;
    } else {
      try {
        tasks = await this.#manager.claimNext(this.agentId, this.#filter, { max });
      } catch (error) {
        if (!this.#closed) this.#onError(error);
        return null;
      }
    }
    this.#stats.claimBatches += 1;
    this.#stats.claimed += tasks.length;
    if (this.#closed) {
      for (const task of tasks) this.release(task).catch((error: unknown) => this.#onError(error));
      return [];
    }
    return tasks;
  }

  #deliver(tasks: readonly Task[]): void {
    for (const task of tasks) {
      const taker = this.#takers.shift();
      if (taker === undefined) {
        this.#queue.push(task);
      } else {
        this.#stats.handedOut += 1;
        taker(task);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    const wake = timeoutWake(ms);
    this.#wake = wake;
    return wake.woken.then(() => {
      this.#wake = undefined;
    });
  }

  #settle(task: Task, outcome: TaskSettlement['outcome'], result: unknown, field: string): Promise<void> {
    if (typeof task !== 'object' || task === null || typeof task.id !== 'string') {
      return Promise.reject(parseInputError('task', 'must be a Task this claimer handed out'));
    }
    try {
      assertPlainData(result, field);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (this.#settling.has(task.id)) return Promise.reject(new InvalidStateError(`task ${JSON.stringify(task.id)} is already being settled by this claimer`));
    this.#settling.add(task.id);
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ item: { taskId: task.id, outcome, result, fencingToken: task.fencingToken > 0 ? task.fencingToken : undefined }, resolve, reject });
      this.#scheduleFlush();
    });
  }

  #scheduleFlush(): void {
    if (this.#flushing !== undefined || this.#flushTimer !== undefined || this.#pending.length === 0) return;
    // A claim in flight takes them when it is done (the next claim carries them, or its end
    // schedules this flush): one statement for both instead of two.
    if (this.#settleWithClaims && this.#claimsInFlight > 0 && !this.#closed && this.#pending.length < this.#maxFlush) return;
    if (this.#pending.length >= this.#maxFlush) {
      this.#startFlush();
      return;
    }
    const flush = (): void => {
      this.#flushTimer = undefined;
      this.#startFlush();
    };
    // Closing: no more waiting for others to join.
    this.#flushTimer = this.#flushDelayMs === 0 || this.#closed ? setImmediate(flush) : setTimeout(flush, this.#flushDelayMs);
  }

  /** The next settlements to flush (the flush timer cancelled). */
  #takeBatch(): QueuedSettlement[] {
    if (this.#flushTimer !== undefined) {
      clearTimeout(this.#flushTimer as NodeJS.Timeout);
      clearImmediate(this.#flushTimer as NodeJS.Immediate);
      this.#flushTimer = undefined;
    }
    return this.#pending.splice(0, this.#maxFlush);
  }

  #startFlush(): void {
    const batch = this.#takeBatch();
    if (batch.length === 0) {
      this.#notifyDrained();
      return;
    }
    this.#runFlush(batch, () =>
      this.#manager.settleMany(
        this.agentId,
        batch.map((queued) => queued.item),
      ),
    );
  }

  /** Runs `settle` as the one flush in flight, then schedules the next. */
  #runFlush(batch: readonly QueuedSettlement[], settle: () => Promise<SettleOutcome[]>): void {
    this.#flushing = this.#flush(batch, settle).finally(() => {
      this.#flushing = undefined;
      for (const queued of batch) this.#settling.delete(queued.item.taskId);
      if (this.#pending.length > 0) this.#scheduleFlush();
      else this.#notifyDrained();
    });
  }

  async #flush(batch: readonly QueuedSettlement[], settle: () => Promise<SettleOutcome[]>): Promise<void> {
    this.#stats.flushes += 1;
    let outcomes;
    try {
      outcomes = await settle();
    } catch (error) {
      const failure = error instanceof Error ? error : new ClosedError(String(error));
      for (const queued of batch) queued.reject(failure);
      if (!(failure instanceof ClosedError)) this.#onError(failure);
      return;
    }
    outcomes.forEach((outcome, index) => {
      const queued = batch[index]!;
      if (outcome instanceof Error) {
        this.#stats.refused += 1;
        queued.reject(outcome);
      } else {
        if (outcome) this.#stats.settled += 1;
        queued.resolve();
      }
    });
  }

  /** Resolves once no settlement is queued or in flight. */
  #whenDrained(): Promise<void> {
    if (this.#pending.length === 0 && this.#flushing === undefined && this.#flushTimer === undefined) return Promise.resolve();
    return new Promise((resolve) => this.#drained.add(resolve));
  }

  #notifyDrained(): void {
    if (this.#pending.length > 0 || this.#flushing !== undefined || this.#flushTimer !== undefined) return;
    for (const resolve of [...this.#drained]) resolve();
    this.#drained.clear();
  }
}

/** A wake that only times out (stores without `pendingWake`, and back-off sleeps). */
function timeoutWake(ms: number): PendingWake {
  let cancel!: () => void;
  const woken = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    cancel = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  return { ready: Promise.resolve(), woken, cancel };
}

/** A handler's error as plain data for the failed task's result. */
function describeError(error: unknown): { name: string; message: string; code?: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? { name: error.name, message: error.message, code } : { name: error.name, message: error.message };
  }
  return { name: 'Error', message: String(error) };
}

function parseInputError(field: string, message: string): Error {
  try {
    parseInput(z.custom(() => false, message), undefined, field);
  } catch (error) {
    return error as Error;
  }
  return new Error(message);
}
