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
  /**
   * `[QUERY, requestId, what: QueryKind, arg?]` a read-only query answered in ring order with a
   * `reply` message, so it observes every frame the same producer wrote before it (read your
   * writes). `arg`: the feed's `limit` for `'feed'`; unused otherwise. The value is a
   * {@link WorkerStatus}, `ChangeFeedEntry[]` or `string[][]` respectively.
   */
  QUERY: 7,
  /**
   * `[CANCEL_WAIT, requestId]` forget an {@link IngestTag.AWAIT_QUIESCENCE} waiter whose caller gave
   * up (timeout): nothing is replied for it afterwards and its memory is freed.
   */
  CANCEL_WAIT: 8,
} as const;
export type IngestTag = (typeof IngestTag)[keyof typeof IngestTag];

/**
 * Every ingest frame as the convergence worker decodes it: one tuple per {@link IngestTag}. An EVENTS
 * frame's events are still in their wire form (read them with `readEvents`).
 */
export type IngestFrame =
  | [tag: typeof IngestTag.EVENTS, meta: IngestMeta | null | undefined, events: unknown]
  | [tag: typeof IngestTag.ACKS, settled: number, errors?: AckError[]]
  | [tag: typeof IngestTag.SUBSCRIBE, requestId: number, spec: SubscriptionSpec]
  | [tag: typeof IngestTag.UNSUBSCRIBE, requestId: number, ids: string[]]
  | [tag: typeof IngestTag.AWAIT_QUIESCENCE, requestId: number]
  | [tag: typeof IngestTag.CLOSE]
  | [tag: typeof IngestTag.QUERY, requestId: number, what: QueryKind, arg?: unknown]
  | [tag: typeof IngestTag.CANCEL_WAIT, requestId: number];

const INGEST_TAGS: ReadonlySet<unknown> = new Set(Object.values(IngestTag));

/**
 * A decoded ingest frame checked as far as its tag, or undefined when it is not one (a writer's bug:
 * the caller reports it). The fields are trusted: only this package writes the ring.
 */
export function asIngestFrame(value: unknown): IngestFrame | undefined {
  return Array.isArray(value) && INGEST_TAGS.has(value[0]) ? (value as IngestFrame) : undefined;
}

/** Tags of frames in the dispatch ring. */
export const DispatchTag = {
  /**
   * `[DISPATCH, episodeId, firstDispatchId, groups, events]`: one group per event, each the event
   * and the main-thread subscription handles it goes to; dispatch ids are consecutive from
   * `firstDispatchId` in group order, handle order. `groups` is binary, float64 words (native byte
   * order: both ends are threads of one process), per group `[ref, count, handle × count]`: `ref`
   * is a negative {@link eventRef} to an event the main thread itself wrote and still holds (so it
   * is neither re-encoded here nor decoded there), or the index of an event tuple in `events`. No
   * array per group on either side (see `packDispatchGroups` / `readDispatchGroups` in framing.ts).
   */
  DISPATCH: 10,
} as const;
export type DispatchTag = (typeof DispatchTag)[keyof typeof DispatchTag];

/** One event and the main-thread subscription handles it goes to (see {@link DispatchTag.DISPATCH}). */
export type DispatchGroup = [event: unknown[] | number, handles: number[]];

/** Every dispatch-ring frame: one tuple per {@link DispatchTag}. */
export type DispatchFrame = [tag: typeof DispatchTag.DISPATCH, episodeId: string, firstDispatchId: number, groups: Uint8Array, events: unknown[][]];

/** What an {@link IngestTag.QUERY} frame asks for. */
export type QueryKind = 'status' | 'feed' | 'cycles';

/** The ingest frames written by `FrameEncoder.encodeIngest` (EVENTS frames go through `encodeEvents`). */
export type ControlFrame = Exclude<IngestFrame, [typeof IngestTag.EVENTS, ...unknown[]]>;

/**
 * Positions of the columns in an EVENTS frame's packed events: written in this order by the event
 * codec's encoder and read by these names by its decoder (the layout is described in event-codec.ts).
 */
export const EventColumn = {
  COUNT: 0,
  KIND: 1,
  PAGE_ID: 2,
  SOURCE_ID: 3,
  DATA_TYPE: 4,
  SCOPE_ID: 5,
  RELATED: 6,
  EDGE_TYPE: 7,
  REASON: 8,
  EDIT_DIFF: 9,
  EXTRA: 10,
  TS: 11,
  SHAPES: 12,
  DICT: 13,
  POOL: 14,
  /** Number of columns. */
  LENGTH: 15,
} as const;

/** Who wrote an event batch. */
export interface IngestMeta {
  /**
   * Subscription whose handler emitted these events (for observed causality), if any. Events with a
   * cause but no {@link parent} are still *derived* when the cause names a registered subscription:
   * they count against the budget, with depth 1 (unknown without a parent; the budget still bounds
   * a loop). A cause that names no subscription (e.g. `colony:<worker>`) is only a label.
   */
  cause?: string;
  /**
   * The dispatch id whose handler or pool task emitted these events. Events with a parent (or a
   * cause) are *derived*: they count against `episodeBudget` and their depth is the parent's
   * event's depth + 1. Events with neither are *external* (depth 0) and always dispatched.
   */
  parent?: number;
  /**
   * Set by the main thread on its own frames: a per-engine frame number. The main thread keeps the
   * frame's event objects until the worker publishes {@link MainSlot.RELEASED} at or past it.
   */
  seq?: number;
}

/** Default of the engine's `maxDerivationDepth` option. */
export const DEFAULT_MAX_DERIVATION_DEPTH = 32;

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

