/**
 * The convergence worker's state machine: everything it decides, decided serially in ring order.
 *
 * It owns the subscription index, page graph, rate limiter, damper, episode and quiescence state,
 * in-flight accounting and the change feed. It has no I/O of its own: the loop in
 * `convergence-loop.ts` feeds it frames and a clock and gives it somewhere to write dispatches and
 * replies, so the same sequence of frames and clock readings always yields the same decisions.
 *
 * In-flight accounting, the heart of quiescence: an event is in flight from the moment a producer
 * reserves it in the ingest ring (or declares it PENDING) until it has been matched here; a dispatch
 * to a main-thread handler is in flight from the moment it is created until the main thread
 * acknowledges it in the ingest ring. The main thread writes a handler's emitted events into the
 * same ring before that handler's acknowledgement, so they are seen here first. A deferred
 * (rate-limited) delivery is in flight until delivered or superseded. Quiescence needs all of that
 * at zero, the ring drained, and `settleMs` of that state.
 */
import { randomBytes } from 'node:crypto';
import { ProtocolError, serializeError } from '../shared/errors.js';
import { ConvergenceDamper } from '../shared/damper.js';
import { ConvergenceQuiescenceProtocol, type PageChangeEvent } from '../shared/events.js';
import { eventToTuple, readEvents, type EventTuple } from '../shared/framing.js';
import { PageGraph, appliesBeforeMatch } from '../shared/page-graph.js';

import { findCycles, predicatesMayOverlap } from '../shared/cycles.js';
import {
  type AckError,
  type ChangeFeedEntry,
  type ConvergenceWorkerData,
  type EngineCounters,
  type IngestMeta,
  IngestTag,
  eventRef,
  type QuiescenceReport,
  type SkippedReason,
  type SubscriptionSpec,
  type WorkerMessage,
  type WorkerStatus,
  zeroCounters,
} from '../shared/protocol.js';
import { WriteRateLimiter } from '../shared/rate-limiter.js';
import { ChangeFeed } from './change-feed.js';
import { SubscriptionIndex } from '../shared/subscription-index.js';


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

interface Deferred {
  event: PageChangeEvent;
  dueAt: number;
  cause: string | undefined;
}

/** Upper bound on remembered (cause → matched) subscription pairs for cycle detection. */
const MAX_OBSERVED_CAUSAL_EDGES = 100_000;

/** Episode id used in the report returned when no episode has ever run. */
const NO_EPISODE_ID = 'ep_000000000000';

