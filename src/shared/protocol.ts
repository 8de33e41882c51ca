/**
 * Messages between the main thread and the convergence worker.
 *
 * Data plane (rings, msgpack frames `[tag, ...]`):
 *   ingest ring   (any thread → convergence worker): {@link IngestTag}
 *   dispatch ring (convergence worker → main thread): {@link DispatchTag}
 * Subscription changes and quiescence waits travel through the ingest ring too, so that the worker
 * decides them in ring order relative to the events the same producer wrote before them: a
 * subscription registered before `dispatchChange` sees that change, one registered after does not,
 * on every run.
 *
 * Control plane: read-only queries over Comlink ({@link ConvergenceControl}); replies and
 * announcements from the worker as {@link WorkerMessage}s on the same MessagePort.
 */
import type { SerializedError } from './errors.js';
import type { PageChangeKind } from './events.js';
import type { NumericTolerance, PagePredicate } from './predicates.js';
import type { RingStats } from './ring.js';

/** Tags of frames in the ingest ring. */
export const IngestTag = {
  /** `[EVENTS, meta: IngestMeta, events]` */
  EVENTS: 1,
  /** `[ACKS, settled: number, errors: AckError[]]` main-thread handlers that settled. */
  ACKS: 2,
  /** `[SUBSCRIBE, requestId, spec: SubscriptionSpec]` */
  SUBSCRIBE: 3,
  /** `[UNSUBSCRIBE, requestId, ids: string[]]` */
  UNSUBSCRIBE: 4,
  /** `[AWAIT_QUIESCENCE, requestId]` replies once nothing written before it is still in flight. */
  AWAIT_QUIESCENCE: 5,
  /** `[CLOSE]` stop after this frame. */
  CLOSE: 6,
} as const;
export type IngestTag = (typeof IngestTag)[keyof typeof IngestTag];

/** Tags of frames in the dispatch ring. */
export const DispatchTag = {
  /**
   * `[DISPATCH, episodeId, firstDispatchId, groups]`: each group is `[event, handles[]]`, one
   * event and the main-thread subscription handles it goes to; dispatch ids are consecutive from
   * `firstDispatchId` in group order, handle order. `event` is an event tuple, or — for an event
   * the main thread itself wrote — a negative {@link eventRef} to the object it still holds, so the
   * event is neither re-encoded here nor decoded there.
   */
  DISPATCH: 10,
} as const;
export type DispatchTag = (typeof DispatchTag)[keyof typeof DispatchTag];

/** Who wrote an event batch. */
export interface IngestMeta {
  /** Subscription whose handler emitted these events (for observed causality), if any. */
  cause?: string;
  /**
   * Set by the main thread on its own frames: a per-engine frame number. The main thread keeps the
   * frame's event objects until the worker publishes {@link MainSlot.RELEASED} at or past it.
   */
  seq?: number;
}

/** Most events one ingest frame may carry (so that an {@link eventRef} is unambiguous). */
export const MAX_EVENTS_PER_FRAME = 1024;

/** A reference to event `index` of main-thread frame `seq`: a negative integer. */
export function eventRef(seq: number, index: number): number {
  return -(seq * MAX_EVENTS_PER_FRAME + index + 1);
}

/** Splits an {@link eventRef} into `[seq, index]`. */
export function parseEventRef(ref: number): [number, number] {
  const n = -ref - 1;
  return [Math.floor(n / MAX_EVENTS_PER_FRAME), n % MAX_EVENTS_PER_FRAME];
}

/** A failed dispatch reported in an ACKS frame: `[dispatchId, subscriptionId, error]`. */
export type AckError = [number, string, SerializedError];

/** Where a subscription's matches go. */
export type SubscriptionTarget = 'main' | 'pool' | 'none';

/** A subscription as the convergence worker knows it (no functions: it crosses threads). */
export interface SubscriptionSpec {
  id: string;
  /** Small integer the main thread uses to find the handler without a string lookup. */
  handle: number;
  predicate: PagePredicate;
  tolerance?: NumericTolerance;
  outputs?: PagePredicate[];
  target: SubscriptionTarget;
  /** For pool subscriptions: the task module URL and export (kept for scope serialisation). */
  task?: { module: string; name: string };
  ownerId?: string;
}

