/**
 * The embedding API: {@link createEngine} and the {@link Engine} facade (DESIGN §3).
 *
 * The facade validates at the boundary and keeps its machinery in private fields. It owns two rings
 * shared with the convergence worker — ingest (events, acknowledgements, subscription changes and
 * quiescence waits, in one order) and dispatch (batches for main-thread handlers) — and a Comlink
 * proxy for read-only queries.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { wrap, type Remote } from 'comlink';
import { z } from 'zod';
import {
  ClosedError,
  ConvergeError,
  deserializeError,
  FrameTooLargeError,
  ValidationError,
  WorkerCrashedError,
} from '../shared/errors.js';
import { ConvergenceDispatchProtocol, type PageChangeEvent, validateEvents } from '../shared/events.js';
import { FrameDecoder, FrameEncoder } from '../shared/framing.js';
import { nodeEndpoint } from '../shared/endpoint.js';
import { type NumericTolerance, type PagePredicate, validatePredicate, validateTolerance } from '../shared/predicates.js';
import {
  type ChangeFeedEntry,
  type ConvergenceControl,
  type ConvergenceWorkerData,
  type EngineCounters,
  type EngineState,
  type IngestMeta,
  IngestTag,
  MainSlot,
  type QuiescenceReport,
  type SubscriptionSpec,
  type WorkerMessage,
} from '../shared/protocol.js';
import { Ring, RingConsumer, RingProducer, type RingStats } from '../shared/ring.js';
import { parseInput } from '../shared/validation.js';
import { startWorker } from '../shared/worker-entry.js';
import { type DispatchErrorInfo, dispatchContext, MainDispatcher, type SubscriptionHandler } from './dispatcher.js';
import { type EngineOptions, type ResolvedEngineOptions, resolveEngineOptions } from './options.js';
import { EngineScope, type SerializedScope, SerializedScopeSchema } from './scope.js';
import { TaskPool, type TaskPoolStats } from './task-pool.js';
import { pathToFileURL } from 'node:url';
import type { ContextPageSource } from '../watchers/source.js';
import { type MappedSource, SourceBridges } from './source-bridge.js';

const CONVERGENCE_WORKER = new URL('../workers/convergence.worker.js', import.meta.url);

/** Events per ingest frame; larger batches are split so that a frame stays well under the ring's limit. */
const EVENTS_PER_FRAME = 512;

/** What `engine.subscribe` takes. */
export interface SubscribeOptions {
  predicate?: PagePredicate;
  tolerance?: NumericTolerance;
  /** Predicates describing the events this subscription's handler emits (for cycle detection). */
  outputs?: PagePredicate[];
  /** Runs on the main thread; a returned promise holds quiescence until it settles. */
  handler?: SubscriptionHandler;
  /**
   * Runs in the colony pool: `filename` is a module (path or URL) whose export `name` (default
   * `default`) is called as `(event, ctx)` in a pool thread; `ctx.dispatchChange(events)` emits
   * changes from there, counted like a handler's. Its promise holds quiescence until it settles.
   */
  task?: { filename: string | URL; name?: string };
}

/** What `engine.subscribe` returns. */
export interface Subscription {
  readonly id: string;
  /** `convergence:dispatch:<id>` */
  readonly dispatchKey: string;
  unsubscribe(): Promise<boolean>;
}

/** `engine.getStatus()` */
export interface EngineStatus {
  state: EngineState;
  episodeId: string | null;
  counters: EngineCounters;
  /** The ingest ring's counters, plus the dispatch ring's under `dispatch`. */
  ring: RingStats & { dispatch: RingStats };
  pool: TaskPoolStats;
  subscriptions: number;
  /** Dispatches the worker sent and the main thread has not yet acknowledged. */
  inFlight: number;
  /** Rate-limited deliveries waiting for their page's bucket. */
  deferred: number;
  /** Main-thread handlers currently running. */
  handlersRunning: number;
}

/** Events an engine emits. */
export interface EngineEvents {
  quiescence: [report: QuiescenceReport];
  'dispatch-error': [info: DispatchErrorInfo];
  'source-error': [info: { sourceId: string; error: unknown }];
}

/** A source of page changes (DESIGN §4); see src/watchers/source.ts. */
export type { ContextPageSource } from '../watchers/source.js';

