/**
 * The convergence worker's state machine: everything it decides, decided serially in ring order.
 *
 * It owns the subscription index, page graph, rate limiter, damper, episode and quiescence state,
 * in-flight accounting and the change feed. It has no I/O of its own: the loop in
 * `convergence-loop.ts` feeds it frames and a clock and gives it somewhere to write dispatches and
 * replies, so the same sequence of frames always yields the same decisions.
 *
 * In-flight accounting, the heart of quiescence: an event is in flight from the moment a producer
 * reserves it in the ingest ring (or declares it PENDING) until it has been matched here; a dispatch
 * to a main-thread handler is in flight from the moment it is created until the main thread
 * acknowledges it. The main thread writes (or declares PENDING) a handler's emitted events before
 * that handler's acknowledgement, so they are counted first. A deferred (rate-limited) delivery is
 * in flight until delivered or superseded. Quiescence needs all of that at zero, the ring drained,
 * and `settleMs` of that state.
 *
 * Determinism: every decision about an event is taken on *event time* (`ts`, stamped on entry when
 * absent), never on the worker's clock. The rate limiter is asked at the event's `ts`; a limited
 * event's trailing delivery becomes due at the event time its page's bucket refills, and is released
 * either when event time passes that instant (an event with a later `ts` arrives: the due deliveries
 * go first, in ring order) or when the engine is otherwise idle (ring drained, nothing in flight) —
 * whichever comes first. The idle release never waits on the wall clock, so quiescence is neither
 * early (the delivery is in flight until released) nor held for a second by a timer. One exception
 * keeps a slow handler from holding other pages' trailing deliveries: with the ring drained but
 * handlers still running, a delivery deferred for a whole rate-limit interval of the worker's clock
 * is released too (what a running handler emits is timing-dependent anyway). Otherwise the worker's
 * clock (`now`) serves only `settleMs` and a report's `durationMs`.
 *
 * Page graph in ring order: every event is applied to the page graph when it is received, whether its
 * dispatch happens now, later (rate-limited) or never. A deferred dispatch keeps the subscriptions the
 * event matched at that point (which is the reachability an `edgeReach` predicate needs), not the
 * graph.
 */
import { randomBytes } from 'node:crypto';
import { ProtocolError, serializeError } from '../shared/errors.js';
import { ConvergenceDamper } from '../shared/damper.js';
import { ConvergenceQuiescenceProtocol, type PageChangeEvent } from '../shared/event-kinds.js';
import { eventToTuple, readEvents, type EventTuple } from '../shared/framing.js';
import { PageGraph, appliesBeforeMatch } from '../shared/page-graph.js';

import { findCycles, predicatesMayOverlap } from '../shared/cycles.js';
import {
  asIngestFrame,
  type BudgetExhaustedInfo,
  type ChangeFeedEntry,
  type ConvergenceWorkerData,
  DEFAULT_MAX_DERIVATION_DEPTH,
  type EngineCounters,
  type IngestMeta,
  IngestTag,
  eventRef,
  type QueryKind,
  type QuiescenceReport,
  type SkippedReason,
  type SubscriptionSpec,
  type WorkerMessage,
  type WorkerStatus,
  zeroCounters,
} from '../shared/protocol.js';
import { WriteRateLimiter } from '../shared/rate-limiter.js';
import { ChangeFeed } from './change-feed.js';
import { SubscriptionIndexCore } from '../shared/subscription-index-core.js';

/** Where the runtime sends what it decides. */
export interface RuntimeIO {
  /** Dispatches to main-thread handlers: groups of `[eventTuple, handles[]]`, ids consecutive from firstId. */
  dispatchToMain(episodeId: string, firstId: number, groups: [EventTuple | number, number[]][]): void;
  /** Called after a flush: the main thread may drop its frames up to `seq`. */
  releaseMainFrames(seq: number): void;
  post(message: WorkerMessage): void;
  /** True when the ingest ring holds nothing reserved, unread or pending. */
  ingestDrained(): boolean;
}

type Subscription = SubscriptionSpec;

