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
import { z } from 'zod';
import { ClosedError, type ConvergeError, WorkerCrashedError } from '../shared/errors.js';
import { ConvergenceDispatchProtocol, type PageChangeEvent } from '../shared/events.js';
import { FrameDecoder, FrameEncoder } from '../shared/framing.js';
import type { NumericTolerance, PagePredicate } from '../shared/predicates.js';
import {
  type BudgetExhaustedInfo,
  type ChangeFeedEntry,
  type EngineCounters,
  type EngineState,
  IngestTag,
  MainSlot,
  type QuiescenceReport,
  type SubscriptionSpec,
} from '../shared/protocol.js';
import { Ring, RingConsumer, type RingStats } from '../shared/ring.js';
import { parseInput } from '../shared/validation.js';
import { type DispatchErrorInfo, dispatchContext, MainDispatcher, type SubscriptionHandler } from './dispatcher.js';
import { IngestWriter } from './ingest-writer.js';
import { type EngineOptions, type ResolvedEngineOptions, resolveEngineOptions } from './options.js';
import { EngineScope, type ScopeHost, type SerializedScope, SerializedScopeSchema } from './scope.js';
import { type ContextPageSource, type MappedSource, SourceBridges, warnSourceError } from './source-bridge.js';
import { parseSubscribeOptions, type SubscribeOptions, type Subscription } from './subscription.js';
import { TaskPool, type TaskPoolStats } from './task-pool.js';
import { WorkerLink } from './worker-link.js';

