/**
 * The colony pool (DESIGN §6): a Piscina pool whose threads *pull* tasks, claimed through the
 * TaskManager.
 *
 * Every task is a task in a {@link TaskManager} (the engine's `store`, in memory by default): the
 * pool submits it and claims it as its agent (`pool:<id>`) with a fencing token, renews the claim
 * while it runs when a claim TTL is set, and reports the result or fails it there. Inside the
 * process the pool's threads then race for it in shared memory (`src/shared/task-table.ts`): a
 * lane claims a slot by CAS, runs it and takes the next one without any message; the main thread
 * hears about completions in batches. A thread that dies (uncaught exception, `process.exit`, out of
 * memory under `resourceLimits`) fails the tasks it held — or, below `maxAttempts`, runs them again.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { TaskManager } from '../coordination/task-manager.js';
import type { Task } from '../coordination/task.js';
import type { TaskSettlement } from '../coordination/task-manager.js';
import type { TaskStore } from '../coordination/task-store.js';
import { assertPlainData } from '../coordination/plain-data.js';
import { ConvergeError, deserializeError, ErrorCode, type SerializedError, ValidationError, WorkerCrashedError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import { FrameEncoder } from '../shared/framing.js';
import type { LaneMessage, LaneStart, MainMessage, PoolThreadData, TaskDispatch, TaskOutcome, TaskPayload } from '../shared/pool-protocol.js';
import { TaskKind } from '../shared/pool-protocol.js';
import { IngestTag, MAX_EVENTS_PER_FRAME, type PoolTaskMessage } from '../shared/protocol.js';
import { Ring, RingProducer } from '../shared/ring.js';
import { MAX_LANES, SlotFlag, SlotState, TableSlot, TaskTable } from '../shared/task-table.js';
import { resolveWorkerEntry } from '../shared/worker-entry.js';

const POOL_WORKER = new URL('../workers/pool.worker.js', import.meta.url);

/** Defaults of {@link TaskPoolOptions}, in one place. */
export const TASK_POOL_DEFAULTS = Object.freeze({
  /** Slots in the shared table; more tasks than this wait in a FIFO on the main thread. */
  capacity: 1024,
  /** Bytes per slot for the msgpack payload/result; larger ones travel by message. */
  slotBytes: 4096,
  /** Tasks a lane (one thread) runs at once; async tasks interleave. */
  concurrency: 1,
  /** An idle lane frees its thread after this long without work. */
  lingerMs: 50,
  /** Runs of a task whose thread died before it finished; 1 = never re-run. */
  maxAttempts: 1,
});

/** Pool sizing and claiming (`createEngine({ pool })`, `new Colony({ pool })`). */
export interface TaskPoolOptions {
  minThreads?: number;
  maxThreads?: number;
  idleTimeout?: number;
  /** Piscina/worker_threads resource limits of the pool threads (a thread over them dies; its task fails). */
  resourceLimits?: { maxOldGenerationSizeMb?: number; maxYoungGenerationSizeMb?: number; codeRangeSizeMb?: number; stackSizeMb?: number };
  /** See {@link TASK_POOL_DEFAULTS}. */
  concurrency?: number;
  capacity?: number;
  slotBytes?: number;
  lingerMs?: number;
  maxAttempts?: number;
  /** Claim TTL of the pool's tasks in the store; the pool renews claims at a third of it. Default: none. */
  claimTtlMs?: number;
  /**
   * With a shared store (SQLite, PostgreSQL): false leaves task subscriptions' dispatches pending in
   * the store for `runTaskWorker` processes instead of running them in this process. Default true.
   */
  runLocally?: boolean;
}

/** Topic of the tasks `runTaskWorker` processes claim. */
export const TASK_TOPIC = 'converge.task';

/** How a shared task subscription's dispatch is stored (plain JSON). */
export interface SharedTaskPayload {
  readonly kind: 'subscription';
  readonly module: string;
  readonly name: string;
  readonly event: PageChangeEvent;
  readonly dispatch: TaskDispatch;
}

/** `engine.getStatus().pool` */
export interface TaskPoolStats {
  threads: number;
  /** Tasks claimed and not settled. */
  running: number;
  /** Tasks waiting for a slot or a thread. */
  queued: number;
  completed: number;
  failed: number;
  /** Lanes (threads pulling from the table) right now. */
  lanes: number;
}

/** A submitted task. */
export interface PoolTaskHandle {
  /** Its id in the TaskManager. */
  readonly taskId: string;
  /** Settles with the task's value, or rejects with its error (class and code kept). */
  readonly result: Promise<unknown>;
  /** Asks the task to stop: a task not yet claimed is cancelled; a running one sees `ctx.signal` abort. */
  abort(): void;
  /** Delivers a message to the task's `ctx.inbox` (colony workers). False once it has finished. */
  send(message: unknown): boolean;
}