/** The counters of DESIGN §3, cumulative in status and per episode in a report. */
export interface EngineCounters {
  eventsReceived: number;
  dispatchesAttempted: number;
  dispatchesEmitted: number;
  dispatchesDamped: number;
  dispatchesRateLimited: number;
  dispatchesDeferred: number;
  dispatchesFailed: number;
  budgetExhausted: number;
}

/** A fresh set of zeroed counters. */
export function zeroCounters(): EngineCounters {
  return {
    eventsReceived: 0,
    dispatchesAttempted: 0,
    dispatchesEmitted: 0,
    dispatchesDamped: 0,
    dispatchesRateLimited: 0,
    dispatchesDeferred: 0,
    dispatchesFailed: 0,
    budgetExhausted: 0,
  };
}

/** Announced once per episode when everything has settled. */
export interface QuiescenceReport {
  episodeId: string;
  /** `convergence:quiescence:<episodeId>` */
  key: string;
  /** This episode's counters. */
  counters: EngineCounters;
  durationMs: number;
  budgetExhausted: boolean;
}

/** Why a matched (or received) change was not dispatched. */
export type SkippedReason = 'rate_limited' | 'damped' | 'budget_exhausted';

/** One entry of the change feed. `subscriptionId` is null for entries about the event itself. */
export interface ChangeFeedEntry {
  seq: number;
  ts: number;
  episodeId: string | null;
  subscriptionId: string | null;
  pageId: string;
  kind: PageChangeKind;
  sourceId: string;
  skippedReason?: SkippedReason;
}

/** Engine lifecycle as seen by `getStatus().state`. */
export type EngineState = 'idle' | 'converging' | 'converged' | 'exhausted';

/** What the convergence worker reports about itself. */
export interface WorkerStatus {
  state: EngineState;
  episodeId: string | null;
  counters: EngineCounters;
  subscriptions: number;
  inFlight: number;
  deferred: number;
  pageGraph: { nodes: number; edges: number };
}

/** The worker's control-plane API (Comlink). Read-only: mutations go through the ingest ring. */
export interface ConvergenceControl {
  status(): WorkerStatus;
  changeFeed(limit: number): ChangeFeedEntry[];
  detectCycle(): string[][];
}

/** Messages the worker posts to the main thread (besides Comlink replies). */
export type WorkerMessage =
  | { type: 'wake' }
  | { type: 'reply'; requestId: number; error?: SerializedError; value?: unknown }
  | { type: 'quiescence'; report: QuiescenceReport }
  | { type: 'fatal'; error: SerializedError };

/** workerData of the convergence worker. */
export interface ConvergenceWorkerData {
  ingest: SharedArrayBuffer;
  dispatch: SharedArrayBuffer;
  /** Int32 flags shared with the main thread: see {@link MainSlot}. */
  main: SharedArrayBuffer;
  episodeBudget: number;
  rateLimit: { minIntervalMs: number; burst: number; trailing: boolean };
  changeFeedSize: number;
  settleMs: number;
  subscriptionCapacity: number;
}

/** Slots of the small Int32Array shared between the main thread and the convergence worker. */
export const MainSlot = {
  /** 1 while the main thread waits for a wake message before draining the dispatch ring again. */
  PARKED: 0,
  /**
   * Highest main-thread frame `seq` the worker has finished with. Stored only after the dispatch
   * frames that refer to that frame's events are in the dispatch ring, so once the main thread has
   * drained that ring after reading this value, no unread frame can still refer to them.
   */
  RELEASED: 1,
  /** Dispatch frames/handlers not yet acknowledged by the main thread (diagnostics). */
  SIZE: 4,
} as const;

/** Status of a ring as exposed by the engine. */
export type { RingStats };

/** workerData of the colony pool threads that run subscription tasks. */
export interface PoolWorkerData {
  ingest: SharedArrayBuffer;
}

/** What the main thread hands a pool thread for one dispatch of a `task` subscription. */
export interface PoolTaskMessage {
  /** File URL of the user's task module. */
  module: string;
  /** Export to call; `default` when absent. */
  name: string;
  event: import('./events.js').PageChangeEvent;
  dispatch: { id: number; subscriptionId: string; key: string; episodeId: string };
}
