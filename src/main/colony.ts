/**
 * `Colony` (DESIGN §6): spawns worker tasks from one worker module into the colony pool, where pool
 * threads claim them through the TaskManager (see `task-pool.ts`), and collects their reports.
 *
 * Over `maxConcurrentWorkers`, spawns wait FIFO on the main thread and start as others finish.
 * Triggers (timer, event, webhook, api, manual) spawn workers too, with idempotency keys. Every
 * worker's life is published on the colony's {@link EventBus}.
 */
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import type { TaskStore } from '../coordination/task-store.js';
import { ClosedError, DuplicateIdError, InvalidStateError, NotFoundError, ValidationError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import { type ColonyWorkerResult, TaskKind } from '../shared/pool-protocol.js';
import { parseInput } from '../shared/validation.js';
import { WebhookReceiver, type WebhookRouteOptions } from '../watchers/webhook-receiver.js';
import { type BusEvent, EventBus, type EventBusOptions } from './event-bus.js';
import { type PoolTaskHandle, TaskPool, type TaskPoolOptions } from './task-pool.js';
import { PoolOptionsSchema } from './options.js';
import { transferProblem } from '../shared/task-table.js';

/** Defaults of {@link ColonyOptions}, in one place. */
export const COLONY_DEFAULTS = Object.freeze({
  id: 'primary',
  maxConcurrentWorkers: 4,
  maxHistory: 1000,
  resultRetention: Object.freeze({ max: 1000 }),
  idempotency: Object.freeze({ ttlMs: 300_000, maxKeys: 10_000 }),
  reportTimeoutMs: 600_000,
});

/** How a worker ended. */
export type WorkerStatus = 'success' | 'partial' | 'failed' | 'timeout' | 'stopped';

/** A worker's report. */
export interface WorkerReport {
  readonly workerId: string;
  readonly status: WorkerStatus;
  readonly summary: string;
  readonly data: unknown;
  /** The error message (`no_such_worker`, `timeout`, or what the worker threw); null on success. */
  readonly error: string | null;
  readonly durationMs: number;
  readonly batchId?: string;
  /** 1-based position in the batch. */
  readonly batchIndex?: number;
}

/** `listWorkers()` entry. */
export interface WorkerInfo {
  readonly workerId: string;
  readonly task: string;
  readonly status: 'queued' | 'running' | WorkerStatus;
  /** Epoch ms it started running; null while queued. */
  readonly startedAt: number | null;
  readonly persistent: boolean;
  readonly batchId?: string;
  readonly batchIndex?: number;
}

/** Trigger types (DESIGN §6). */
export type TriggerType = 'timer' | 'webhook' | 'api' | 'event' | 'manual';

/** `registerTrigger`'s argument. */
export interface TriggerDefinition {
  readonly id: string;
  readonly type: TriggerType;
  /**
   * - every type: `task` (the task string; default the trigger id);
   * - timer: `intervalMs` (required), `runImmediately`;
   * - event: `eventType` (required: a colony EventBus type), `colonyId`, `streamId`;
   * - webhook: `path`, `provider` (github, gitea, gitlab, generic), `secret`, `dataType` — a route on
   *   the colony's `webhooks` receiver; each change a push yields spawns a worker.
   */
  readonly config?: Readonly<Record<string, unknown>>;
}

/** `getStats()` */
export interface ColonyStats {
  running: boolean;
  activeWorkers: number;
  queued: number;
  totalWorkers: number;
  triggers: number;
  timersPaused: boolean;
  events: ReturnType<EventBus['getStats']>;
}

/** The overseer: a persistent worker with an inbox. */
export interface OverseerHandle {
  readonly workerId: string;
  /** `sendToWorker(workerId, message)`. */
  send(message: unknown): boolean;
  /** Its report, once it ends (stopped, or returned). */
  readonly report: Promise<WorkerReport>;
}

/** Options of {@link Colony}. */
export interface ColonyOptions {
  /** A module (path, file: or data: URL) whose default export is `async (task: string, ctx: ColonyWorkerContext) => result`. */
  workerModule: string | URL;
  /** Stamped as `colonyId` on the colony's events. Default `primary`. */
  id?: string;
  maxConcurrentWorkers?: number;
  /** Events the EventBus keeps. */
  maxHistory?: number;
  /** Finished workers kept for `waitForWorkerReports` and `listWorkers`: at most `max`, none older than `ttlMs`. */
  resultRetention?: { max?: number; ttlMs?: number };
  idempotency?: { ttlMs?: number; maxKeys?: number };
  /** TaskManager store the workers are claimed through. Default: in memory. */
  store?: TaskStore;
  pool?: TaskPoolOptions;
  /** Options of the EventBus beyond `maxHistory`. */
  events?: Omit<EventBusOptions, 'maxHistory' | 'now'>;
  /** Epoch-ms clock (idempotency TTL, retention TTL, durations). Default `Date.now`. */
  now?: () => number;
  /** Where `webhook` triggers get their routes (`config.path`, `provider`, `secret?`); the colony does not listen or close it. */
  webhooks?: WebhookReceiver;
  /** An engine for the workers' `ctx.dispatchChange(events)` (forwarded to `engine.dispatchChange`). */
  engine?: ColonyEngine;
}

/** What a colony needs of an engine (an `Engine` fits). */
export interface ColonyEngine {
  dispatchChange(events: readonly PageChangeEvent[]): Promise<unknown>;
}

/** Events the colony publishes on its bus (workers add their own via `ctx.emit`). */
export interface ColonyEvents {
  'worker.spawned': { workerId: string; task: string };
  'worker.started': { workerId: string };
  'worker.report': WorkerReport;
  'trigger.fired': { triggerId: string; workerId: string };
  [type: string]: unknown;
}

const fn = (what: string) => z.custom<(...args: any[]) => any>((v) => typeof v === 'function', `must be ${what}`);
const OptionsSchema = z.strictObject({
  workerModule: z.union([z.string().min(1), z.instanceof(URL)]),
  id: z.string().min(1).optional(),
  maxConcurrentWorkers: z.number().int().min(1).optional(),
  maxHistory: z.number().int().min(0).optional(),
  resultRetention: z.strictObject({ max: z.number().int().min(1).optional(), ttlMs: z.number().int().min(1).optional() }).optional(),
  idempotency: z.strictObject({ ttlMs: z.number().int().min(0).optional(), maxKeys: z.number().int().min(0).optional() }).optional(),
  store: z.custom<TaskStore>((v) => typeof v === 'object' && v !== null && typeof (v as TaskStore).claimNext === 'function', 'must be a TaskStore').optional(),
  pool: PoolOptionsSchema.optional(),
  events: z.record(z.string(), z.unknown()).optional(),
  now: fn('a function returning epoch ms').optional(),
  webhooks: z.instanceof(WebhookReceiver).optional(),
  engine: z.custom<ColonyEngine>((v) => typeof v === 'object' && v !== null && typeof (v as ColonyEngine).dispatchChange === 'function', 'must be an Engine').optional(),
});
const SpawnSchema = z.strictObject({ count: z.number().int().min(1).max(10_000).optional(), input: z.unknown().optional() });
const BatchSchema = z.array(z.strictObject({ task: z.string(), data: z.unknown().optional() }));
const WaitSchema = z.strictObject({ timeoutMs: z.number().int().min(0).max(2 ** 31 - 1).optional() });
const TriggerSchema = z.strictObject({
  id: z.string().min(1),
  type: z.enum(['timer', 'webhook', 'api', 'event', 'manual']),
  config: z.record(z.string(), z.unknown()).optional(),
});
const TimerConfigSchema = z.looseObject({ intervalMs: z.number().int().min(1).max(2 ** 31 - 1), runImmediately: z.boolean().optional(), task: z.string().optional() });
const EventConfigSchema = z.looseObject({ eventType: z.string().min(1), colonyId: z.string().optional(), streamId: z.string().optional(), task: z.string().optional() });
const WebhookConfigSchema = z.looseObject({ path: z.string().startsWith('/'), provider: z.string().min(1), secret: z.string().min(1).optional(), dataType: z.string().min(1).optional(), task: z.string().optional() });
const TriggerOptionsSchema = z.strictObject({ idempotencyKey: z.string().min(1).optional() });

/**
 * Refuses, naming the field, a worker input the pool cannot carry unchanged (a function or a symbol
 * would be lost or fail the worker later, a Map would arrive as a plain object).
 */
function assertTransferable(value: unknown, field: string): void {
  const problem = transferProblem(value, field);
  if (problem !== undefined) throw new ValidationError(problem.path, problem.message);
}

type Lifecycle = 'idle' | 'running' | 'stopping' | 'stopped';

interface WorkerRecord {
  readonly id: string;
  readonly task: string;
  readonly input: unknown;
  readonly persistent: boolean;
  readonly batchId: string | undefined;
  readonly batchIndex: number | undefined;
  state: 'queued' | 'running' | 'finished';
  startedAt: number | null;
  finishedAt: number | null;
  handle: PoolTaskHandle | undefined;
  report: WorkerReport | undefined;
  /** Messages sent while queued. */
  inbox: unknown[];
  readonly waiters: ((report: WorkerReport) => void)[];
}

/** See the file comment. */
export class Colony {
  /** The colony's event bus: worker lifecycle (`worker.*`), `trigger.fired`, and what workers `ctx.emit`. */
  readonly events: EventBus<ColonyEvents>;
  readonly #module: string;
  readonly #id: string;
  readonly #maxConcurrent: number;
  readonly #retentionMax: number;
  readonly #retentionTtl: number | undefined;
  readonly #idempotencyTtl: number;
  readonly #idempotencyMax: number;
  readonly #now: () => number;
  readonly #pool: TaskPool;
  readonly #engine: ColonyEngine | undefined;
  readonly #receiver: WebhookReceiver | undefined;
  /** Aborts the webhook triggers' watches at stop. */
  readonly #webhooks = new AbortController();
  readonly #workers = new Map<string, WorkerRecord>();
  /** Finished workers, oldest first (retention order). */
  readonly #finished = new Set<string>();
  readonly #queue: WorkerRecord[] = [];
  readonly #triggers = new Map<string, { def: TriggerDefinition; task: string }>();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #eventSubs: string[] = [];
  /** Idempotency key → worker id and when it was recorded; insertion order = age. */
  readonly #idempotency = new Map<string, { workerId: string; at: number }>();
  #overseer: OverseerHandle | undefined;
  #state: Lifecycle = 'idle';
  #active = 0;
  #workerSeq = 0;
  #batchSeq = 0;
  #timersPaused = false;

  constructor(options: ColonyOptions) {
    const o = parseInput(OptionsSchema, options, 'options');
    const module = o.workerModule;
    this.#module = module instanceof URL ? module.href : /^(file|data):/.test(module) ? module : pathToFileURL(module).href;
    this.#id = o.id ?? COLONY_DEFAULTS.id;
    this.#maxConcurrent = o.maxConcurrentWorkers ?? COLONY_DEFAULTS.maxConcurrentWorkers;
    this.#retentionMax = o.resultRetention?.max ?? COLONY_DEFAULTS.resultRetention.max;
    this.#retentionTtl = o.resultRetention?.ttlMs;
    this.#idempotencyTtl = o.idempotency?.ttlMs ?? COLONY_DEFAULTS.idempotency.ttlMs;
    this.#idempotencyMax = o.idempotency?.maxKeys ?? COLONY_DEFAULTS.idempotency.maxKeys;
    this.#now = o.now ?? Date.now;
    this.#engine = o.engine;
    this.#receiver = o.webhooks;
    this.events = new EventBus<ColonyEvents>({ ...(options.events ?? {}), maxHistory: o.maxHistory ?? COLONY_DEFAULTS.maxHistory, now: this.#now });
    // Every admitted worker runs at once (the colony bounds them), so one thread can interleave
    // them all; an overseer takes one more.
    const pool: TaskPoolOptions = { concurrency: this.#maxConcurrent + 1, ...(options.pool ?? {}) };
    this.#pool = new TaskPool(undefined, pool, o.store);
  }

  /** True between `start()` and `stop()`. */
  get running(): boolean {
    return this.#state === 'running';
  }

  /** Starts timers and event triggers. Idempotent while running; a stopped colony cannot restart. */
  async start(): Promise<void> {
    if (this.#state === 'running') return;
    if (this.#state !== 'idle') throw new ClosedError('colony');
    this.#state = 'running';
    for (const { def, task } of this.#triggers.values()) {
      if (def.type === 'timer') {
        const config = parseInput(TimerConfigSchema, def.config ?? {}, `trigger ${def.id}.config`);
        const fire = (): void => {
          if (this.#timersPaused || this.#state !== 'running') return;
          this.#fire(def.id, { source: 'timer', triggerId: def.id });
        };
        const timer = setInterval(fire, config.intervalMs);
        timer.unref();
        this.#timers.push(timer);
        if (config.runImmediately === true) fire();
      } else if (def.type === 'webhook') {
        this.#startWebhook(def);
      } else if (def.type === 'event') {
        const config = parseInput(EventConfigSchema, def.config ?? {}, `trigger ${def.id}.config`);
        const filter: { types: string; colonyId?: string; streamId?: string } = { types: config.eventType };
        if (config.colonyId !== undefined) filter.colonyId = config.colonyId;
        if (config.streamId !== undefined) filter.streamId = config.streamId;
        this.#eventSubs.push(
          this.events.subscribe({
            ...filter,
            handler: (event: BusEvent) => {
              if (this.#state === 'running') this.#fire(def.id, { source: 'event', triggerId: def.id, event });
            },
          }),
        );
      }
      void task;
    }
  }

  /**
   * Stops every worker (queued ones report `stopped`, running ones see `ctx.signal` abort and report
   * `stopped`), the timers, the event triggers and the pool threads. Idempotent; nothing throws after.
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    this.#state = 'stopping';
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers.length = 0;
    this.#webhooks.abort();
    for (const id of this.#eventSubs) this.events.unsubscribe(id);
    this.#eventSubs.length = 0;
    this.#stopAll();
    await this.#pool.destroy().catch(() => undefined);
    this.events.close();
    this.#state = 'stopped';
  }

  /** Spawns `count` workers (default 1) on `task`; returns their ids. */
  async spawn(task: string, options: { count?: number; input?: unknown } = {}): Promise<string[]> {
    this.#assertRunning();
    parseInput(z.string(), task, 'task');
    const o = parseInput(SpawnSchema, options, 'options');
    assertTransferable(o.input, 'options.input');
    const ids: string[] = [];
    for (let i = 0; i < (o.count ?? 1); i++) ids.push(this.#spawn(task, o.input, false, undefined, undefined).id);
    return ids;
  }

  /** Spawns one worker per entry; they share a `batchId` and get 1-based `batchIndex`es. */
  async spawnBatch(tasks: readonly { task: string; data?: unknown }[]): Promise<string[]> {
    this.#assertRunning();
    const parsed = parseInput(BatchSchema, tasks, 'tasks');
    parsed.forEach((t, i) => assertTransferable(t.data, `tasks[${i}].data`));
    if (parsed.length === 0) return [];
    const batchId = `batch_${++this.#batchSeq}`;
    return parsed.map((t, i) => this.#spawn(t.task, t.data, false, batchId, i + 1).id);
  }

  /**
   * Reports of `ids`, in input order, once every one has finished or `timeoutMs` (default 600 s)
   * has passed. An unknown id gets `failed` / `no_such_worker`; a worker still running at the
   * deadline is stopped and reported `timeout`.
   */
  async waitForWorkerReports(ids: readonly string[], options: { timeoutMs?: number } = {}): Promise<WorkerReport[]> {
    parseInput(z.array(z.string()), ids, 'ids');
    const { timeoutMs = COLONY_DEFAULTS.reportTimeoutMs } = parseInput(WaitSchema, options, 'options');
    if (ids.length === 0) return [];
    this.#prune();
    const pending = ids.map((id) => {
      const record = this.#workers.get(id);
      if (record === undefined) return Promise.resolve(noSuchWorker(id));
      if (record.report !== undefined) return Promise.resolve(record.report);
      return new Promise<WorkerReport>((resolve) => record.waiters.push(resolve));
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
      timer.unref();
    });
    const all = Promise.all(pending);
    const first = await Promise.race([all, deadline]);
    clearTimeout(timer);
    if (first !== 'timeout') return first;
    for (const id of ids) {
      const record = this.#workers.get(id);
      if (record !== undefined && record.report === undefined) this.#finish(record, this.#synth(record, 'timeout', `worker did not report within ${timeoutMs} ms`, 'timeout'));
    }
    return all;
  }

  /** Stops one worker: queued → `stopped` at once; running → `ctx.signal` aborts and it reports `stopped`. False for an unknown or finished id. */
  async stopWorker(id: string): Promise<boolean> {
    parseInput(z.string(), id, 'workerId');
    const record = this.#workers.get(id);
    if (record === undefined || record.report !== undefined) return false;
    this.#finish(record, this.#synth(record, 'stopped', 'stopped', 'stopped'));
    return true;
  }

  /** Stops every unfinished worker (the overseer too). */
  async stopAllWorkers(): Promise<void> {
    this.#stopAll();
  }

  /** Delivers `message` to a queued or running worker's `ctx.inbox`. False for an unknown or finished one. */
  sendToWorker(id: string, message: unknown): boolean {
    parseInput(z.string(), id, 'workerId');
    const record = this.#workers.get(id);
    if (record === undefined || record.report !== undefined) return false;
    if (record.handle === undefined) {
      record.inbox.push(message);
      return true;
    }
    return record.handle.send(message);
  }

  /**
   * Starts the persistent overseer (the worker module with task `overseer`, outside the concurrency
   * cap). Idempotent: later calls return the same handle, even after it ended.
   */
  startOverseer(options: { input?: unknown } = {}): OverseerHandle {
    if (this.#overseer !== undefined) return this.#overseer;
    this.#assertRunning();
    const record = this.#spawn('overseer', options.input, true, undefined, undefined);
    this.#overseer = {
      workerId: record.id,
      send: (message) => this.sendToWorker(record.id, message),
      report: new Promise<WorkerReport>((resolve) => (record.report !== undefined ? resolve(record.report) : record.waiters.push(resolve))),
    };
    return this.#overseer;
  }

  /** Registers a trigger. Throws while running and on a duplicate id. */
  registerTrigger(definition: TriggerDefinition): void {
    const def = parseInput(TriggerSchema, definition, 'trigger');
    if (this.#state !== 'idle') throw new InvalidStateError('triggers can only be registered before start()');
    if (this.#triggers.has(def.id)) throw new DuplicateIdError('trigger', def.id);
    if (def.type === 'timer') parseInput(TimerConfigSchema, def.config ?? {}, 'trigger.config');
    if (def.type === 'event') parseInput(EventConfigSchema, def.config ?? {}, 'trigger.config');
    if (def.type === 'webhook') {
      parseInput(WebhookConfigSchema, def.config ?? {}, 'trigger.config');
      if (this.#receiver === undefined) throw new ValidationError('trigger.type', 'a webhook trigger needs the colony option `webhooks` (a WebhookReceiver)');
    }
    const task = typeof def.config?.['task'] === 'string' ? (def.config['task'] as string) : def.id;
    this.#triggers.set(def.id, { def: Object.freeze({ ...def }) as TriggerDefinition, task });
  }

  /** Registered triggers. */
  listTriggers(): TriggerDefinition[] {
    return [...this.#triggers.values()].map((t) => t.def);
  }

  /**
   * Spawns a worker for a trigger; returns its id. A repeated `idempotencyKey` within the TTL returns
   * the first worker's id (keys are pruned by TTL, then oldest first beyond `maxKeys`).
   */
  async trigger(id: string, input?: unknown, options: { idempotencyKey?: string } = {}): Promise<string> {
    this.#assertRunning();
    parseInput(z.string(), id, 'triggerId');
    const { idempotencyKey } = parseInput(TriggerOptionsSchema, options, 'options');
    if (!this.#triggers.has(id)) throw new NotFoundError('trigger', id);
    assertTransferable(input, 'input');
    if (idempotencyKey !== undefined) {
      this.#pruneIdempotency();
      const hit = this.#idempotency.get(idempotencyKey);
      if (hit !== undefined) return hit.workerId;
    }
    const workerId = this.#fire(id, input);
    if (idempotencyKey !== undefined) {
      this.#idempotency.set(idempotencyKey, { workerId, at: this.#now() });
      this.#pruneIdempotency();
    }
    return workerId;
  }

  /** `trigger` and then its worker's report. */
  async triggerAndWait(id: string, input?: unknown, options: { idempotencyKey?: string; timeoutMs?: number } = {}): Promise<WorkerReport> {
    const { timeoutMs, ...rest } = options;
    const workerId = await this.trigger(id, input, rest);
    const [report] = await this.waitForWorkerReports([workerId], timeoutMs === undefined ? {} : { timeoutMs });
    return report!;
  }

  /** Timer triggers stop firing until `resumeTimers()`. */
  pauseTimers(): void {
    this.#timersPaused = true;
  }

  resumeTimers(): void {
    this.#timersPaused = false;
  }

  /** Every retained worker: queued, running and finished, in spawn order. */
  listWorkers(): WorkerInfo[] {
    this.#prune();
    return [...this.#workers.values()].map((r) => {
      const info: { -readonly [K in keyof WorkerInfo]: WorkerInfo[K] } = {
        workerId: r.id,
        task: r.task,
        status: r.report?.status ?? (r.state === 'finished' ? 'running' : r.state),
        startedAt: r.startedAt,
        persistent: r.persistent,
      };
      if (r.batchId !== undefined) info.batchId = r.batchId;
      if (r.batchIndex !== undefined) info.batchIndex = r.batchIndex;
      return info;
    });
  }

  getStats(): ColonyStats {
    return {
      running: this.#state === 'running',
      activeWorkers: this.#active,
      queued: this.#queue.length,
      totalWorkers: this.#workers.size,
      triggers: this.#triggers.size,
      timersPaused: this.#timersPaused,
      events: this.events.getStats(),
    };
  }

  // ── internals ─────────────────────────────────────────────────────────────

  #assertRunning(): void {
    if (this.#state === 'idle') throw new InvalidStateError('colony is not started: call start() first');
    if (this.#state !== 'running') throw new ClosedError('colony');
  }

  /**
   * A webhook trigger: a route on the colony's WebhookReceiver; each change event a delivery yields
   * spawns a worker with `{ source: 'webhook', triggerId, event }` as its input.
   */
  #startWebhook(def: TriggerDefinition): void {
    const receiver = this.#receiver!;
    const config = parseInput(WebhookConfigSchema, def.config ?? {}, `trigger ${def.id}.config`);
    const route: WebhookRouteOptions = { provider: config.provider };
    if (config.secret !== undefined) route.secret = config.secret;
    if (config.dataType !== undefined) route.dataType = config.dataType;
    const source = receiver.route(config.path, route);
    void (async () => {
      try {
        for await (const event of source.watch(this.#webhooks.signal)) {
          if (this.#state === 'running') this.#fire(def.id, { source: 'webhook', triggerId: def.id, event });
        }
      } catch (error) {
        if (this.#state === 'running') process.emitWarning(`colony webhook trigger ${def.id} stopped: ${messageOf(error)}`, { code: 'CONVERGE_COLONY_WEBHOOK' });
      }
    })();
  }

  #fire(triggerId: string, input: unknown): string {
    const trigger = this.#triggers.get(triggerId)!;
    const record = this.#spawn(trigger.task, input, false, undefined, undefined);
    this.#publish({ type: 'trigger.fired', data: { triggerId, workerId: record.id } });
    return record.id;
  }

  #spawn(task: string, input: unknown, persistent: boolean, batchId: string | undefined, batchIndex: number | undefined): WorkerRecord {
    const id = persistent ? `overseer:${this.#id}` : `worker_${++this.#workerSeq}`;
    const record: WorkerRecord = {
      id,
      task,
      input,
      persistent,
      batchId,
      batchIndex,
      state: 'queued',
      startedAt: null,
      finishedAt: null,
      handle: undefined,
      report: undefined,
      inbox: [],
      waiters: [],
    };
    this.#workers.set(id, record);
    this.#publish({ type: 'worker.spawned', workerId: id, data: { workerId: id, task } });
    if (persistent) this.#run(record);
    else {
      this.#queue.push(record);
      this.#pump();
    }
    return record;
  }

  /** Starts queued workers while under the cap, FIFO. */
  #pump(): void {
    while (this.#active < this.#maxConcurrent && this.#queue.length > 0 && this.#state === 'running') {
      const record = this.#queue.shift()!;
      if (record.report === undefined) this.#run(record);
    }
  }

  #run(record: WorkerRecord): void {
    if (!record.persistent) this.#active++;
    record.state = 'running';
    record.startedAt = this.#now();
    const engine = this.#engine;
    const handle = this.#pool.submit([TaskKind.COLONY, this.#module, 'default', record.task, record.id, record.input, engine !== undefined], {
      onEmit: (type, data) => this.#publish({ type, data, workerId: record.id, streamId: `worker:${record.id}` }),
      onChanges: (events) => {
        engine?.dispatchChange(events).catch((error: unknown) => {
          if (this.#state === 'running') process.emitWarning(`colony worker ${record.id}: engine refused its changes: ${messageOf(error)}`, { code: 'CONVERGE_COLONY_CHANGES' });
        });
      },
    });
    record.handle = handle;
    for (const message of record.inbox.splice(0)) handle.send(message);
    this.#publish({ type: 'worker.started', workerId: record.id, data: { workerId: record.id } });
    handle.result.then(
      (value) => this.#finish(record, this.#fromResult(record, value)),
      (error: unknown) => this.#finish(record, this.#synth(record, 'failed', `worker failed: ${messageOf(error)}`, messageOf(error))),
    );
  }

  #fromResult(record: WorkerRecord, value: unknown): WorkerReport {
    const r = (value !== null && typeof value === 'object' ? value : {}) as ColonyWorkerResult;
    const status: WorkerStatus = r.status === 'partial' || r.status === 'failed' ? r.status : 'success';
    return this.#report(record, status, typeof r.summary === 'string' ? r.summary : '', r.data ?? null, status === 'failed' ? (typeof r.summary === 'string' ? r.summary : 'failed') : null);
  }

  #synth(record: WorkerRecord, status: WorkerStatus, summary: string, error: string): WorkerReport {
    return this.#report(record, status, summary, null, error);
  }

  #report(record: WorkerRecord, status: WorkerStatus, summary: string, data: unknown, error: string | null): WorkerReport {
    const report: { -readonly [K in keyof WorkerReport]: WorkerReport[K] } = {
      workerId: record.id,
      status,
      summary,
      data,
      error,
      durationMs: record.startedAt === null ? 0 : Math.max(0, this.#now() - record.startedAt),
    };
    if (record.batchId !== undefined) report.batchId = record.batchId;
    if (record.batchIndex !== undefined) report.batchIndex = record.batchIndex;
    return Object.freeze(report);
  }

  /** Records the first report of a worker; later outcomes (a late settle after a stop) are ignored. */
  #finish(record: WorkerRecord, report: WorkerReport): void {
    if (record.report !== undefined) return;
    record.report = report;
    const wasRunning = record.state === 'running';
    record.state = 'finished';
    record.finishedAt = this.#now();
    if (report.status === 'stopped' || report.status === 'timeout') record.handle?.abort();
    if (wasRunning && !record.persistent) this.#active--;
    this.#finished.add(record.id);
    for (const waiter of record.waiters.splice(0)) waiter(report);
    this.#publish({ type: 'worker.report', workerId: record.id, data: report });
    this.#prune();
    this.#pump();
  }

  #stopAll(): void {
    for (const record of [...this.#workers.values()]) {
      if (record.report === undefined) this.#finish(record, this.#synth(record, 'stopped', 'stopped', 'stopped'));
    }
    this.#queue.length = 0;
  }

  #publish(event: { type: string; data?: unknown; workerId?: string; streamId?: string }): void {
    if (this.#state === 'stopped') return;
    this.events.publish({ ...event, colonyId: this.#id }).catch(() => undefined);
  }

  /** Forgets finished workers beyond the retention bounds, oldest first. */
  #prune(): void {
    const ttl = this.#retentionTtl;
    if (ttl !== undefined) {
      const cutoff = this.#now() - ttl;
      for (const id of this.#finished) {
        if ((this.#workers.get(id)?.finishedAt ?? 0) > cutoff) break;
        this.#forget(id);
      }
    }
    while (this.#finished.size > this.#retentionMax) this.#forget(this.#finished.values().next().value as string);
  }

  #forget(id: string): void {
    this.#finished.delete(id);
    this.#workers.delete(id);
  }

  #pruneIdempotency(): void {
    if (this.#idempotencyTtl > 0) {
      const cutoff = this.#now() - this.#idempotencyTtl;
      for (const [key, { at }] of this.#idempotency) {
        if (at > cutoff) break;
        this.#idempotency.delete(key);
      }
    }
    while (this.#idempotency.size > this.#idempotencyMax) this.#idempotency.delete(this.#idempotency.keys().next().value as string);
  }
}

function noSuchWorker(id: string): WorkerReport {
  return Object.freeze({ workerId: id, status: 'failed', summary: 'no such worker', data: null, error: 'no_such_worker', durationMs: 0 });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