/** Where an event came from, as far as budget and depth are concerned. */
interface Origin {
  /** Emitted by a handler or task (meta `parent` or `cause`): counts against budget and depth. */
  readonly derived: boolean;
  /** Hops from an external event (0 for external events). */
  readonly depth: number;
  /** Subscription whose handler emitted the event (a registered one), for observed causality. */
  readonly cause: string | undefined;
}

const EXTERNAL: Origin = Object.freeze({ derived: false, depth: 0, cause: undefined });

interface Deferred {
  readonly event: PageChangeEvent;
  /** Event time at which the page's bucket has a token again. */
  readonly dueAt: number;
  /**
   * Worker-clock time after which the delivery no longer waits for in-flight handlers to finish
   * (one rate-limit interval after it was first deferred), so a slow handler cannot hold it.
   */
  readonly heldUntil: number;
  readonly origin: Origin;
  /** What the event matched when it was received (in ring order). */
  readonly matches: readonly Subscription[];
}

/** Upper bound on remembered (cause → matched) subscription pairs for cycle detection. */
const MAX_OBSERVED_CAUSAL_EDGES = 100_000;

/** Episode id used in the report returned when no episode has ever run. */
const NO_EPISODE_ID = 'ep_000000000000';

export class ConvergenceRuntime {
  readonly #io: RuntimeIO;
  readonly #options: ConvergenceWorkerData;
  readonly #maxDepth: number;
  readonly #index: SubscriptionIndexCore<Subscription>;
  readonly #graph = new PageGraph();
  readonly #damper = new ConvergenceDamper();
  readonly #limiter: WriteRateLimiter;
  readonly #deferred = new Map<string, Deferred>();
  readonly #totals: EngineCounters = zeroCounters();
  #episode: EngineCounters = zeroCounters();
  #episodeId: string | null = null;
  #episodeStartedAt = 0;
  #exhausted = false;
  #lastReport: QuiescenceReport | null = null;
  #inFlight = 0;
  #quietSince: number | null = null;
  readonly #quiescenceWaiters = new Set<number>();
  readonly #feed: ChangeFeed;
  /** Observed causality: cause subscription → subscriptions its emitted changes matched. */
  readonly #observed = new Map<string, Set<string>>();
  #observedCount = 0;
  /** Event time: the largest `ts` received so far. */
  #eventClock = -Infinity;
  /** Earliest `dueAt` among deferred deliveries (a lower bound; Infinity when none). */
  #earliestDue = Infinity;
  /** Earliest `heldUntil` among deferred deliveries (a lower bound; Infinity when none). */
  #earliestHeld = Infinity;
  /** Derived dispatches of this episode (what `episodeBudget` bounds). */
  #derivedDispatched = 0;
  /**
   * Depth of the event of each dispatch made this episode whose event was derived (depth > 0; a
   * missing id means depth 0). Bounded by the budget, cleared at quiescence — when every dispatch is
   * acknowledged — so a derived event's `parent` is always found whatever order acks arrive in.
   */
  readonly #dispatchDepth = new Map<number, number>();
  /** Budget/depth trips not yet announced, and the reasons already announced this episode. */
  #trips: Map<BudgetExhaustedInfo['reason'], Set<string>> | undefined;
  readonly #announced = new Set<BudgetExhaustedInfo['reason']>();
  #nextDispatchId = 1;
  // Dispatches decided since the last flush, grouped per event.
  #pendingGroups: [EventTuple | number, number[]][] = [];
  // Main-thread frame being handled (its events can be referred to instead of re-encoded).
  #frameSeq: number | undefined;
  #eventIndex = 0;
  #releasedSeq: number | undefined;
  #releasePending = false;
  #pendingFirstId = 1;
  #pendingCount = 0;
  #closed = false;