export type { ContextPageSource, MappedSource } from './source-bridge.js';
export type { SubscribeOptions, Subscription } from './subscription.js';

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
  /** An episode's budget or depth limit refused derived dispatches; a process warning when unheard. */
  'budget-exhausted': [info: BudgetExhaustedInfo];
}

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
  readonly #link: WorkerLink;
  readonly #ingest: Ring;
  readonly #dispatchRing: Ring;
  readonly #writer: IngestWriter;
  readonly #dispatcher: MainDispatcher;
  readonly #pool: TaskPool;
  readonly #emitter = new EventEmitter();
  readonly #subscriptions = new Map<string, LocalSubscription>();
  /** One bridge per mapped source (src/main/source-bridge.ts). */
  readonly #sources: SourceBridges;
  /** Subscriptions already warned about a dispatch error nobody listened to. */
  readonly #warnedErrors = new Set<string>();
  /** What scopes use instead of the engine itself (subscribing for an owner is not public API). */
  readonly #scopeHost: ScopeHost = {
    subscribe: (options, ownerId) => this.#subscribe(options, ownerId, undefined),
    unsubscribe: (id) => this.unsubscribe(id),
    describe: (id) => this.#subscriptions.get(id)?.spec,
  };
  #nextHandle = 1;
  /** True from a write until the worker is seen idle after it (see #refreshRef). */
  #busy = false;
  #closingRef = false;
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
    this.#pool = new TaskPool(ingest, options.pool);
    this.#link = new WorkerLink(
      {
        ingest,
        dispatch,
        main,
        episodeBudget: options.episodeBudget,
        maxDerivationDepth: options.maxDerivationDepth,
        rateLimit: { ...options.rateLimit },
        changeFeedSize: options.changeFeedSize,
        settleMs: options.settleMs,
        subscriptionCapacity: options.subscriptionCapacity,
      },
      () => this.#ingest.nudge(),
      {
        onWake: () => this.#dispatcher.wake(),
        onQuiescence: (report) => this.#emitter.emit('quiescence', report),
        onSettled: () => this.#refreshRef(),
        onBudgetExhausted: (info) => this.#onBudgetExhausted(info),
        onFailure: (error) => this.#onFailure(error),
      },
    );
    this.#sources = new SourceBridges({
      ingest,
      onChange: () => this.#refreshRef(),
      onQuiescence: (listener) => {
        this.#emitter.on('quiescence', listener);
        return () => this.#emitter.off('quiescence', listener);
      },
      dispatch: (events) => this.dispatchChange(events),
      reportError: (sourceId, error) => {
        // Loud, never silent: a process warning when nobody listens for source errors.
        if (!this.#emitter.emit('source-error', { sourceId, error })) warnSourceError(sourceId, error);
      },
    });
    this.#writer = new IngestWriter(this.#ingest, options.onFull, (seq, events) => this.#dispatcher.remember(seq, events));
    this.#dispatcher = new MainDispatcher({
      consumer: new RingConsumer(this.#dispatchRing),
      // Acknowledgements always wait for space: losing one would hold quiescence forever.
      producer: this.#writer.controlProducer,
      decoder: new FrameDecoder(),
      encoder: new FrameEncoder(),
      flags: new Int32Array(main),
      onError: (info) => this.#onDispatchError(info),
      onFatal: (error) => this.#link.fail(error),
      runTask: (task) => this.#pool.run(task),
    });
  }

  /** Resolved options (frozen). */
  get options(): ResolvedEngineOptions {
    return this.#options;
  }

  /** @internal Waits until the worker answers. */
  async ready(): Promise<void> {
    await this.#link.query((control) => control.status());
  }

  /** Registers a subscription. Rejects with ValidationError naming the field on bad input. */
  subscribe(options: SubscribeOptions): Promise<Subscription> {
    return this.#subscribe(options, undefined, undefined);
  }

  async #subscribe(options: SubscribeOptions, ownerId: string | undefined, id: string | undefined): Promise<Subscription> {
    this.#assertRunning();
    const input = parseSubscribeOptions(options);
    const subscriptionId = id ?? `sub_${randomBytes(6).toString('hex')}`;
    const spec: SubscriptionSpec = {
      id: subscriptionId,
      handle: this.#nextHandle++,
      predicate: input.predicate,
      target: input.handler !== undefined || input.task !== undefined ? 'main' : 'none',
    };
    if (input.tolerance !== undefined) spec.tolerance = input.tolerance;
    if (input.outputs !== undefined) spec.outputs = input.outputs;
    if (ownerId !== undefined) spec.ownerId = ownerId;
    if (input.task !== undefined) spec.task = { module: input.task.module, name: input.task.name };
    // Register the handler before the worker can dispatch to it.
    this.#dispatcher.register(spec.handle, subscriptionId, input.handler, input.task);
    try {
      await this.#request(IngestTag.SUBSCRIBE, spec);
    } catch (error) {
      this.#dispatcher.unregister(spec.handle);
      throw error;
    }
    this.#subscriptions.set(subscriptionId, { spec, handler: input.handler });
    return { id: subscriptionId, dispatchKey: ConvergenceDispatchProtocol.dispatchKey(subscriptionId), unsubscribe: () => this.unsubscribe(subscriptionId) };
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
      if (!this.#busy) this.#markBusy();
      return this.#writer.writeEvents(events, sourceId, causedBy ?? dispatchContext.current) ?? Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Resolves with the report of the episode in progress once it reaches quiescence (the last
   * report, at once, if the engine is idle; a zeroed report if no episode ever ran), or with null
   * after `timeoutMs`.
   */
  async waitForQuiescence(options: { timeoutMs?: number } = {}): Promise<QuiescenceReport | null> {
    this.#assertRunning();
    const { timeoutMs } = parseInput(WaitOptionsSchema, options, 'options');
    const { id: requestId, reply } = this.#link.request();
    this.#write([IngestTag.AWAIT_QUIESCENCE, requestId]);
    if (timeoutMs === undefined) return (await reply) as QuiescenceReport;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => {
        this.#link.forget(requestId);
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
    const worker = await this.#link.query((control) => control.status());
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
    return this.#link.query((control) => control.changeFeed(Math.floor(limit)));
  }

  /** Subscription cycles, from declared outputs and from observed handler causality. */
  async detectCycle(): Promise<string[][]> {
    this.#assertRunning();
    return this.#link.query((control) => control.detectCycle());
  }

  /**
   * Starts the one bridge of a non-static source: its events flow into the ingest ring in batches
   * (in the watch worker thread for sources that support it, such as LocalFsWatcher). Mapping the
   * same source again returns the same bridge. A static source is refused with StaticSourceError.
   */
  async mapSource(source: ContextPageSource): Promise<MappedSource> {
    this.#assertRunning();
    const mapped = this.#sources.map(source);
    this.#refreshRef();
    return mapped;
  }

  /** Stops a source's bridge and waits for it; false if the source was not mapped. */
  async unmapSource(source: ContextPageSource): Promise<boolean> {
    this.#assertRunning();
    return this.#sources.unmap(source);
  }

  /** A handle that owns the subscriptions made through it. */
  scope(ownerId: string): EngineScope {
    const owner = parseInput(IdSchema, ownerId, 'ownerId');
    return new EngineScope(this.#scopeHost, owner, []);
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
        await this.#subscribe(spec, input.ownerId, sub.id);
        ids.push(sub.id);
      }
    } catch (error) {
      // All or nothing: a half-restored scope would leave subscriptions nobody owns.
      for (const id of ids) await this.unsubscribe(id).catch(() => false);
      throw error;
    }
    return new EngineScope(this.#scopeHost, input.ownerId, ids);
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
    const deadline = performance.now() + this.#options.closeTimeoutMs;
    this.#closingRef = true;
    this.#refreshRef();
    // Bridges stop first (and write what they hold), so that the settle below includes their events.
    const bridgesStopped = this.#sources.close().catch(() => undefined);
    if (this.#state === 'running') {
      this.#state = 'closing';
      this.#link.stopping();
      // Sources first: a bridge that still delivers after abort gets ClosedError as a source-error.
      const bridgesDone = (await within(bridgesStopped, deadline)) !== false;
      const settled = bridgesDone && (await this.#settleBeforeClose(deadline));
      if (!settled) await this.#warnGivingUp(bridgesDone ? 0 : this.#sources.size);
      this.#dispatcher.stop();
      try {
        this.#write([IngestTag.CLOSE]);
      } catch {
        // The ring may be closed already if the worker failed.
      }
    } else {
      this.#dispatcher.stop();
    }
    await this.#link.waitForExit(Math.max(0, deadline - performance.now()));
    await this.#pool.destroy().catch(() => undefined);
    this.#state = 'closed';
    this.#ingest.close();
    this.#dispatchRing.close();
    this.#link.dispose(new ClosedError());
  }

  /** Waits for quiescence until `deadline`; true if it was reached. */
  async #settleBeforeClose(deadline: number): Promise<boolean> {
    const { id: requestId, reply } = this.#link.request();
    try {
      this.#write([IngestTag.AWAIT_QUIESCENCE, requestId]);
      return (await within(reply, deadline)) !== false;
    } catch {
      // Closing proceeds even if the worker failed meanwhile.
      return true;
    } finally {
      this.#link.forget(requestId);
    }
  }

  /** close() stops waiting: say what it leaves behind (running handlers, undelivered dispatches). */
  async #warnGivingUp(bridgesRunning: number): Promise<void> {
    const parts: string[] = [];
    const running = this.#dispatcher.runningBySubscription();
    if (running.size > 0) {
      const list = [...running].map(([id, n]) => (n === 1 ? id : `${id} (${n})`)).join(', ');
      parts.push(`handlers still running for subscriptions ${list}; what they settle with is ignored`);
    }
    // Ask the worker what is still owed (a trailing delivery, dispatches not yet run), briefly.
    const status = await within(this.#link.query((control) => control.status()), performance.now() + STATUS_ON_CLOSE_MS).catch(() => false);
    if (typeof status === 'object') {
      if (status.deferred > 0) parts.push(`${status.deferred} rate-limited (trailing) deliveries not delivered`);
      const queued = status.inFlight - [...running.values()].reduce((a, b) => a + b, 0);
      if (queued > 0) parts.push(`${queued} dispatches not run`);
    }
    if (bridgesRunning > 0) parts.push(`${bridgesRunning} source bridges did not stop after abort`);
    if (parts.length === 0) parts.push('the engine did not settle');
    process.emitWarning(`converge: close() gave up after closeTimeoutMs (${this.#options.closeTimeoutMs} ms): ${parts.join('; ')}`, {
      code: 'CONVERGE_CLOSE_TIMEOUT',
    });
  }

  /** Reports a handler's error: to 'dispatch-error' listeners, or once per subscription as a process warning. */
  #onDispatchError(info: DispatchErrorInfo): void {
    if (this.#emitter.listenerCount('dispatch-error') > 0) {
      this.#emitter.emit('dispatch-error', info);
      return;
    }
    if (this.#warnedErrors.has(info.subscriptionId)) return;
    this.#warnedErrors.add(info.subscriptionId);
    const error = info.error;
    const detail = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
    process.emitWarning(
      `converge: the handler of subscription ${info.subscriptionId} failed (dispatch ${info.dispatchId}, page ${info.event.pageId}) and nothing listens to 'dispatch-error'; further failures of this subscription are counted (dispatchesFailed) but not printed.\n${detail}`,
      { code: 'CONVERGE_DISPATCH_ERROR' },
    );
  }

  #assertRunning(): void {
    if (this.#state === 'failed') throw this.#failure ?? new WorkerCrashedError('engine failed');
    if (this.#state !== 'running') throw new ClosedError();
  }

  #write(frame: unknown[]): void {
    const pending = this.#writer.writeControl(frame);
    if (pending !== undefined) pending.catch((error: unknown) => this.#link.fail(error));
  }

  async #request(tag: number, payload: unknown): Promise<unknown> {
    const { id: requestId, reply } = this.#link.request();
    try {
      // Control frames must not be refused by onFull 'throw': they wait for space like acknowledgements.
      const pending = this.#writer.writeControl([tag, requestId, payload]);
      if (pending !== undefined) await pending;
    } catch (error) {
      this.#link.forget(requestId);
      throw error;
    }
    return reply;
  }

  /** Loud, never silent: with nobody listening, a refused derivation is a process warning. */
  #onBudgetExhausted(info: BudgetExhaustedInfo): void {
    if (this.#emitter.listenerCount('budget-exhausted') > 0) {
      this.#emitter.emit('budget-exhausted', info);
      return;
    }
    const limit = info.reason === 'budget' ? `episodeBudget (${this.#options.episodeBudget} derived dispatches)` : `maxDerivationDepth (${this.#options.maxDerivationDepth})`;
    process.emitWarning(
      `episode ${info.episodeId} reached its ${limit}; further derived dispatches were not made (subscriptions: ${info.subscriptions.join(', ')})`,
      { type: 'ConvergeBudgetWarning', code: 'CONVERGE_BUDGET_EXHAUSTED' },
    );
  }

  #onFailure(error: ConvergeError): void {
    if (this.#state === 'closed') return;
    this.#state = 'failed';
    this.#failure = error;
    this.#dispatcher.stop();
    this.#ingest.close();
    this.#dispatchRing.close();
    this.#refreshRef();
  }

  /**
   * Lets the worker hold the process open only while there is something to wait for: a request or
   * query in flight, a mapped source, writes the worker has not been seen to finish, or close().
   */
  #markBusy(): void {
    this.#busy = true;
    this.#refreshRef();
  }

  #refreshRef(): void {
    const hold = this.#closingRef || (this.#state === 'running' && (this.#link.pending > 0 || this.#sources.size > 0 || this.#busy));
    this.#link.setRef(hold);
  }
}

/** How long close() asks the worker for its status before it warns without it. */
const STATUS_ON_CLOSE_MS = 1_000;

/** Resolves true if `promise` resolves before `deadline` (a performance.now() time), false at it. Rejections propagate. */
async function within<T>(promise: Promise<T>, deadline: number): Promise<T | false> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()))));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const NO_OPTIONS: { sourceId?: string; causedBy?: string } = Object.freeze({});

function isEmpty(value: object): boolean {
  if (value === null || typeof value !== 'object') return false;
  for (const _ in value) return false;
  return true;
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