/**
 * A failed dispatch reported in an ACKS frame: `[dispatchId, subscriptionId, error]`.
 *
 * ACKS frames travel in the ingest ring, or — when {@link ConvergenceWorkerData.acks} is given — in
 * that dedicated ring, which the worker drains before every ingest drain, so acknowledgements never
 * queue behind events. The ack ring also carries *derived* EVENTS frames (with `parent`, without
 * `seq`), so that a handler awaiting its derived write is never stuck behind a full ingest ring
 * while the worker waits at `maxInFlight` for that handler's ack. A writer of the ack ring nudges the
 * ingest ring (`Ring#nudge`) after each write: the worker parks on the ingest ring's signal only.
 */
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

/**
 * The counters of DESIGN §3, cumulative in status and per episode in a report. What increments
 * each one is documented in the README ("Counters").
 */
export interface EngineCounters {
  /** Events taken from the ingest ring (every kind, matched or not). */
  eventsReceived: number;
  /** (event, subscription) matches considered for dispatch, whatever the outcome. */
  dispatchesAttempted: number;
  /** Dispatches sent to a handler, a pool task, or (handler-less subscription) only recorded. */
  dispatchesEmitted: number;
  /** Matches skipped by the damper (value within the subscription's tolerance). */
  dispatchesDamped: number;
  /** Matched events never delivered because of the rate limiter (superseded or, without trailing, dropped). */
  dispatchesRateLimited: number;
  /** Matched events held back by the rate limiter for a trailing delivery. */
  dispatchesDeferred: number;
  /** Dispatches whose handler or task threw or rejected. */
  dispatchesFailed: number;
  /** Matches of derived events not dispatched because the episode budget was spent. */
  dispatchesBudgetExhausted: number;
  /** Matches of derived events not dispatched because they were deeper than `maxDerivationDepth`. */
  dispatchesDepthExceeded: number;
  /**
   * DESIGN §3's counter: matches of derived events refused by either limit of the episode (its
   * budget or the derivation depth), i.e. `dispatchesBudgetExhausted + dispatchesDepthExceeded`.
   */
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
    dispatchesBudgetExhausted: 0,
    dispatchesDepthExceeded: 0,
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
  /** True when the episode's budget or derivation-depth limit refused a derived dispatch. */
  budgetExhausted: boolean;
}

/** Why a matched (or received) change was not dispatched. */
export type SkippedReason = 'rate_limited' | 'damped' | 'budget_exhausted' | 'depth_exceeded';

/** Announced when an episode's budget or depth limit first refuses a derived dispatch. */
export interface BudgetExhaustedInfo {
  episodeId: string;
  reason: 'budget' | 'depth';
  /** The subscriptions whose dispatches were refused and those whose handlers emitted the events, sorted. */
  subscriptions: string[];
}

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
  /** Quiescence waits not yet answered (a timed-out wait is cancelled, not kept). */
  quiescenceWaiters: number;
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
  | ({ type: 'budget-exhausted' } & BudgetExhaustedInfo)
  | ({ type: 'ring-stalled' } & RingStallInfo)
  | { type: 'fatal'; error: SerializedError };

/**
 * A ring reservation whose producer died before publishing it (a thread killed mid-write): the
 * convergence worker skipped it after the stall timeout; the frames it held are lost. Also counted
 * in the ring's stats (`stalledReservations`, `stalledBytes`).
 */
export interface RingStallInfo {
  /** Which ring the worker consumes: the ingest ring or the acknowledgement ring. */
  ring: 'ingest' | 'acks';
  /** Ring position (free-running byte counter) where the reservation started. */
  position: number;
  /** Ring bytes it held. */
  bytes: number;
  /** How long the worker waited on it before skipping it, in ms. */
  waitedMs: number;
}

/** workerData of the convergence worker. */
export interface ConvergenceWorkerData {
  ingest: SharedArrayBuffer;
  dispatch: SharedArrayBuffer;
  /** Int32 flags shared with the main thread: see {@link MainSlot}. */
  main: SharedArrayBuffer;
  /**
   * Optional dedicated ring for ACKS frames (see {@link AckError}). Without it acknowledgements
   * travel in the ingest ring and {@link maxInFlight} cannot be enforced (blocking the ingest ring
   * would also block the acks that unblock it).
   */
  acks?: SharedArrayBuffer;
  /**
   * With {@link acks}: the worker stops taking ingest frames while this many of its dispatches are
   * unacknowledged (it overshoots by at most one frame's dispatches), so the ingest ring fills and
   * producers wait.
   */
  maxInFlight?: number;
  /** How long an unpublished ring reservation may wait before its producer is taken for dead (default 5 s; see RingConsumerOptions). */
  stallTimeoutMs?: number;
  episodeBudget: number;
  /** Derived events more than this many hops from an external event are not dispatched (default {@link DEFAULT_MAX_DERIVATION_DEPTH}). */
  maxDerivationDepth?: number;
  rateLimit: { minIntervalMs: number; burst: number; trailing: boolean };
  changeFeedSize: number;
  settleMs: number;
  subscriptionCapacity: number;
}

/** Slots of the small Int32Array shared between the main thread and the convergence worker. */
export const MainSlot = {
  /** 1 while the main thread waits for a wake (see {@link WAKE}) before draining the dispatch ring again. */
  PARKED: 0,
  /**
   * Highest main-thread frame `seq` the worker has finished with. Stored only after the dispatch
   * frames that refer to that frame's events are in the dispatch ring, so once the main thread has
   * drained that ring after reading this value, no unread frame can still refer to them.
   */
  RELEASED: 1,
  /**
   * The main thread's wake signal: a parked main thread waits on it with Atomics.waitAsync; the
   * worker, having taken PARKED from 1 to 0, bumps it and notifies. (A MessagePort message per wake
   * cost the worker ~10 % of its CPU at high rates.)
   */
  WAKE: 2,
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