  constructor(options: ConvergenceWorkerData, io: RuntimeIO) {
    this.#options = options;
    this.#io = io;
    this.#maxDepth = options.maxDerivationDepth ?? DEFAULT_MAX_DERIVATION_DEPTH;
    this.#index = new SubscriptionIndexCore<Subscription>({ capacity: options.subscriptionCapacity });
    this.#limiter = new WriteRateLimiter({ minIntervalMs: options.rateLimit.minIntervalMs, burst: options.rateLimit.burst });
    this.#feed = new ChangeFeed(options.changeFeedSize);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Dispatches sent to the main thread and not yet acknowledged. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Handles one decoded ingest frame. `now` is the worker's clock (settleMs and durations only). */
  handleFrame(decoded: unknown, now: number): void {
    const frame = asIngestFrame(decoded);
    if (frame === undefined) throw new ProtocolError(`not an ingest frame (tag ${String(Array.isArray(decoded) ? decoded[0] : decoded)})`);
    switch (frame[0]) {
      case IngestTag.EVENTS: {
        const meta = frame[1] ?? {};
        const events = readEvents(frame[2]);
        if (events.length > 0) this.#startEpisode(now);
        const origin = this.#originOf(meta);
        this.#frameSeq = meta.seq;
        try {
          for (let i = 0; i < events.length; i++) {
            this.#eventIndex = i;
            this.#receive(events[i]!, origin, now);
          }
        } finally {
          this.#frameSeq = undefined;
        }
        if (meta.seq !== undefined) {
          this.#releasedSeq = meta.seq;
          this.#releasePending = true;
        }
        break;
      }
      case IngestTag.ACKS: {
        const errors = frame[2] ?? [];
        this.#inFlight -= frame[1];
        if (this.#inFlight < 0) throw new ProtocolError(`acknowledged more dispatches than were in flight (${this.#inFlight})`);
        this.#totals.dispatchesFailed += errors.length;
        this.#episode.dispatchesFailed += errors.length;
        break;
      }
      case IngestTag.SUBSCRIBE: {
        const requestId = frame[1];
        try {
          this.#index.add(frame[2]);
          this.#io.post({ type: 'reply', requestId, value: true });
        } catch (error) {
          this.#io.post({ type: 'reply', requestId, error: serializeError(error) });
        }
        return; // not activity: a subscription alone does not start or extend an episode
      }
      case IngestTag.UNSUBSCRIBE: {
        const removed = frame[2].map((id) => this.#unsubscribe(id));
        this.#io.post({ type: 'reply', requestId: frame[1], value: removed });
        return;
      }
      case IngestTag.AWAIT_QUIESCENCE:
        // Answered by #checkQuiescence: at once if idle and nothing else is in the ring, otherwise
        // when the episode in progress (or the one the pending frames will start) settles.
        this.#quiescenceWaiters.add(frame[1]);
        return;
      case IngestTag.CANCEL_WAIT:
        this.#quiescenceWaiters.delete(frame[1]);
        return;
      case IngestTag.QUERY: {
        const requestId = frame[1];
        try {
          this.#io.post({ type: 'reply', requestId, value: this.query(frame[2], frame[3]) });
        } catch (error) {
          this.#io.post({ type: 'reply', requestId, error: serializeError(error) });
        }
        return;
      }
      case IngestTag.CLOSE:
        this.#closed = true;
        return;
      default:
        return assertNever(frame);
    }
    this.#quietSince = null;
  }

  /** Answers a read-only query (an {@link IngestTag.QUERY} frame, or the Comlink control plane). */
  query(what: QueryKind, arg?: unknown): unknown {
    switch (what) {
      case 'status':
        return this.status();
      case 'feed':
        return this.changeFeed(typeof arg === 'number' ? arg : 50);
      case 'cycles':
        return this.detectCycle();
      default:
        throw new ProtocolError(`unknown query ${String(what)}`);
    }
  }

  /**
   * Releases deferred deliveries when the engine is otherwise idle, flushes, announces budget trips
   * and declares quiescence when it holds. Call after each drain.
   */
  tick(now: number): void {
    if (this.#deferred.size > 0 && this.#pendingCount === 0 && (this.#inFlight === 0 || now >= this.#earliestHeld) && this.#io.ingestDrained()) {
      // Idle: nothing else can arrive that event time would order before these, so release them
      // all, in due order, as of their due times. With handlers still running (whose emitted
      // events could still come first), only those held for a whole interval of the worker's clock.
      if (this.#inFlight === 0) this.#deliverDue(Infinity);
      else this.#deliverDue(Infinity, now);
    }
    this.flush();
    this.#announceTrips();
    this.#checkQuiescence(now);
  }

  /** The earliest time (worker clock) `tick` has something to do, or undefined. */
  nextDeadline(): number | undefined {
    let next = this.#deferred.size > 0 && this.#inFlight > 0 ? this.#earliestHeld : undefined;
    if (this.#quietSince !== null && this.#episodeId !== null) {
      const settleAt = this.#quietSince + this.#options.settleMs;
      if (next === undefined || settleAt < next) next = settleAt;
    }
    return next;
  }

  /** Writes the dispatches decided so far as one batch, then releases the main frames they refer to. */
  flush(): void {
    this.#flushDispatches();
    if (this.#releasePending) {
      this.#releasePending = false;
      this.#io.releaseMainFrames(this.#releasedSeq!);
    }
  }

  #flushDispatches(): void {
    if (this.#pendingCount === 0) return;
    const groups = this.#pendingGroups;
    const firstId = this.#pendingFirstId;
    this.#pendingGroups = [];
    this.#pendingCount = 0;
    this.#pendingFirstId = this.#nextDispatchId;
    this.#io.dispatchToMain(this.#episodeId ?? NO_EPISODE_ID, firstId, groups);
  }

  status(): WorkerStatus {
    let state: WorkerStatus['state'];
    if (this.#exhausted) state = 'exhausted';
    else if (this.#episodeId !== null) state = 'converging';
    else state = this.#lastReport === null ? 'idle' : 'converged';
    return {
      state,
      episodeId: this.#episodeId ?? this.#lastReport?.episodeId ?? null,
      counters: { ...this.#totals },
      subscriptions: this.#index.size,
      inFlight: this.#inFlight,
      deferred: this.#deferred.size,
      quiescenceWaiters: this.#quiescenceWaiters.size,
      pageGraph: { nodes: this.#graph.nodeCount, edges: this.#graph.edgeCount },
    };
  }

  /** The newest `limit` entries of the change feed, oldest first. */
  changeFeed(limit: number): ChangeFeedEntry[] {
    return this.#feed.read(limit);
  }

  /** Cycles among subscriptions: declared outputs that can feed predicates, plus observed causality. */
  detectCycle(): string[][] {
    const subs: Subscription[] = [];
    for (const sub of this.#index.entries()) subs.push(sub);
    const edges = new Map<string, Set<string>>();
    const link = (from: string, to: string): void => {
      let set = edges.get(from);
      if (set === undefined) edges.set(from, (set = new Set()));
      set.add(to);
    };
    for (const from of subs) {
      for (const output of from.outputs ?? []) {
        for (const to of subs) if (predicatesMayOverlap(output, to.predicate)) link(from.id, to.id);
      }
    }
    for (const [from, targets] of this.#observed) {
      if (this.#index.get(from) === undefined) continue;
      for (const to of targets) if (this.#index.get(to) !== undefined) link(from, to);
    }
    return findCycles(edges);
  }

  /** Remembered (cause → matched) pairs of observed causality (diagnostics and tests). */
  get observedCausalEdges(): number {
    return this.#observedCount;
  }

  /** Damper references held (diagnostics and tests). */
  get damperSize(): number {
    return this.#damper.size;
  }

  /** Quiescence waiters not yet answered (diagnostics and tests). */
  get quiescenceWaiters(): number {
    return this.#quiescenceWaiters.size;
  }

  #unsubscribe(id: string): boolean {
    const removed = this.#index.remove(id);
    if (!removed) return false;
    this.#damper.forgetSubscription(id);
    // Observed causality about a subscription that no longer exists is dead weight.
    const own = this.#observed.get(id);
    if (own !== undefined) {
      this.#observedCount -= own.size;
      this.#observed.delete(id);
    }
    for (const [cause, targets] of this.#observed) {
      if (targets.delete(id)) {
        this.#observedCount--;
        if (targets.size === 0) this.#observed.delete(cause);
      }
    }
    return true;
  }

  /** Budget and depth of a frame's events (see {@link IngestMeta}). */
  #originOf(meta: IngestMeta): Origin {
    const { parent } = meta;
    // Causality is about subscriptions: a cause naming none (a colony worker's label) is no cause.
    const cause = meta.cause !== undefined && this.#index.has(meta.cause) ? meta.cause : undefined;
    if (parent === undefined && cause === undefined) return EXTERNAL;
    // A parent's record is kept until quiescence; one that is missing (a dispatch object used after
    // its episode ended) had depth 0 as far as anyone can tell. Without a parent the depth is unknown
    // too: counting it as 1 never refuses a legitimate chain, and the budget still bounds a loop.
    const parentDepth = parent === undefined ? 0 : (this.#dispatchDepth.get(parent) ?? 0);
    return { derived: true, depth: parentDepth + 1, cause };
  }

  #receive(event: PageChangeEvent, origin: Origin, now: number): void {
    if (event.ts === undefined) event.ts = now;
    const ts = event.ts;
    if (ts > this.#eventClock) {
      this.#eventClock = ts;
      // Event time has passed these deliveries: they come before this event, in ring order.
      if (ts >= this.#earliestDue) this.#deliverDue(ts);
    }
    this.#totals.eventsReceived++;
    this.#episode.eventsReceived++;
    const fromFrame = this.#frameSeq !== undefined;
    const before = appliesBeforeMatch(event.kind);
    if (before) this.#applyToGraph(event);
    const matches = this.#index.match(event, this.#graph);
    if (!before) this.#applyToGraph(event);
    if (!isRateLimitedKind(event.kind)) {
      this.#decide(event, matches, origin, fromFrame);
      return;
    }
    const pageId = event.pageId;
    const pending = this.#deferred.get(pageId);
    if (pending !== undefined) {
      // A newer change of a page that already waits for its bucket: it takes the waiting slot (the
      // page's final state is what subscribers must see) and the superseded one is recorded.
      this.#suppress(pending.event);
      if (matches.length === 0) {
        this.#deferred.delete(pageId);
        this.#record(null, event, undefined);
        return;
      }
      this.#deferred.set(pageId, { event, dueAt: pending.dueAt, heldUntil: pending.heldUntil, origin, matches });
      this.#countDeferred();
      return;
    }
    // The limiter counts only events somebody would receive. It serves pages only, so its key is the
    // page id itself (DESIGN's `page:<id>` without building that string for every event).
    if (matches.length === 0 || this.#limiter.allow(pageId, ts)) {
      this.#decide(event, matches, origin, fromFrame);
      return;
    }
    if (this.#options.rateLimit.trailing) {
      const dueAt = this.#limiter.nextAllowedAt(pageId, ts);
      const heldUntil = now + this.#options.rateLimit.minIntervalMs;
      this.#deferred.set(pageId, { event, dueAt, heldUntil, origin, matches });
      if (dueAt < this.#earliestDue) this.#earliestDue = dueAt;
      if (heldUntil < this.#earliestHeld) this.#earliestHeld = heldUntil;
      this.#countDeferred();
    } else {
      this.#suppress(event);
    }
  }

  #applyToGraph(event: PageChangeEvent): void {
    this.#graph.apply(event);
    // A page that is gone frees what was remembered about it; if it comes back, its first value is
    // news. A renamed page's old id is gone too.
    if (event.kind === 'page_invalidated') this.#damper.forgetPage(event.pageId);
    else if (event.kind === 'page_replaced') {
      const oldId = event.related?.[0];
      if (oldId !== undefined && oldId !== event.pageId) this.#damper.forgetPage(oldId);
    }
  }

  #countDeferred(): void {
    this.#totals.dispatchesDeferred++;
    this.#episode.dispatchesDeferred++;
  }

  /**
   * Delivers deferred events due at or before event time `upTo` (and, with `heldBy`, only those
   * held until that worker-clock time or earlier), in (due time, page id) order.
   */
  #deliverDue(upTo: number, heldBy = Infinity): void {
    const due: [string, Deferred][] = [];
    for (const entry of this.#deferred) if (entry[1].dueAt <= upTo && entry[1].heldUntil <= heldBy) due.push(entry);
    due.sort((a, b) => a[1].dueAt - b[1].dueAt || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [pageId, deferred] of due) {
      this.#deferred.delete(pageId);
      // The page's bucket has a token at dueAt by construction (nothing else took one for this page
      // while it waited: newer events superseded it instead).
      this.#limiter.allow(pageId, Math.max(deferred.dueAt, this.#limiter.nextAllowedAt(pageId, deferred.dueAt)));
      // Only subscriptions that still exist; one that left and came back with the same id is new.
      const matches = deferred.matches.filter((sub) => this.#index.get(sub.id) === sub);
      // Delivered after its frame may have been released: it travels as a tuple, not a reference.
      this.#decide(deferred.event, matches, deferred.origin, false);
    }
    let earliest = Infinity;
    let held = Infinity;
    for (const deferred of this.#deferred.values()) {
      if (deferred.dueAt < earliest) earliest = deferred.dueAt;
      if (deferred.heldUntil < held) held = deferred.heldUntil;
    }
    this.#earliestDue = earliest;
    this.#earliestHeld = held;
  }

  #suppress(event: PageChangeEvent): void {
    this.#totals.dispatchesRateLimited++;
    this.#episode.dispatchesRateLimited++;
    this.#record(null, event, 'rate_limited');
  }

  #decide(event: PageChangeEvent, matches: readonly Subscription[], origin: Origin, fromFrame: boolean): void {
    if (matches.length === 0) {
      this.#record(null, event, undefined);
      return;
    }
    let handles: number[] | undefined;
    // An invalidation is always news and must not re-create the references it just freed.
    const value = event.kind === 'page_invalidated' ? undefined : event.extra?.['value'];
    const { derived, depth, cause } = origin;
    for (const sub of matches) {
      this.#totals.dispatchesAttempted++;
      this.#episode.dispatchesAttempted++;
      if (cause !== undefined) this.#observe(cause, sub.id);
      if (derived) {
        if (depth > this.#maxDepth) {
          this.#totals.dispatchesDepthExceeded++;
          this.#episode.dispatchesDepthExceeded++;
          this.#totals.budgetExhausted++;
          this.#episode.budgetExhausted++;
          this.#record(sub.id, event, 'depth_exceeded');
          this.#trip('depth', sub.id, cause);
          continue;
        }
        if (this.#derivedDispatched >= this.#options.episodeBudget) {
          this.#totals.dispatchesBudgetExhausted++;
          this.#episode.dispatchesBudgetExhausted++;
          this.#totals.budgetExhausted++;
          this.#episode.budgetExhausted++;
          this.#record(sub.id, event, 'budget_exhausted');
          this.#trip('budget', sub.id, cause);
          continue;
        }
      }
      if (sub.tolerance !== undefined && value !== undefined && this.#damper.shouldSkip(sub.id, event.pageId, value, sub.tolerance)) {
        this.#totals.dispatchesDamped++;
        this.#episode.dispatchesDamped++;
        this.#record(sub.id, event, 'damped');
        continue;
      }
      this.#totals.dispatchesEmitted++;
      this.#episode.dispatchesEmitted++;
      this.#record(sub.id, event, undefined);
      if (derived) this.#derivedDispatched++;
      if (sub.target === 'main') {
        (handles ??= []).push(sub.handle);
        if (depth > 0) this.#dispatchDepth.set(this.#nextDispatchId, depth);
        this.#nextDispatchId++;
        this.#pendingCount++;
        this.#inFlight++;
      }
    }
    if (handles !== undefined) {
      const seq = this.#frameSeq;
      this.#pendingGroups.push([fromFrame && seq !== undefined ? eventRef(seq, this.#eventIndex) : eventToTuple(event), handles]);
    }
  }

  /** Marks the episode exhausted and remembers who was involved, for one announcement per reason. */
  #trip(reason: BudgetExhaustedInfo['reason'], subscriptionId: string, cause: string | undefined): void {
    this.#exhausted = true;
    if (this.#announced.has(reason)) return;
    this.#trips ??= new Map();
    let involved = this.#trips.get(reason);
    if (involved === undefined) this.#trips.set(reason, (involved = new Set()));
    involved.add(subscriptionId);
    if (cause !== undefined) involved.add(cause);
  }

  #announceTrips(): void {
    if (this.#trips === undefined) return;
    const episodeId = this.#episodeId ?? NO_EPISODE_ID;
    for (const [reason, involved] of this.#trips) {
      this.#announced.add(reason);
      this.#io.post({ type: 'budget-exhausted', episodeId, reason, subscriptions: [...involved].sort() });
    }
    this.#trips = undefined;
  }

  /** Remembers that `cause`'s emitted changes matched `to`, without allocating for a known pair. */
  #observe(cause: string, to: string): void {
    let targets = this.#observed.get(cause);
    if (targets?.has(to) === true || this.#observedCount >= MAX_OBSERVED_CAUSAL_EDGES) return;
    if (targets === undefined) this.#observed.set(cause, (targets = new Set()));
    targets.add(to);
    this.#observedCount++;
  }

  #startEpisode(now: number): void {
    this.#quietSince = null;
    if (this.#episodeId !== null) return;
    this.#episodeId = `ep_${randomBytes(6).toString('hex')}`;
    this.#episodeStartedAt = now;
    this.#episode = zeroCounters();
    this.#exhausted = false;
    this.#derivedDispatched = 0;
    this.#announced.clear();
  }

  #checkQuiescence(now: number): void {
    if (this.#episodeId === null) {
      if (this.#quiescenceWaiters.size > 0 && this.#io.ingestDrained()) {
        this.#answerWaiters(this.#lastReport ?? emptyReport());
      }
      return;
    }
    if (this.#inFlight !== 0 || this.#deferred.size !== 0 || this.#pendingCount !== 0 || !this.#io.ingestDrained()) {
      this.#quietSince = null;
      return;
    }
    if (this.#quietSince === null) this.#quietSince = now;
    if (now - this.#quietSince < this.#options.settleMs) return;
    const episodeId = this.#episodeId;
    const report: QuiescenceReport = {
      episodeId,
      key: ConvergenceQuiescenceProtocol.quiescenceKey(episodeId),
      counters: { ...this.#episode },
      durationMs: now - this.#episodeStartedAt,
      budgetExhausted: this.#exhausted,
    };
    this.#episodeId = null;
    this.#quietSince = null;
    this.#lastReport = report;
    // Every dispatch is acknowledged: no event can name one of them as its parent any more.
    this.#dispatchDepth.clear();
    this.#io.post({ type: 'quiescence', report });
    this.#answerWaiters(report);
  }

  #answerWaiters(report: QuiescenceReport): void {
    for (const requestId of this.#quiescenceWaiters) this.#io.post({ type: 'reply', requestId, value: report });
    this.#quiescenceWaiters.clear();
  }

  #record(subscriptionId: string | null, event: PageChangeEvent, skippedReason: SkippedReason | undefined): void {
    this.#feed.record(this.#episodeId, subscriptionId, event, skippedReason);
  }
}

function assertNever(frame: never): never {
  throw new ProtocolError(`unhandled ingest frame ${String((frame as unknown[])[0])}`);
}

function isRateLimitedKind(kind: PageChangeEvent['kind']): boolean {
  return kind === 'page_added' || kind === 'page_replaced' || kind === 'page_invalidated';
}

function emptyReport(): QuiescenceReport {
  return {
    episodeId: NO_EPISODE_ID,
    key: ConvergenceQuiescenceProtocol.quiescenceKey(NO_EPISODE_ID),
    counters: zeroCounters(),
    durationMs: 0,
    budgetExhausted: false,
  };
}