/** Per-task hooks. */
export interface SubmitHooks {
  onEmit?: (type: string, data: unknown) => void;
  /** A colony worker's `ctx.dispatchChange(events)`. */
  onChanges?: (events: readonly PageChangeEvent[]) => void;
  /** Skip the TaskManager record (internal probes such as module checks). */
  internal?: boolean;
  /**
   * Leave the result unsettled when the pool is destroyed (the engine's dispatches: after close
   * their acknowledgement has nowhere to go, so a late settle must not happen at all).
   */
  abandonOnDestroy?: boolean;
}

interface Entry {
  readonly payload: TaskPayload;
  readonly hooks: SubmitHooks | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  taskId: string;
  fencingToken: number | undefined;
  slot: number;
  attempts: number;
  aborted: boolean;
  settled: boolean;
  inbox: unknown[] | undefined;
}

interface Lane {
  readonly port: MessagePort;
}

let poolSeq = 0;
/** One waitUntilDone round for a task another process runs (the wait repeats until it ends). */
const REMOTE_WAIT_MS = 60_000;
/** Most tasks admitted (submitMany + claimTasks) or recorded (settleMany) in one store call. */
const MAX_BATCH = 1000;
const ABANDON_ON_DESTROY: SubmitHooks = Object.freeze({ abandonOnDestroy: true });

/** See the file comment. */
export class TaskPool {
  readonly #options: TaskPoolOptions;
  readonly #ingest: SharedArrayBuffer | undefined;
  readonly #acks: SharedArrayBuffer | undefined;
  readonly #manager: TaskManager;
  readonly #agent: string;
  readonly #table: TaskTable;
  readonly #slots: (Entry | undefined)[];
  readonly #freeSlots: number[] = [];
  /** Tasks waiting for a free slot, FIFO (`#backlogHead` is the next one). */
  #backlog: (Entry | undefined)[] = [];
  #backlogHead = 0;
  readonly #lanes: (Lane | undefined)[] = new Array<Lane | undefined>(MAX_LANES);
  readonly #concurrency: number;
  readonly #lingerMs: number;
  readonly #maxAttempts: number;
  readonly #claimTtlMs: number | undefined;
  #pool: Piscina | undefined;
  #maxLanes = 1;
  #heartbeat: NodeJS.Timeout | undefined;
  #inTable = 0;
  #admitting = 0;
  #completed = 0;
  #failed = 0;
  #closed = false;
  #draining = false;
  #fillQueued = false;
  /** Entries enqueued in this turn, admitted together at its end. */
  #admissions: Entry[] = [];
  /** Outcomes settled in this turn, recorded in the store together at its end. */
  #settlements: TaskSettlement[] = [];
  /** Tasks waiting on other processes. */
  #remote = 0;
  #reaper: NodeJS.Timeout | undefined;
  #producer: RingProducer | undefined;
  #derivedProducer: RingProducer | undefined;
  #encoder: FrameEncoder | undefined;
  readonly #runLocally: boolean;