const PredicateInput = z.unknown().superRefine(refineWith(validatePredicate));
const ToleranceInput = z.unknown().superRefine(refineWith(validateTolerance));

function refineWith(validate: (value: unknown, name: string) => unknown) {
  return (value: unknown, ctx: z.RefinementCtx): void => {
    try {
      validate(value, '');
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      for (const issue of error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: splitPath(issue.path) });
    }
  };
}

function splitPath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of path.split(/\.|\[|\]/)) {
    if (part === '') continue;
    out.push(/^\d+$/.test(part) ? Number(part) : part);
  }
  return out;
}

const SubscribeSchema = z
  .object({
    predicate: PredicateInput.optional(),
    tolerance: ToleranceInput.optional(),
    outputs: z.array(PredicateInput).optional(),
    handler: z.custom<SubscriptionHandler>((v) => typeof v === 'function', 'must be a function').optional(),
    task: z
      .object({ filename: z.union([z.string().min(1), z.instanceof(URL)]), name: z.string().min(1).optional() })
      .strict()
      .optional(),
  })
  .strict()
  .refine((v) => !(v.handler !== undefined && v.task !== undefined), { message: 'give either handler or task, not both', path: ['task'] });

const DispatchOptionsSchema = z.object({ sourceId: z.string().min(1).optional(), causedBy: z.string().min(1).optional() }).strict();
const WaitOptionsSchema = z.object({ timeoutMs: z.number().finite().nonnegative().optional() }).strict();
const FeedOptionsSchema = z.object({ limit: z.number().finite().optional() }).strict();
const IdSchema = z.string().min(1);

/** Subscription bookkeeping kept on the main thread (for scopes and serialisation). */
interface LocalSubscription {
  readonly spec: SubscriptionSpec;
  readonly handler: SubscriptionHandler | undefined;
}

type Lifecycle = 'running' | 'closing' | 'closed' | 'failed';

/** A running engine. Create with {@link createEngine}. */
export class Engine {
  readonly #options: ResolvedEngineOptions;
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #control: Remote<ConvergenceControl>;
  readonly #ingest: Ring;
  readonly #dispatchRing: Ring;
  readonly #producer: RingProducer;
  /** Writes that must never be refused (acks, control frames): #producer itself unless it throws on full. */
  readonly #waitingProducer: RingProducer;
  readonly #encoder = new FrameEncoder();
  readonly #dispatcher: MainDispatcher;
  readonly #pool: TaskPool;
  readonly #emitter = new EventEmitter();
  readonly #subscriptions = new Map<string, LocalSubscription>();
  readonly #requests = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  /** One bridge per mapped source (src/main/source-bridge.ts). */
  readonly #sources: SourceBridges;
  #nextRequest = 1;
  #nextFrameSeq = 1;
  #nextHandle = 1;
  #state: Lifecycle = 'running';
  #failure: ConvergeError | undefined;
  #closing: Promise<void> | undefined;

