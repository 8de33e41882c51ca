/**
 * The embedding API: {@link createEngine} and the {@link Engine} facade (DESIGN §3).
 *
 * The facade validates at the boundary and keeps its machinery in private fields: the worker link
 * (worker-link.ts: thread, port, replies, failure), the ingest writer (ingest-writer.ts), the
 * dispatcher (dispatcher.ts), the source bridges (source-bridge.ts). It shares three rings with the
 * convergence worker — ingest (events, subscription changes, quiescence waits and queries, in one
 * order), acks (acknowledgements, never behind events) and dispatch (batches for main-thread
 * handlers). Comlink serves only the start-up ping and close's report, which must not wait behind events.
 *
 * Lifetime: the worker holds the process open only while this thread wrote something the worker has
 * not been seen to finish (see #checkIdle), a request is pending, a source is mapped, or close() runs.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ResourceLimits } from 'node:worker_threads';
import { z } from 'zod';
import { ClosedError, type ConvergeError, WorkerCrashedError } from '../shared/errors.js';
import { ConvergenceDispatchProtocol, type PageChangeEvent } from '../shared/events.js';
import { FrameDecoder, FrameEncoder } from '../shared/framing.js';
import type { NumericTolerance, PagePredicate } from '../shared/predicates.js';
import {
  type BudgetExhaustedInfo,
  type ChangeFeedEntry,
  type ControlFrame,
  type EngineCounters,
  type EngineState,
  IngestTag,
  MainSlot,
  type QueryKind,
  type QuiescenceReport,
  type RingStallInfo,
  type SubscriptionSpec,
  type WorkerStatus,
} from '../shared/protocol.js';
import { Ring, RingConsumer, RingProducer, type RingStats } from '../shared/ring.js';
import { parseInput } from '../shared/validation.js';
import { type Dispatch, type DispatchErrorInfo, dispatchContext, isDispatch, MainDispatcher, type SubscriptionHandler } from './dispatcher.js';
import { IngestWriter } from './ingest-writer.js';
import { type EngineOptions, type ResolvedEngineOptions, resolveEngineOptions } from './options.js';
import { EngineScope, type ScopeHost, type SerializedScope, SerializedScopeSchema } from './scope.js';
import { type ContextPageSource, type MappedSource, SourceBridges, warnSourceError } from './source-bridge.js';
import { parseSubscribeOptions, type SubscribeOptions, type Subscription } from './subscription.js';
import { TaskPool, type TaskPoolStats } from './task-pool.js';
import type { TaskStore } from '../coordination/task-store.js';
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
  /** `waitForQuiescence` calls the worker has not answered yet (one that timed out is cancelled there too). */
  quiescenceWaiters: number;
  /**
   * The V8 limits the engine's own threads run with (see the `resourceLimits` option): the
   * convergence worker's, and the watch worker's once a source runs there (null before).
   */
  resourceLimits: { convergence: ResourceLimits; watch: ResourceLimits | null };
}

/** Events an engine emits. */
export interface EngineEvents {
  quiescence: [report: QuiescenceReport];
  'dispatch-error': [info: DispatchErrorInfo];
  'source-error': [info: { sourceId: string; error: unknown }];
  /** An episode's budget or depth limit refused derived dispatches; a process warning when unheard. */
  'budget-exhausted': [info: BudgetExhaustedInfo];
  /**
   * A thread died while writing into a ring (between reserving space and publishing it): after the
   * stall timeout the reservation was skipped and its frames lost (counted in `getStatus().ring`
   * as `stalledReservations`). A process warning when unheard.
   */
  'ring-stalled': [info: RingStallInfo];
}