export class ConvergenceRuntime {
  readonly #io: RuntimeIO;
  readonly #options: ConvergenceWorkerData;
  readonly #index: SubscriptionIndex<Subscription>;
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
  readonly #quiescenceWaiters: number[] = [];
  readonly #feed: ChangeFeed;
  /** Observed causality: cause subscription → subscriptions its emitted changes matched. */
  readonly #observed = new Map<string, Set<string>>();
  #observedCount = 0;
  /** Earliest `dueAt` among deferred deliveries (a lower bound; Infinity when none). */
  #earliestDue = Infinity;
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
    this.#index = new SubscriptionIndex<Subscription>({ capacity: options.subscriptionCapacity });
    this.#limiter = new WriteRateLimiter({ minIntervalMs: options.rateLimit.minIntervalMs, burst: options.rateLimit.burst });
    this.#feed = new ChangeFeed(options.changeFeedSize);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Handles one decoded ingest frame. */
  handleFrame(frame: unknown[], now: number): void {
    const tag = frame[0] as IngestTag;
    switch (tag) {
      case IngestTag.EVENTS: {
        const meta = (frame[1] ?? {}) as IngestMeta;
        const events = readEvents(frame[2]);
        this.#frameSeq = meta.seq;
        try {
          for (let i = 0; i < events.length; i++) {
            this.#eventIndex = i;
            this.#receive(events[i]!, meta.cause, now);
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
        const settled = frame[1] as number;
        const errors = (frame[2] ?? []) as AckError[];
        this.#inFlight -= settled;
        if (this.#inFlight < 0) throw new ProtocolError(`acknowledged more dispatches than were in flight (${this.#inFlight})`);
        this.#totals.dispatchesFailed += errors.length;
        this.#episode.dispatchesFailed += errors.length;
        break;
      }
      case IngestTag.SUBSCRIBE: {
        const requestId = frame[1] as number;
        try {
          this.#index.add(frame[2] as Subscription);
          this.#io.post({ type: 'reply', requestId, value: true });
        } catch (error) {
          this.#io.post({ type: 'reply', requestId, error: serializeError(error) });
        }
        return; // not activity: a subscription alone does not start or extend an episode
      }
      case IngestTag.UNSUBSCRIBE: {
        const requestId = frame[1] as number;
        const ids = frame[2] as string[];
        const removed = ids.map((id) => this.#unsubscribe(id));
        this.#io.post({ type: 'reply', requestId, value: removed });
        return;
      }
      case IngestTag.AWAIT_QUIESCENCE: {
        const requestId = frame[1] as number;
        // Answered by #checkQuiescence: at once if idle and nothing else is in the ring, otherwise
        // when the episode in progress (or the one the pending frames will start) settles.
        this.#quiescenceWaiters.push(requestId);
        return;
      }
      case IngestTag.CLOSE:
        this.#closed = true;
        return;
      default:
        throw new ProtocolError(`unknown ingest frame tag ${String(tag)}`);
    }
    this.#quietSince = null;
  }

  /** Delivers due deferred events and declares quiescence when it holds. Call after each drain. */
  tick(now: number): void {
    // The scan over deferred pages runs only when one can be due, not after every drain.
    if (now >= this.#earliestDue) this.#deliverDue(now);
    this.flush();
    this.#checkQuiescence(now);
  }

  /** The earliest time `tick` has something to do, or undefined. */
  nextDeadline(): number | undefined {
    let next: number | undefined = this.#deferred.size > 0 ? this.#earliestDue : undefined;
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

  #unsubscribe(id: string): boolean {
    const removed = this.#index.remove(id);
    if (removed) this.#damper.forgetSubscription(id);
    return removed;
  }

  #receive(event: PageChangeEvent, cause: string | undefined, now: number): void {
    if (event.ts === undefined) event.ts = Date.now();
    this.#startEpisode(now);
    this.#totals.eventsReceived++;
    this.#episode.eventsReceived++;
    if (!isRateLimitedKind(event.kind)) {
      this.#graph.apply(event);
      this.#match(event, cause, now);
      return;
    }
    // The limiter serves pages only, so its key is the page id itself (DESIGN's `page:<id>`
    // without building that string for every event).
    const key = event.pageId;
    const pending = this.#deferred.get(event.pageId);
    if (pending !== undefined) {
      // A newer change of a page that already waits for its bucket: it takes the waiting slot (the
      // page's final state is what subscribers must see) and the superseded one is recorded.
      this.#suppress(pending.event);
      this.#deferred.set(event.pageId, { event, dueAt: pending.dueAt, cause });
      this.#totals.dispatchesDeferred++;
      this.#episode.dispatchesDeferred++;
      return;
    }
    if (this.#limiter.allow(key, now)) {
      this.#applyAndMatch(event, cause, now);
      return;
    }
    if (this.#options.rateLimit.trailing) {
      const dueAt = this.#limiter.nextAllowedAt(key, now);
      this.#deferred.set(event.pageId, { event, dueAt, cause });
      if (dueAt < this.#earliestDue) this.#earliestDue = dueAt;
      this.#totals.dispatchesDeferred++;
      this.#episode.dispatchesDeferred++;
    } else {
      this.#suppress(event);
    }
  }

  #applyAndMatch(event: PageChangeEvent, cause: string | undefined, now: number): void {
    const before = appliesBeforeMatch(event.kind);
    if (before) this.#graph.apply(event);
    this.#match(event, cause, now);
    if (!before) this.#graph.apply(event);
  }

  #deliverDue(now: number): void {
    const due: [string, Deferred][] = [];
    for (const entry of this.#deferred) if (entry[1].dueAt <= now) due.push(entry);
    // Deterministic order: by due time, then by page id.
    due.sort((a, b) => a[1].dueAt - b[1].dueAt || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [pageId, deferred] of due) {
      const key = pageId;
      if (!this.#limiter.allow(key, now)) {
        deferred.dueAt = Math.max(now + 1, this.#limiter.nextAllowedAt(key, now));
        continue;
      }
      this.#deferred.delete(pageId);
      this.#quietSince = null;
      // Delivered after its frame was released: it travels as a tuple, not a reference.
      this.#applyAndMatch(deferred.event, deferred.cause, now);
    }
    let earliest = Infinity;
    for (const deferred of this.#deferred.values()) if (deferred.dueAt < earliest) earliest = deferred.dueAt;
    this.#earliestDue = earliest;
  }

  #suppress(event: PageChangeEvent): void {
    // Never delivered, but still a fact about the page graph (an invalidated page loses its edges,
    // a renamed one moves them): apply it so the graph does not keep stale edges.
    this.#graph.apply(event);
    this.#totals.dispatchesRateLimited++;
    this.#episode.dispatchesRateLimited++;
    this.#record(null, event, 'rate_limited');
  }

  #match(event: PageChangeEvent, cause: string | undefined, _now: number): void {
    const matches = this.#index.match(event, this.#graph);
    if (matches.length === 0) {
      this.#record(null, event, undefined);
      return;
    }
    let handles: number[] | undefined;
    const value = event.extra?.['value'];
    for (const sub of matches) {
      this.#totals.dispatchesAttempted++;
      this.#episode.dispatchesAttempted++;
      if (cause !== undefined) this.#observe(cause, sub.id);
      if (this.#exhausted) {
        this.#totals.budgetExhausted++;
        this.#episode.budgetExhausted++;
        this.#record(sub.id, event, 'budget_exhausted');
        continue;
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
      if (sub.target === 'main') {
        (handles ??= []).push(sub.handle);
        this.#nextDispatchId++;
        this.#pendingCount++;
        this.#inFlight++;
      }
      if (this.#episode.dispatchesEmitted >= this.#options.episodeBudget) this.#exhausted = true;
    }
    if (handles !== undefined) {
      const seq = this.#frameSeq;
      this.#pendingGroups.push([seq === undefined ? eventToTuple(event) : eventRef(seq, this.#eventIndex), handles]);
    }
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
  }

  #checkQuiescence(now: number): void {
    if (this.#episodeId === null) {
      if (this.#quiescenceWaiters.length > 0 && this.#io.ingestDrained()) {
        const report = this.#lastReport ?? emptyReport();
        for (const requestId of this.#quiescenceWaiters.splice(0)) this.#io.post({ type: 'reply', requestId, value: report });
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
    this.#io.post({ type: 'quiescence', report });
    for (const requestId of this.#quiescenceWaiters.splice(0)) this.#io.post({ type: 'reply', requestId, value: report });
  }

  #record(subscriptionId: string | null, event: PageChangeEvent, skippedReason: SkippedReason | undefined): void {
    this.#feed.record(this.#episodeId, subscriptionId, event, skippedReason);
  }
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