  /** @internal Use {@link createEngine}. */
  constructor(options: ResolvedEngineOptions) {
    this.#options = options;
    const ingest = Ring.allocate(options.ringBytes);
    const dispatch = Ring.allocate(options.ringBytes);
    const main = new SharedArrayBuffer(MainSlot.SIZE * 4);
    this.#ingest = new Ring(ingest);
    this.#dispatchRing = new Ring(dispatch);
    this.#producer = new RingProducer(this.#ingest, { onFull: options.onFull });
    // With onFull 'wait' one producer keeps every frame of this thread in call order. With 'throw',
    // event writes never queue, so a separate waiting producer cannot overtake them.
    this.#waitingProducer = options.onFull === 'wait' ? this.#producer : new RingProducer(this.#ingest, { onFull: 'wait' });
    this.#pool = new TaskPool(ingest, options.pool);
    this.#sources = new SourceBridges({
      ingest,
      dispatch: (events) => this.dispatchChange(events),
      reportError: (sourceId, error) => {
        // Loud, never silent: a process warning when nobody listens for source errors.
        if (!this.#emitter.emit('source-error', { sourceId, error })) {
          const message = error instanceof Error ? error.message : String(error);
          process.emitWarning(`source ${sourceId}: ${message}`, { type: 'ConvergeSourceWarning', code: (error as { code?: string } | null)?.code ?? 'CONVERGE_SOURCE' });
        }
      },
    });
    const channel = new MessageChannel();
    this.#port = channel.port1;
    const data: ConvergenceWorkerData & { port: MessagePort } = {
      ingest,
      dispatch,
      main,
      episodeBudget: options.episodeBudget,
      rateLimit: { ...options.rateLimit },
      changeFeedSize: options.changeFeedSize,
      settleMs: options.settleMs,
      subscriptionCapacity: options.subscriptionCapacity,
      port: channel.port2,
    };
    this.#worker = startWorker(CONVERGENCE_WORKER, { workerData: data, transferList: [channel.port2], name: 'converge:convergence' });
    this.#control = wrap<ConvergenceControl>(nodeEndpoint(this.#port, () => this.#nudge()));
    this.#dispatcher = new MainDispatcher({
      consumer: new RingConsumer(this.#dispatchRing),
      // Acknowledgements always wait for space: losing one would hold quiescence forever.
      producer: this.#waitingProducer,
      decoder: new FrameDecoder(),
      encoder: new FrameEncoder(),
      flags: new Int32Array(main),
      onError: (info) => this.#emitter.emit('dispatch-error', info),
      onFatal: (error) => this.#fail(error),
      runTask: (task) => this.#pool.run(task),
    });
    this.#port.on('message', (message: WorkerMessage) => this.#onMessage(message));
    this.#worker.on('error', (error) => this.#fail(error));
    this.#worker.on('exit', (code) => {
      if (this.#state === 'running' || this.#state === 'closing') this.#fail(new WorkerCrashedError(`convergence worker exited with code ${code}`));
    });
  }

  /** Resolved options (frozen). */
  get options(): ResolvedEngineOptions {
    return this.#options;
  }

  /** @internal Waits until the worker answers. */
  async ready(): Promise<void> {
    await this.#query(() => this.#control.status());
  }

  /** Registers a subscription. Rejects with ValidationError naming the field on bad input. */
  async subscribe(options: SubscribeOptions, internal: { ownerId?: string; id?: string } = {}): Promise<Subscription> {
    this.#assertRunning();
    const input = parseInput(SubscribeSchema, options, 'subscription');
    const id = internal.id ?? `sub_${randomBytes(6).toString('hex')}`;
    const spec: SubscriptionSpec = {
      id,
      handle: this.#nextHandle++,
      predicate: (input.predicate ?? {}) as PagePredicate,
      target: input.handler !== undefined || input.task !== undefined ? 'main' : 'none',
    };
    if (input.tolerance !== undefined) spec.tolerance = input.tolerance as NumericTolerance;
    if (input.outputs !== undefined) spec.outputs = input.outputs as PagePredicate[];
    if (internal.ownerId !== undefined) spec.ownerId = internal.ownerId;
    const task = input.task === undefined ? undefined : taskTarget(input.task);
    if (task !== undefined) spec.task = { module: task.module, name: task.name };
    // Register the handler before the worker can dispatch to it.
    this.#dispatcher.register(spec.handle, id, input.handler, task);
    try {
      await this.#request(IngestTag.SUBSCRIBE, spec);
    } catch (error) {
      this.#dispatcher.unregister(spec.handle);
      throw error;
    }
    this.#subscriptions.set(id, { spec, handler: input.handler });
    return { id, dispatchKey: ConvergenceDispatchProtocol.dispatchKey(id), unsubscribe: () => this.unsubscribe(id) };
  }

  /** Removes a subscription; true if it existed. Its handler is not called after this resolves. */
  async unsubscribe(id: string): Promise<boolean> {
    this.#assertRunning();
    const subscriptionId = parseInput(IdSchema, id, 'id');
    const [removed] = (await this.#request(IngestTag.UNSUBSCRIBE, [subscriptionId])) as boolean[];
    const local = this.#subscriptions.get(subscriptionId);
    if (local !== undefined) {
      this.#subscriptions.delete(subscriptionId);
      this.#dispatcher.unregister(local.spec.handle);
    }
    return removed === true;
  }

  /**
   * Puts one event or an array of events into the ingest ring. Every event is validated first; if
   * any is invalid, none is written (ValidationError names it, e.g. `events[3].kind`). Resolves
   * once the events are in the ring. Called from inside a handler, the events are counted before
   * that handler's own dispatch is released. `sourceId` fills events that lack one; `causedBy`
   * names the subscription whose handler emitted them (automatic while a handler runs
   * synchronously; pass `dispatch.subscriptionId` after an await) for `detectCycle`.
   */
  dispatchChange(events: PageChangeEvent | readonly PageChangeEvent[], options: { sourceId?: string; causedBy?: string } = {}): Promise<void> {
    try {
      this.#assertRunning();
      // Most calls pass no options: skip zod for them (it costs more than encoding a small batch).
      const { sourceId, causedBy } = isEmpty(options) ? NO_OPTIONS : parseInput(DispatchOptionsSchema, options, 'options');
      const list = prepareEvents(events, sourceId);
      if (list.length === 0) return Promise.resolve();
      const cause = causedBy ?? dispatchContext.current;
      const frames: Uint8Array[] = [];
      for (let i = 0; i < list.length; i += EVENTS_PER_FRAME) this.#encodeChunk(list.slice(i, i + EVENTS_PER_FRAME), cause, frames);
      return this.#producer.write(frames) ?? Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #encodeChunk(events: readonly PageChangeEvent[], cause: string | undefined, out: Uint8Array[]): void {
    const seq = this.#nextFrameSeq;
    const meta: IngestMeta = cause === undefined ? { seq } : { seq, cause };
    const frame = this.#encoder.encodeEvents(IngestTag.EVENTS, meta, events);
    if (frame.length <= this.#ingest.maxFrameBytes) {
      this.#nextFrameSeq++;
      this.#dispatcher.remember(seq, events);
      out.push(frame);
      return;
    }
    if (events.length === 1) throw new FrameTooLargeError(frame.length, this.#ingest.maxFrameBytes);
    const half = events.length >> 1;
    this.#encodeChunk(events.slice(0, half), cause, out);
    this.#encodeChunk(events.slice(half), cause, out);
  }

  /**
   * Resolves with the report of the episode in progress once it reaches quiescence (the last
   * report, at once, if the engine is idle; a zeroed report if no episode ever ran), or with null
   * after `timeoutMs`.
   */
  async waitForQuiescence(options: { timeoutMs?: number } = {}): Promise<QuiescenceReport | null> {
    this.#assertRunning();
    const { timeoutMs } = parseInput(WaitOptionsSchema, options, 'options');
    const requestId = this.#nextRequest++;
    const reply = this.#await(requestId);
    this.#write([IngestTag.AWAIT_QUIESCENCE, requestId]);
    if (timeoutMs === undefined) return (await reply) as QuiescenceReport;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => {
        this.#requests.delete(requestId);
        resolve(null);
      }, timeoutMs);
    });
    try {
      return (await Promise.race([reply, timeout])) as QuiescenceReport | null;
    } finally {
      clearTimeout(timer);
    }
  }

  /** State, counters, rings and subscriptions. */
  async getStatus(): Promise<EngineStatus> {
    this.#assertRunning();
    const worker = await this.#query(() => this.#control.status());
    const ingest = this.#ingest.stats();
    return {
      state: worker.state,
      episodeId: worker.episodeId,
      counters: worker.counters,
      ring: { ...ingest, dispatch: this.#dispatchRing.stats() },
      pool: this.#pool.stats(),
      subscriptions: worker.subscriptions,
      inFlight: worker.inFlight,
      deferred: worker.deferred,
      handlersRunning: this.#dispatcher.running,
    };
  }

  /** The newest `limit` change-feed entries, oldest first; `limit <= 0` gives []. */
  async getChangeFeed(options: { limit?: number } = {}): Promise<ChangeFeedEntry[]> {
    this.#assertRunning();
    const { limit = 50 } = parseInput(FeedOptionsSchema, options, 'options');
    if (limit <= 0) return [];
    return this.#query(() => this.#control.changeFeed(Math.floor(limit)));
  }

  /** Subscription cycles, from declared outputs and from observed handler causality. */
  async detectCycle(): Promise<string[][]> {
    this.#assertRunning();
    return this.#query(() => this.#control.detectCycle());
  }

  /**
   * Starts the one bridge of a non-static source: its events flow into the ingest ring in batches
   * (in the watch worker thread for sources that support it, such as LocalFsWatcher). Mapping the
   * same source again returns the same bridge. A static source is refused with StaticSourceError.
   */
  async mapSource(source: ContextPageSource): Promise<MappedSource> {
    this.#assertRunning();
    return this.#sources.map(source);
  }

  /** Stops a source's bridge and waits for it; false if the source was not mapped. */
  async unmapSource(source: ContextPageSource): Promise<boolean> {
    this.#assertRunning();
    return this.#sources.unmap(source);
  }

  /** A handle that owns the subscriptions made through it. */
  scope(ownerId: string): EngineScope {
    const owner = parseInput(IdSchema, ownerId, 'ownerId');
    return new EngineScope(this, owner, []);
  }

  /**
   * Re-creates a serialised scope's subscriptions with their original ids. Handlers are functions
   * and do not serialise: pass them by subscription id (or a function choosing one).
   */
  async restoreScope(
    data: SerializedScope,
    options: { handlers?: Record<string, SubscriptionHandler> | ((id: string) => SubscriptionHandler | undefined) } = {},
  ): Promise<EngineScope> {
    this.#assertRunning();
    const input = parseInput(SerializedScopeSchema, data, 'data');
    const pick = typeof options.handlers === 'function' ? options.handlers : (id: string) => (options.handlers as Record<string, SubscriptionHandler> | undefined)?.[id];
    const ids: string[] = [];
    try {
      for (const sub of input.subscriptions) {
        const handler = pick(sub.id);
        const spec: SubscribeOptions = { predicate: sub.predicate as unknown as PagePredicate };
        if (sub.tolerance !== undefined) spec.tolerance = sub.tolerance as unknown as NumericTolerance;
        if (sub.outputs !== undefined) spec.outputs = sub.outputs as unknown as PagePredicate[];
        if (handler !== undefined) spec.handler = handler;
        else if (sub.task !== undefined) spec.task = sub.task;
        await this.subscribe(spec, { ownerId: input.ownerId, id: sub.id });
        ids.push(sub.id);
      }
    } catch (error) {
      // All or nothing: a half-restored scope would leave subscriptions nobody owns.
      for (const id of ids) await this.unsubscribe(id).catch(() => false);
      throw error;
    }
    return new EngineScope(this, input.ownerId, ids);
  }

  /** @internal Serialisable form of a subscription, for scopes. */
  describeSubscription(id: string): SubscriptionSpec | undefined {
    return this.#subscriptions.get(id)?.spec;
  }

  on<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): this {
    this.#emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  once<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): this {
    this.#emitter.once(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): this {
    this.#emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /**
   * Stops sources, waits (up to `closeTimeoutMs`) for the engine to settle, then stops the worker
   * and frees the rings. Idempotent: every call returns the same promise. Later calls of any other
   * method reject with ClosedError.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Bridges stop first (and write what they hold), so that the settle below includes their events.
    await this.#sources.close().catch(() => undefined);
    if (this.#state === 'running') {
      this.#state = 'closing';
      await this.#settleBeforeClose();
      try {
        this.#write([IngestTag.CLOSE]);
      } catch {
        // The ring may be closed already if the worker failed.
      }
    }
    const exited = new Promise<void>((resolve) => {
      if (this.#worker.threadId === -1) resolve();
      else this.#worker.once('exit', () => resolve());
    });
    const timer = setTimeout(() => void this.#worker.terminate(), this.#options.closeTimeoutMs);
    await exited;
    clearTimeout(timer);
    await this.#pool.destroy().catch(() => undefined);
    this.#state = 'closed';
    this.#ingest.close();
    this.#dispatchRing.close();
    this.#port.close();
    this.#rejectRequests(new ClosedError());
  }

  async #settleBeforeClose(): Promise<void> {
    const requestId = this.#nextRequest++;
    const reply = this.#await(requestId);
    let timer: NodeJS.Timeout | undefined;
    try {
      this.#write([IngestTag.AWAIT_QUIESCENCE, requestId]);
      await Promise.race([reply, new Promise((resolve) => (timer = setTimeout(resolve, this.#options.closeTimeoutMs)))]);
    } catch {
      // Closing proceeds even if the worker failed meanwhile.
    } finally {
      clearTimeout(timer);
      this.#requests.delete(requestId);
    }
  }

  #assertRunning(): void {
    if (this.#state === 'failed') throw this.#failure ?? new WorkerCrashedError('engine failed');
    if (this.#state !== 'running') throw new ClosedError();
  }

  #write(frame: unknown[]): void {
    const pending = this.#waitingProducer.write(this.#encoder.encode(frame));
    if (pending !== undefined) pending.catch((error: unknown) => this.#fail(error));
  }

  #await(requestId: number): Promise<unknown> {
    return new Promise((resolve, reject) => this.#requests.set(requestId, { resolve, reject }));
  }

  async #request(tag: number, payload: unknown): Promise<unknown> {
    const requestId = this.#nextRequest++;
    const reply = this.#await(requestId);
    try {
      // Control frames must not be refused by onFull 'throw': they wait for space like acknowledgements.
      const frame = this.#encoder.encode([tag, requestId, payload]);
      const pending = this.#waitingProducer.write(frame);
      if (pending !== undefined) await pending;
    } catch (error) {
      this.#requests.delete(requestId);
      throw error;
    }
    return reply;
  }

  async #query<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (this.#state === 'failed' && this.#failure !== undefined) throw this.#failure;
      throw error;
    }
  }

  /** Wakes a worker parked in Atomics.wait so it reads a Comlink message now. */
  #nudge(): void {
    this.#ingest.nudge();
  }

  #onMessage(message: WorkerMessage): void {
    switch (message.type) {
      case 'wake':
        this.#dispatcher.wake();
        return;
      case 'reply': {
        const request = this.#requests.get(message.requestId);
        if (request === undefined) return;
        this.#requests.delete(message.requestId);
        if (message.error !== undefined) request.reject(deserializeError(message.error));
        else request.resolve(message.value);
        return;
      }
      case 'quiescence':
        this.#emitter.emit('quiescence', message.report);
        return;
      case 'fatal':
        this.#fail(deserializeError(message.error));
        return;
      default:
        // Comlink's own replies share the port; they carry no `type` of ours.
        return;
    }
  }

  #fail(error: unknown): void {
    if (this.#state === 'failed' || this.#state === 'closed') return;
    this.#state = 'failed';
    this.#failure =
      error instanceof ConvergeError ? error : new WorkerCrashedError('convergence worker failed', { cause: error });
    this.#rejectRequests(this.#failure);
    this.#ingest.close();
    this.#dispatchRing.close();
    void this.#worker.terminate();
  }

  #rejectRequests(error: unknown): void {
    for (const request of this.#requests.values()) request.reject(error);
    this.#requests.clear();
  }
}

const NO_OPTIONS: { sourceId?: string; causedBy?: string } = Object.freeze({});

function isEmpty(value: object): boolean {
  if (value === null || typeof value !== 'object') return false;
  for (const _ in value) return false;
  return true;
}

/** Normalises a task option to a module URL and an export name. */
function taskTarget(task: { filename: string | URL; name?: string | undefined }): { module: string; name: string } {
  const module = task.filename instanceof URL ? task.filename.href : task.filename.startsWith('file:') ? task.filename : pathToFileURL(task.filename).href;
  return { module, name: task.name ?? 'default' };
}

/** Validates events (all or none), applies the default sourceId and fills in `ts`. */
function prepareEvents(events: PageChangeEvent | readonly PageChangeEvent[], sourceId: string | undefined): PageChangeEvent[] {
  const many = Array.isArray(events);
  const input = (many ? events : [events]) as readonly unknown[];
  let prepared: unknown[] | undefined;
  const now = Date.now();
  for (let i = 0; i < input.length; i++) {
    const e = input[i] as PageChangeEvent | null;
    if (e === null || typeof e !== 'object') continue;
    if ((e.sourceId === undefined && sourceId !== undefined) || e.ts === undefined) {
      // Copy-on-write: the caller's objects are never mutated, and an array that needs nothing is not copied.
      prepared ??= input.slice();
      prepared[i] = { ...e, sourceId: e.sourceId ?? sourceId, ts: e.ts ?? now };
    }
  }
  const list = prepared ?? input;
  return validateEvents(many ? list : list[0], 'events');
}

/** Creates an engine and starts its convergence worker. Rejects with ValidationError on bad options. */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  const resolved = resolveEngineOptions(options);
  const engine = new Engine(resolved);
  try {
    await engine.ready();
  } catch (error) {
    await engine.close().catch(() => undefined);
    throw error;
  }
  return engine;
}