  /**
   * `acks`: the engine's ack ring, where subscription tasks' derived events go (never behind a full
   * ingest ring while the worker waits at `maxInFlight` for the task that emits them).
   */
  constructor(ingest: SharedArrayBuffer | undefined, options: TaskPoolOptions = {}, store?: TaskStore, acks?: SharedArrayBuffer) {
    this.#ingest = ingest;
    this.#acks = acks;
    this.#options = options;
    this.#manager = new TaskManager(store === undefined ? {} : { store });
    this.#agent = `pool:${process.pid}:${++poolSeq}`;
    const capacity = options.capacity ?? TASK_POOL_DEFAULTS.capacity;
    this.#table = TaskTable.create({ capacity, slotBytes: options.slotBytes ?? TASK_POOL_DEFAULTS.slotBytes });
    Atomics.store(this.#table.i32, TableSlot.MAIN_PARKED, 1);
    this.#slots = new Array<Entry | undefined>(capacity);
    for (let i = capacity - 1; i >= 0; i--) this.#freeSlots.push(i);
    this.#concurrency = options.concurrency ?? TASK_POOL_DEFAULTS.concurrency;
    this.#lingerMs = options.lingerMs ?? TASK_POOL_DEFAULTS.lingerMs;
    this.#maxAttempts = options.maxAttempts ?? TASK_POOL_DEFAULTS.maxAttempts;
    this.#claimTtlMs = options.claimTtlMs;
    this.#runLocally = options.runLocally ?? true;
  }

  /** The TaskManager the pool's tasks are recorded and claimed in. */
  get manager(): TaskManager {
    return this.#manager;
  }

  /** The pool's agent id in the TaskManager. */
  get agentId(): string {
    return this.#agent;
  }

  /** Runs one dispatch of a `task` subscription (the dispatcher's `runTask`). */
  run(task: PoolTaskMessage): Promise<unknown> {
    return this.#enqueue([TaskKind.SUBSCRIPTION, task.module, task.name, task.event, task.dispatch], ABANDON_ON_DESTROY).result;
  }

  /** Calls `module[name](...args)` in a pool thread. */
  call(module: string, name: string, args: readonly unknown[]): Promise<unknown> {
    return this.#enqueue([TaskKind.CALL, module, name, args], undefined).result;
  }

  /**
   * Loads `module` in a pool thread and checks that `name` is an exported function; rejects with a
   * ValidationError naming `task.filename` or `task.name`. Runs no user function.
   */
  async check(module: string, name: string, fieldPrefix = ''): Promise<void> {
    try {
      await this.submit([TaskKind.CHECK, module, name], { internal: true }).result;
    } catch (error) {
      if (error instanceof ValidationError && fieldPrefix !== '') throw new ValidationError(`${fieldPrefix}${error.field}`, error.message.slice(error.field.length + 2), { cause: error });
      throw error;
    }
  }

  /** Aborts every running task's `ctx.signal` (they still settle normally); tasks submitted later are not affected. */
  abortAll(): void {
    for (const entry of this.#slots) if (entry !== undefined) this.#signalAbort(entry);
  }

  /** Submits a task; see {@link PoolTaskHandle}. */
  submit(payload: TaskPayload, hooks?: SubmitHooks): PoolTaskHandle {
    const { entry, result } = this.#enqueue(payload, hooks);
    return {
      get taskId() {
        return entry.taskId;
      },
      result,
      abort: () => this.#abort(entry),
      send: (message) => this.#send(entry, message),
    };
  }

  /** Creates and admits an entry (no handle: the hot paths `run` and `call` need only the promise). */
  #enqueue(payload: TaskPayload, hooks: SubmitHooks | undefined): { entry: Entry; result: Promise<unknown> } {
    let resolve!: (value: unknown) => void;
    let reject!: (error: unknown) => void;
    const result = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const entry: Entry = { payload, hooks, resolve, reject, taskId: '', fencingToken: undefined, slot: -1, attempts: 0, aborted: false, settled: false, inbox: undefined };
    if (this.#closed) {
      entry.settled = true;
      if (hooks?.abandonOnDestroy !== true) reject(new ConvergeError('colony pool is closed', { code: ErrorCode.CLOSED }));
      return { entry, result };
    }
    this.#admitting++;
    // Admitted in bursts: every task enqueued in this turn (one dispatch frame's matches, a colony's
    // spawned tasks) is submitted with one submitMany and claimed with one claimTasks. It counts as
    // queued (quiescence) from here on.
    this.#admissions.push(entry);
    if (this.#admissions.length === 1) queueMicrotask(this.#admitBurst);
    return { entry, result };
  }

  stats(): TaskPoolStats {
    return {
      threads: this.#pool?.threads.length ?? 0,
      running: this.#inTable,
      queued: this.#backlog.length - this.#backlogHead + this.#admitting,
      completed: this.#completed,
      failed: this.#failed,
      lanes: this.#table.activeLanes(),
    };
  }

  /**
   * Aborts every running task (`ctx.signal`), rejects every unsettled one with a ClosedError (late
   * outcomes are ignored), then tears the threads down. Idempotent.
   */
  async destroy(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearInterval(this.#reaper);
    const closed = (): ConvergeError => new ConvergeError('colony pool is closed', { code: ErrorCode.CLOSED });
    for (const entry of this.#slots) if (entry !== undefined) this.#abort(entry);
    for (const entry of [...this.#backlog, ...this.#slots]) {
      if (entry === undefined) continue;
      if (entry.hooks?.abandonOnDestroy === true) entry.settled = true;
      else this.#settle(entry, false, closed());
    }
    this.#backlog = [];
    this.#backlogHead = 0;
    this.#table.close();
    const pool = this.#pool;
    this.#pool = undefined;
    for (const lane of this.#lanes) lane?.port.close();
    if (pool !== undefined) await pool.destroy().catch(() => undefined);
    await this.#manager.close().catch(() => undefined);
  }

  // ── admission ─────────────────────────────────────────────────────────────

  readonly #admitBurst = (): void => {
    const burst = this.#admissions;
    this.#admissions = [];
    if (this.#closed) {
      for (const entry of burst) {
        this.#admitting--;
        this.#admitted(entry);
      }
      return;
    }
    const recorded: Entry[] = [];
    for (const entry of burst) {
      if (entry.hooks?.internal === true) void this.#admit(entry);
      else recorded.push(entry);
    }
    if (recorded.length === 1) void this.#admit(recorded[0]!);
    else for (let i = 0; i < recorded.length; i += MAX_BATCH) void this.#admitMany(recorded.length <= MAX_BATCH ? recorded : recorded.slice(i, i + MAX_BATCH));
  };

  /**
   * Records a burst in the store with one submitMany and claims it with one claimTasks. When the
   * batch is refused (one payload the store cannot keep, a store failure: submitMany is all or none),
   * each task is admitted alone, so that every one gets its own outcome and error.
   */
  async #admitMany(entries: Entry[]): Promise<void> {
    const ttl = this.#claimTtlMs === undefined ? {} : { claimTtlMs: this.#claimTtlMs };
    const shared = entries.map((entry) => this.#shareable(entry.payload));
    let tasks: Task[];
    try {
      tasks = await this.#manager.submitMany(
        entries.map((entry, i) => (shared[i] === undefined ? { payload: describe(entry.payload), ...ttl } : { payload: shared[i], topic: TASK_TOPIC, ...ttl })),
      );
    } catch {
      for (const entry of entries) void this.#admit(entry);
      return;
    }
    const claiming: Entry[] = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      entry.taskId = tasks[i]!.id;
      if (shared[i] !== undefined && !this.#runLocally) {
        // Left pending for `runTaskWorker` processes sharing the store.
        this.#admitting--;
        void this.#awaitElsewhere(entry);
      } else claiming.push(entry);
    }
    if (claiming.length === 0) return;
    let claimed: (Task | null)[];
    try {
      claimed = await this.#manager.claimTasks(
        this.#agent,
        claiming.map((entry) => entry.taskId),
      );
    } catch (error) {
      for (const entry of claiming) {
        this.#admitting--;
        this.#admitFailed(entry, error);
      }
      return;
    }
    for (let i = 0; i < claiming.length; i++) {
      const entry = claiming[i]!;
      const task = claimed[i];
      this.#admitting--;
      if (task === null || task === undefined) {
        // Another agent sharing the store took it (e.g. a `converge worker` on PostgreSQL).
        void this.#awaitElsewhere(entry);
        continue;
      }
      entry.fencingToken = task.fencingToken;
      this.#admitted(entry);
    }
  }

  async #admit(entry: Entry): Promise<void> {
    try {
      if (entry.hooks?.internal !== true) {
        const ttl = this.#claimTtlMs === undefined ? {} : { claimTtlMs: this.#claimTtlMs };
        let shared = this.#shareable(entry.payload);
        let task: Task | undefined;
        if (shared !== undefined) {
          try {
            task = await this.#manager.submit({ payload: shared, topic: TASK_TOPIC, ...ttl });
          } catch (error) {
            // An event the store cannot keep as JSON (a Uint8Array in `extra`): it runs here.
            if (!(error instanceof ValidationError)) throw error;
            shared = undefined;
          }
        }
        task ??= await this.#manager.submit({ payload: describe(entry.payload), ...ttl });
        entry.taskId = task.id;
        if (shared !== undefined && !this.#runLocally) {
          // Left pending for `runTaskWorker` processes sharing the store.
          this.#admitting--;
          void this.#awaitElsewhere(entry);
          return;
        }
        const claimed = await this.#manager.claimTask(this.#agent, task.id);
        if (claimed === null) {
          // Another agent sharing the store took it (e.g. a `converge worker` on PostgreSQL).
          this.#admitting--;
          void this.#awaitElsewhere(entry);
          return;
        }
        entry.fencingToken = claimed.fencingToken;
      }
    } catch (error) {
      this.#admitting--;
      this.#admitFailed(entry, error);
      return;
    }
    this.#admitting--;
    this.#admitted(entry);
  }

  /** The store refused or failed an entry's admission (after a destroy: as for any entry then). */
  #admitFailed(entry: Entry, error: unknown): void {
    if (this.#closed) this.#admitted(entry);
    else this.#settle(entry, false, error);
  }

  /** An entry recorded and claimed (or internal): into the backlog, unless it ended meanwhile. */
  #admitted(entry: Entry): void {
    if (entry.settled) return;
    if (this.#closed) {
      if (entry.hooks?.abandonOnDestroy === true) entry.settled = true;
      else this.#settle(entry, false, new ConvergeError('colony pool is closed', { code: ErrorCode.CLOSED }));
      return;
    }
    if (entry.aborted) {
      this.#settle(entry, false, stoppedError());
      return;
    }
    this.#backlog.push(entry);
    // One fill per burst of admissions: one announce (and at most one notify) for all of them.
    if (!this.#fillQueued) {
      this.#fillQueued = true;
      queueMicrotask(this.#fillSoon);
    }
  }

  readonly #fillSoon = (): void => {
    this.#fillQueued = false;
    this.#fill();
  };