/** What `engine.dispatchChange` takes besides the events. */
export interface DispatchChangeOptions {
  /** Fills `sourceId` in events that lack one. */
  sourceId?: string;
  /**
   * The dispatch these events derive from (a handler's `dispatch`, or a pool task's `ctx.dispatch`):
   * they then count against `episodeBudget` and `maxDerivationDepth`. A subscription id records
   * causality for `detectCycle` and counts against the budget at depth 1 (without the dispatch the
   * depth is unknown); pass the dispatch where you can.
   */
  causedBy?: string | Pick<Dispatch, 'id' | 'subscriptionId'>;
}

const DispatchLike = z.custom<Pick<Dispatch, 'id' | 'subscriptionId'>>(
  (v) =>
    isDispatch(v) ||
    (v !== null && typeof v === 'object' && Number.isSafeInteger((v as Dispatch).id) && typeof (v as Dispatch).subscriptionId === 'string'),
  'must be a subscription id or a dispatch ({ id, subscriptionId })',
);
const DispatchOptionsSchema = z.object({ sourceId: z.string().min(1).optional(), causedBy: z.union([z.string().min(1), DispatchLike]).optional() }).strict();
const DerivedOptionsSchema = z.object({ sourceId: z.string().min(1).optional() }).strict();
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
  readonly #acks: Ring;
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
  /** True from a write until the worker is seen idle after it (see #checkIdle). */
  #busy = false;
  /** An idle probe (a status query in ring order) is in flight. */
  #probing = false;
  /** Something happened while the probe was in flight: ask again if its answer is "busy". */
  #reprobe = false;
  #probeId = 0;
  #closingRef = false;
  #state: Lifecycle = 'running';
  #failure: ConvergeError | undefined;
  #closing: Promise<void> | undefined;

  /** @internal Use {@link createEngine}. */
  constructor(options: ResolvedEngineOptions) {
    this.#options = options;
    const ingest = Ring.allocate(options.ringBytes);
    const dispatch = Ring.allocate(options.ringBytes);
    const acks = Ring.allocate(ACK_RING_BYTES);
    const main = new SharedArrayBuffer(MainSlot.SIZE * 4);
    this.#ingest = new Ring(ingest);
    this.#dispatchRing = new Ring(dispatch);
    this.#acks = new Ring(acks);
    this.#pool = new TaskPool(ingest, options.pool, options.store as TaskStore | undefined, acks);
    this.#link = new WorkerLink(
      {
        ingest,
        dispatch,
        main,
        acks,
        maxInFlight: options.maxInFlight,
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
        onQuiescence: (report) => {
          this.#emitter.emit('quiescence', report);
          this.#checkIdle();
        },
        // The idle probe's own reply is handled where it was sent.
        onSettled: (requestId) => requestId !== this.#probeId && this.#checkIdle(),
        onBudgetExhausted: (info) => this.#onBudgetExhausted(info),
        onRingStalled: (info) => this.#onRingStalled(info),
        onFailure: (error) => this.#onFailure(error),
      },
      { ...options.resourceLimits.convergence },
    );
    this.#sources = new SourceBridges({
      ingest,
      resourceLimits: { ...options.resourceLimits.watch },
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
    this.#writer = new IngestWriter(this.#ingest, options.onFull, {
      canRemember: () => this.#dispatcher.canRemember(),
      remember: (seq, events, bytes) => this.#dispatcher.remember(seq, events, bytes),
    });
    // Acknowledgements have a ring of their own and always wait for space there: losing one would
    // hold quiescence forever, and queueing one behind events could wedge the bound. Derived events
    // share it (one producer: a handler's events stay ahead of its ack), so that a handler awaiting
    // them is never stuck behind a full ingest ring while the worker waits for its ack.
    const ackProducer = new RingProducer(this.#acks, { onFull: 'wait' });
    this.#writer.routeDerived(ackProducer, () => this.#ingest.nudge());
    this.#dispatcher = new MainDispatcher({
      consumer: new RingConsumer(this.#dispatchRing),
      producer: ackProducer,
      // The worker parks on the ingest ring's signal only.
      afterAck: () => this.#ingest.nudge(),
      writeDerived: (events, options, dispatch) => this.#dispatchDerived(events, options, dispatch),
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
    if (input.task !== undefined) {
      spec.task = { module: input.task.module, name: input.task.name };
      // Load the module in a pool thread now: a typo fails here, naming the field, not per dispatch.
      await this.#pool.check(input.task.module, input.task.name, 'subscription.');
      this.#assertRunning();
    }
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
   * once the events are in the ring; while the ring is full (the worker at `maxInFlight`, or simply
   * behind) it waits for space — or, with `onFull: 'throw'`, rejects with RingFullError and writes
   * nothing. `sourceId` fills events that lack one.
   *
   * Events are *external* unless they are derived from a dispatch: called synchronously inside a
   * handler they are (automatically); after an await pass `causedBy: dispatch` (or use
   * `dispatch.dispatchChange`). Derived events count against `episodeBudget` and
   * `maxDerivationDepth`; `causedBy` as a subscription id records causality for `detectCycle` and
   * counts against the budget at depth 1 (the worker cannot know the depth without the dispatch).
   */
  dispatchChange(events: PageChangeEvent | readonly PageChangeEvent[], options: DispatchChangeOptions = {}): Promise<void> {
    try {
      this.#assertRunning();
      // Most calls pass no options: skip zod for them (it costs more than encoding a small batch).
      const { sourceId, causedBy } = isEmpty(options) ? NO_OPTIONS : parseInput(DispatchOptionsSchema, options, 'options');
      let cause: string | undefined;
      let parent: number | undefined;
      if (causedBy === undefined) {
        const context = dispatchContext.current;
        if (context !== undefined) {
          cause = context.subscriptionId;
          parent = context.id;
        }
      } else if (typeof causedBy === 'string') {
        cause = causedBy;
      } else {
        cause = causedBy.subscriptionId;
        parent = causedBy.id;
      }
      return this.#writeEvents(events, sourceId, cause, parent);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `dispatch.dispatchChange(events, options)`: events derived from `dispatch`. */
  #dispatchDerived(events: PageChangeEvent | readonly PageChangeEvent[], options: { sourceId?: string } | undefined, dispatch: Dispatch): Promise<void> {
    try {
      this.#assertRunning();
      const { sourceId } = options === undefined || isEmpty(options) ? NO_OPTIONS : parseInput(DerivedOptionsSchema, options, 'options');
      return this.#writeEvents(events, sourceId, dispatch.subscriptionId, dispatch.id);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #writeEvents(events: PageChangeEvent | readonly PageChangeEvent[], sourceId: string | undefined, cause: string | undefined, parent: number | undefined): Promise<void> {
    if (!this.#busy) this.#markBusy();
    return this.#writer.writeEvents(events, sourceId, cause, parent) ?? Promise.resolve();
  }

  /**
   * Resolves with the report of the episode in progress once it reaches quiescence (the last
   * report, at once, if the engine is idle; a zeroed report if no episode ever ran), or with null
   * after `timeoutMs` (the waiter is then forgotten on both threads).
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
        // Free the waiter here and in the worker, which would otherwise keep it until quiescence.
        this.#link.forget(requestId);
        if (this.#state === 'running') this.#write([IngestTag.CANCEL_WAIT, requestId]);
        resolve(null);
      }, timeoutMs);
    });
    try {
      return (await Promise.race([reply, timeout])) as QuiescenceReport | null;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * State, counters, rings and subscriptions. Answered in ring order: it observes every event this
   * thread wrote before the call (read your writes), like the other queries.
   */
  async getStatus(): Promise<EngineStatus> {
    this.#assertRunning();
    const worker = (await this.#request(IngestTag.QUERY, 'status' satisfies QueryKind)) as WorkerStatus;
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
      quiescenceWaiters: worker.quiescenceWaiters,
      resourceLimits: { convergence: this.#link.resourceLimits, watch: this.#sources.watchResourceLimits },
    };
  }

  /** The newest `limit` change-feed entries, oldest first; `limit <= 0` gives []. In ring order. */
  async getChangeFeed(options: { limit?: number } = {}): Promise<ChangeFeedEntry[]> {
    this.#assertRunning();
    const { limit = 50 } = parseInput(FeedOptionsSchema, options, 'options');
    if (limit <= 0) return [];
    return (await this.#request(IngestTag.QUERY, 'feed' satisfies QueryKind, Math.floor(limit))) as ChangeFeedEntry[];
  }

  /** Subscription cycles, from declared outputs and from observed handler causality. In ring order. */
  async detectCycle(): Promise<string[][]> {
    this.#assertRunning();
    return (await this.#request(IngestTag.QUERY, 'cycles' satisfies QueryKind)) as string[][];
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
    // Pool tasks see ctx.signal abort; close still waits for them to settle (up to closeTimeoutMs).
    this.#pool.abortAll();
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
    this.#acks.close();
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

  #write(frame: ControlFrame): void {
    const pending = this.#writer.writeControl(frame);
    if (pending !== undefined) pending.catch((error: unknown) => this.#link.fail(error));
  }

  async #request(tag: number, ...payload: unknown[]): Promise<unknown> {
    const { id: requestId, reply } = this.#link.request();
    try {
      // Control frames must not be refused by onFull 'throw': they wait for space.
      const pending = this.#writer.writeControl([tag, requestId, ...payload] as ControlFrame);
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

  /** Loud, never silent: frames lost to a producer that died mid-write. */
  #onRingStalled(info: RingStallInfo): void {
    if (this.#emitter.listenerCount('ring-stalled') > 0) {
      this.#emitter.emit('ring-stalled', info);
      return;
    }
    process.emitWarning(
      `a producer died while writing into the ${info.ring} ring: its reservation of ${info.bytes} bytes was skipped after ${Math.round(info.waitedMs)} ms; the frames it held are lost`,
      { type: 'ConvergeRingWarning', code: 'CONVERGE_RING_STALLED' },
    );
  }

  #onFailure(error: ConvergeError): void {
    if (this.#state === 'closed') return;
    this.#state = 'failed';
    this.#failure = error;
    this.#dispatcher.stop();
    this.#ingest.close();
    this.#dispatchRing.close();
    this.#acks.close();
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

  /**
   * After a quiescence or a reply: if this thread wrote since the worker was last seen idle, ask the
   * worker (in ring order, behind everything written so far) whether it is idle now. It is when
   * nothing is in flight or deferred and no episode is open, and nothing was written after the
   * question. Then the worker stops holding the process open. If it is not idle, its episode will
   * end with a quiescence, which asks again.
   */
  #checkIdle(): void {
    if (this.#probing) {
      this.#reprobe = true;
      return;
    }
    if (!this.#busy || this.#state !== 'running' || this.#link.pending > 0) {
      this.#refreshRef();
      return;
    }
    this.#probing = true;
    this.#reprobe = false;
    const { id, reply } = this.#link.request();
    this.#probeId = id;
    this.#write([IngestTag.QUERY, id, 'status' satisfies QueryKind]);
    const mark = this.#writer.writes;
    reply.then(
      (value) => {
        this.#probing = false;
        const status = value as WorkerStatus;
        const idle = status.inFlight === 0 && status.deferred === 0 && status.state !== 'converging' && this.#writer.writes === mark && this.#dispatcher.running === 0;
        if (idle) this.#busy = false;
        if (!idle && this.#reprobe) this.#checkIdle();
        else this.#refreshRef();
      },
      () => {
        this.#probing = false;
      },
    );
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

const NO_OPTIONS: DispatchChangeOptions = Object.freeze({});

/** Bytes of the ack ring: ACKS frames are a few bytes each (failures add a short error each). */
const ACK_RING_BYTES = 256 * 1024;

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