  /**
   * The complete payload, for a task other processes may run (`runTaskWorker`): task subscriptions'
   * dispatches when the store is shared (not in memory). Undefined otherwise.
   */
  #shareable(payload: TaskPayload): SharedTaskPayload | undefined {
    if (payload[0] !== TaskKind.SUBSCRIPTION || this.#manager.store.kind === 'memory') return undefined;
    return { kind: 'subscription', module: payload[1], name: payload[2], event: payload[3], dispatch: payload[4] };
  }

  /** Waits for a task another process claimed; what it emitted goes into the ring before it settles. */
  async #awaitElsewhere(entry: Entry): Promise<void> {
    this.#remote++;
    this.#startReaper();
    let done: Awaited<ReturnType<TaskManager['waitUntilDone']>> = null;
    try {
      while (done === null && !this.#closed && !entry.settled) {
        done = await this.#manager.waitUntilDone(entry.taskId, { timeoutMs: REMOTE_WAIT_MS }).catch(() => null);
      }
    } finally {
      this.#remote--;
    }
    if (done === null || entry.settled) return;
    if (done.state !== 'completed') {
      this.#settle(entry, false, toError(done.result));
      return;
    }
    const events = (done.result as { events?: PageChangeEvent[] } | null)?.events;
    if (events !== undefined && events.length > 0 && entry.payload[0] === TaskKind.SUBSCRIPTION) {
      try {
        await this.#writeDerived(entry.payload[4], events);
      } catch (error) {
        this.#settle(entry, false, error);
        return;
      }
    }
    this.#settle(entry, true, null);
  }

  /** Writes events a remote task emitted into the ingest ring, derived from its dispatch. */
  async #writeDerived(dispatch: TaskDispatch, events: readonly PageChangeEvent[]): Promise<void> {
    if (this.#ingest === undefined) return;
    this.#producer ??= new RingProducer(new Ring(this.#ingest), { onFull: 'wait' });
    if (this.#acks !== undefined) this.#derivedProducer ??= new RingProducer(new Ring(this.#acks), { onFull: 'wait' });
    this.#encoder ??= new FrameEncoder();
    const meta = { cause: dispatch.subscriptionId, parent: dispatch.id };
    const frames: Uint8Array[] = [];
    for (let i = 0; i < events.length; i += MAX_EVENTS_PER_FRAME / 2) frames.push(this.#encoder.encodeEvents(IngestTag.EVENTS, meta, events.slice(i, i + MAX_EVENTS_PER_FRAME / 2)));
    // To the ack ring when there is one (a frame too large for it, rarely, to the ingest ring).
    const derived = this.#derivedProducer;
    for (const frame of frames) {
      const pending = (derived !== undefined && frame.length <= derived.ring.maxFrameBytes ? derived : this.#producer).write(frame);
      if (pending !== undefined) await pending;
    }
    // The convergence worker parks on the ingest ring's signal only.
    if (derived !== undefined) this.#producer.ring.nudge();
  }

  /** While tasks wait on other processes: return the claims of dead ones (expired TTL) to pending. */
  #startReaper(): void {
    if (this.#reaper !== undefined || this.#claimTtlMs === undefined) return;
    this.#reaper = setInterval(() => {
      if (this.#remote === 0) {
        clearInterval(this.#reaper);
        this.#reaper = undefined;
        return;
      }
      this.#manager.releaseExpiredClaims().catch(() => undefined);
    }, Math.max(1, Math.floor(this.#claimTtlMs / 2)));
    this.#reaper.unref();
  }

  /** Moves backlog entries into free slots and makes sure enough lanes run. */
  #fill(): void {
    const backlog = this.#backlog;
    let published = 0;
    while (this.#backlogHead < backlog.length && this.#freeSlots.length > 0) {
      const entry = backlog[this.#backlogHead]!;
      backlog[this.#backlogHead++] = undefined;
      if (!entry.settled && this.#publish(entry, this.#freeSlots.pop()!)) published++;
    }
    if (published > 0) this.#table.announce(published);
    if (this.#backlogHead === backlog.length) {
      this.#backlog = [];
      this.#backlogHead = 0;
    }
    this.#ensureLanes();
  }

  /** Writes the entry into `slot` and queues it (announced by the caller). False when it could not be encoded. */
  #publish(entry: Entry, slot: number): boolean {
    entry.slot = slot;
    this.#slots[slot] = entry;
    this.#inTable++;
    try {
      // A payload too large for its slot is fetched by the lane (LEN = -1).
      this.#table.write(slot, entry.payload);
    } catch (error) {
      this.#release(slot);
      this.#settle(entry, false, error);
      return false;
    }
    this.#table.publish(slot);
    if (entry.inbox !== undefined) this.#table.setFlag(slot, SlotFlag.INBOX);
    if (this.#claimTtlMs !== undefined && this.#heartbeat === undefined) {
      this.#heartbeat = setInterval(() => this.#renewClaims(), Math.max(1, Math.floor(this.#claimTtlMs / 3)));
      this.#heartbeat.unref();
    }
    return true;
  }

  #renewClaims(): void {
    for (const entry of this.#slots) {
      if (entry === undefined || entry.taskId === '' || entry.settled) continue;
      this.#manager.renewClaim(this.#agent, entry.taskId, { fencingToken: entry.fencingToken! }).catch((error: unknown) => {
        process.emitWarning(`colony pool could not renew its claim on task ${entry.taskId}: ${(error as Error).message}`, { code: 'CONVERGE_POOL_CLAIM' });
      });
    }
  }

  // ── lanes ─────────────────────────────────────────────────────────────────

  #ensureLanes(): void {
    if (this.#closed || this.#inTable === 0) return;
    const pool = (this.#pool ??= this.#createPool());
    const want = Math.min(this.#maxLanes, this.#inTable);
    while (this.#table.activeLanes() < want) {
      const lane = this.#lanes.findIndex((l, i) => l === undefined && i < MAX_LANES);
      if (lane < 0) return;
      this.#startLane(pool, lane === -1 ? this.#lanes.length : lane);
    }
  }

  #startLane(pool: Piscina, lane: number): void {
    const { port1, port2 } = new MessageChannel();
    this.#lanes[lane] = { port: port1 };
    port1.on('message', (message: LaneMessage) => this.#onLaneMessage(lane, message));
    port1.unref();
    this.#table.startLane(lane);
    const start: LaneStart = { kind: 'lane', table: this.#table.buffer, lane, port: port2, concurrency: this.#concurrency, lingerMs: this.#lingerMs };
    pool.run(start, { transferList: [port2] }).then(
      () => this.#laneEnded(lane, undefined),
      (error: unknown) => this.#laneEnded(lane, error),
    );
  }

  #laneEnded(lane: number, error: unknown): void {
    const record = this.#lanes[lane];
    this.#lanes[lane] = undefined;
    this.#table.dropLane(lane);
    // Completions the lane queued before it ended.
    this.#drain();
    if (error !== undefined && !this.#closed) {
      const crash = new WorkerCrashedError(`colony pool thread died: ${(error as Error)?.message ?? String(error)}`, { cause: error });
      for (const entry of this.#slots) {
        if (entry === undefined || entry.settled || this.#table.state(entry.slot) !== SlotState.CLAIMED + lane) continue;
        entry.attempts++;
        if (entry.attempts < this.#maxAttempts && !entry.aborted) {
          // Run it again: same claim in the store, a fresh slot state.
          this.#table.write(entry.slot, entry.payload);
          this.#table.publish(entry.slot);
          this.#table.announce(1);
        } else {
          this.#settle(entry, false, crash);
          this.#release(entry.slot);
        }
      }
    }
    // Port messages still in flight (a spilled result) are lost with a dead lane; settled above.
    setImmediate(() => record?.port.close());
    this.#fill();
  }

  #onLaneMessage(lane: number, message: LaneMessage): void {
    switch (message.t) {
      case 'wake':
        this.#drain();
        break;
      case 'emit': {
        const entry = this.#slots[message.slot];
        if (entry === undefined || entry.settled) break;
        try {
          entry.hooks?.onEmit?.(message.type, message.data);
        } catch (error) {
          process.emitWarning(`colony event listener threw: ${(error as Error)?.message ?? String(error)}`, { code: 'CONVERGE_COLONY_EMIT' });
        }
        break;
      }
      case 'changes': {
        const entry = this.#slots[message.slot];
        if (entry !== undefined && !entry.settled) entry.hooks?.onChanges?.(message.events);
        break;
      }
      case 'done':
        this.#complete(message.slot, message.outcome);
        break;
      case 'fetch': {
        const entry = this.#slots[message.slot];
        if (entry !== undefined) this.#post(lane, { t: 'payload', slot: message.slot, payload: entry.payload });
        break;
      }
      case 'inbox?': {
        const entry = this.#slots[message.slot];
        if (entry?.inbox !== undefined && entry.inbox.length > 0) {
          this.#post(lane, { t: 'inbox', slot: message.slot, messages: entry.inbox });
          entry.inbox = [];
        }
        break;
      }
      default:
        message satisfies never;
    }
  }

  #post(lane: number, message: MainMessage): boolean {
    const record = this.#lanes[lane];
    if (record === undefined) return false;
    try {
      record.port.postMessage(message);
      return true;
    } catch {
      return false;
    }
  }

  /** Settles every slot in the done queue. Called on a lane's wake message. */
  #drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (;;) {
        let slot: number;
        while ((slot = this.#table.popDone()) >= 0) this.#complete(slot, undefined);
        // Parked first, then look once more: a lane pushes first and reads PARKED second, so either
        // it sees PARKED = 1 and wakes us, or we see its slot here.
        Atomics.store(this.#table.i32, TableSlot.MAIN_PARKED, 1);
        if (!this.#table.hasDone()) break;
        Atomics.store(this.#table.i32, TableSlot.MAIN_PARKED, 0);
      }
    } finally {
      this.#draining = false;
    }
    this.#fill();
  }

  #complete(slot: number, outcome: TaskOutcome | undefined): void {
    const entry = this.#slots[slot];
    const state = this.#table.state(slot);
    if (entry === undefined) return;
    if (state === SlotState.SKIPPED) {
      this.#release(slot);
      return;
    }
    const read = outcome ?? (this.#table.read(slot)?.value as TaskOutcome | undefined);
    this.#release(slot);
    if (read === undefined) {
      this.#settle(entry, false, new ConvergeError('task outcome lost', { code: ErrorCode.PROTOCOL }));
      return;
    }
    if (read[0]) this.#settle(entry, true, read[1]);
    else this.#settle(entry, false, deserializeError(read[1]));
  }

  #release(slot: number): void {
    if (this.#slots[slot] === undefined) return;
    this.#slots[slot] = undefined;
    this.#table.free(slot);
    this.#freeSlots.push(slot);
    this.#inTable--;
  }

  #settle(entry: Entry, ok: boolean, value: unknown): void {
    if (entry.settled) return;
    entry.settled = true;
    if (entry.hooks?.internal !== true) {
      if (ok) this.#completed++;
      else this.#failed++;
    }
    if (entry.taskId !== '' && entry.fencingToken !== undefined && !this.#closed) {
      // Recorded in batches: every settlement of this turn goes to the store in one settleMany.
      const result = ok ? recordable(value) : errorRecord(value);
      this.#settlements.push({ taskId: entry.taskId, outcome: ok ? 'completed' : 'failed', result, fencingToken: entry.fencingToken });
      if (this.#settlements.length === 1) queueMicrotask(this.#recordSettlements);
    }
    if (ok) entry.resolve(value);
    else entry.reject(value);
  }

  readonly #recordSettlements = (): void => {
    const all = this.#settlements;
    this.#settlements = [];
    if (this.#closed) return;
    for (let i = 0; i < all.length; i += MAX_BATCH) this.#recordBatch(all.length <= MAX_BATCH ? all : all.slice(i, i + MAX_BATCH));
  };

  #recordBatch(items: TaskSettlement[]): void {
    const warn = (taskId: string, error: unknown): void => {
      if (!this.#closed) process.emitWarning(`colony pool could not record task ${taskId}: ${(error as Error)?.message ?? String(error)}`, { code: 'CONVERGE_POOL_RECORD' });
    };
    this.#manager.settleMany(this.#agent, items).then(
      (outcomes) => outcomes.forEach((outcome, i) => outcome instanceof Error && warn(items[i]!.taskId, outcome)),
      (error: unknown) => {
        // Nothing of the batch was applied. A result the store cannot keep as JSON (a Uint8Array,
        // a Map…) refuses the whole batch: record each alone, that one as unrecorded (the value
        // itself went to the caller).
        if (!(error instanceof ValidationError)) {
          for (const item of items) warn(item.taskId, error);
          return;
        }
        for (const item of items) {
          const holder = { fencingToken: item.fencingToken! };
          const recorded =
            item.outcome === 'completed'
              ? this.#manager.report(this.#agent, item.taskId, item.result, holder).catch((refused: unknown) => {
                  if (!(refused instanceof ValidationError)) throw refused;
                  return this.#manager.report(this.#agent, item.taskId, { unrecorded: `result is not JSON: ${refused.message}` }, holder);
                })
              : this.#manager.failTask(item.taskId, item.result, { agentId: this.#agent, fencingToken: item.fencingToken! });
          recorded.catch((failed: unknown) => warn(item.taskId, failed));
        }
      },
    );
  }

  // ── control ───────────────────────────────────────────────────────────────

  #abort(entry: Entry): void {
    if (entry.settled || entry.aborted) return;
    entry.aborted = true;
    if (entry.slot < 0) {
      // Settled in place: #fill skips it.
      if (this.#backlog.indexOf(entry, this.#backlogHead) >= 0) this.#settle(entry, false, stoppedError());
      return; // still being admitted: #admit sees `aborted`
    }
    const slot = entry.slot;
    if (this.#table.cancel(slot)) {
      // The queue entry stays until a lane pops it (SKIPPED), then the slot is freed.
      this.#settle(entry, false, stoppedError());
      return;
    }
    this.#signalAbort(entry);
  }

  #signalAbort(entry: Entry): void {
    if (entry.settled || entry.slot < 0) return;
    const slot = entry.slot;
    this.#table.setFlag(slot, SlotFlag.ABORT);
    const state = this.#table.state(slot);
    if (state >= SlotState.CLAIMED) this.#post(state - SlotState.CLAIMED, { t: 'abort', slot });
  }

  #send(entry: Entry, message: unknown): boolean {
    if (entry.settled || entry.aborted || this.#closed) return false;
    if (entry.slot < 0) {
      (entry.inbox ??= []).push(message);
      return true;
    }
    const slot = entry.slot;
    if (this.#table.state(slot) === SlotState.PENDING) {
      (entry.inbox ??= []).push(message);
      this.#table.setFlag(slot, SlotFlag.INBOX);
      // Claimed meanwhile, possibly before the flag: deliver what is buffered ourselves.
      const state = this.#table.state(slot);
      if (state < SlotState.CLAIMED) return true;
      if (entry.inbox.length === 0) return true;
      const messages = entry.inbox;
      entry.inbox = [];
      return this.#post(state - SlotState.CLAIMED, { t: 'inbox', slot, messages });
    }
    const state = this.#table.state(slot);
    if (state < SlotState.CLAIMED) return false;
    return this.#post(state - SlotState.CLAIMED, { t: 'inbox', slot, messages: [message] });
  }

  #createPool(): Piscina {
    const entry = resolveWorkerEntry(POOL_WORKER, 'pool');
    const data: PoolThreadData = { ingest: this.#ingest, acks: this.#acks };
    const options: ConstructorParameters<typeof Piscina>[0] = { filename: fileURLToPath(entry.filename), workerData: entry.wrap(data), concurrentTasksPerWorker: 1 };
    if (this.#options.minThreads !== undefined) options.minThreads = this.#options.minThreads;
    if (this.#options.maxThreads !== undefined) options.maxThreads = this.#options.maxThreads;
    if (this.#options.idleTimeout !== undefined) options.idleTimeout = this.#options.idleTimeout;
    if (this.#options.resourceLimits !== undefined) options.resourceLimits = this.#options.resourceLimits;
    const pool = new Piscina(options);
    // A dead thread rejects its lane's task (handled in #laneEnded); with no task in flight Piscina
    // emits 'error' instead, which must not become an uncaught exception in the host.
    pool.on('error', (error: unknown) => {
      if (!this.#closed) process.emitWarning(`colony pool thread error: ${(error as Error)?.message ?? String(error)}`, { code: 'CONVERGE_POOL_THREAD' });
    });
    this.#maxLanes = Math.min(MAX_LANES, pool.options.maxThreads);
    return pool;
  }
}

/**
 * What the store records as the task's payload: plain JSON naming what runs and for whom. The full
 * payload (events, inputs: anything msgpack carries, Uint8Array included) lives in the shared slot,
 * so stores that keep only JSON (SQLite, PostgreSQL, a strict memory store) never refuse it.
 */
function describe(payload: TaskPayload): unknown {
  switch (payload[0]) {
    case TaskKind.CALL:
      return { kind: 'call', module: payload[1], name: payload[2] };
    case TaskKind.SUBSCRIPTION:
      return { kind: 'subscription', module: payload[1], name: payload[2], subscriptionId: payload[4].subscriptionId, dispatchId: payload[4].id, pageId: payload[3].pageId };
    case TaskKind.COLONY:
      return { kind: 'colony', module: payload[1], task: payload[3], workerId: payload[4] };
    case TaskKind.CHECK:
      return { kind: 'check', module: payload[1], name: payload[2] };
    default:
      return payload satisfies never;
  }
}

function stoppedError(): ConvergeError {
  return new ConvergeError('task stopped before it finished', { code: ErrorCode.CLOSED });
}

function toError(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as SerializedError).name === 'string' && typeof (value as SerializedError).message === 'string') {
    return deserializeError(value as SerializedError);
  }
  return new ConvergeError(`task failed: ${JSON.stringify(value)}`);
}

/**
 * What the store keeps as a completed task's result: the value, or, when the store could not keep it
 * as JSON (a Uint8Array, a Map…), a note saying so (the value itself goes to the caller). Checked
 * here so that one such result does not refuse the whole batch of settlements.
 */
function recordable(value: unknown): unknown {
  try {
    assertPlainData(value ?? null, 'result');
    return value ?? null;
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    return { unrecorded: `result is not JSON: ${error.message}` };
  }
}

/** What the store keeps as a failed task's reason: the serialised error (plain data). */
function errorRecord(error: unknown): unknown {
  if (error instanceof Error) return { name: error.name, code: (error as { code?: unknown }).code ?? ErrorCode.UNKNOWN, message: error.message };
  return { name: 'Error', code: ErrorCode.UNKNOWN, message: String(error) };
}
