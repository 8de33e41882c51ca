/**
 * Messages and contexts of the colony pool (DESIGN §6): what the main thread and the pool threads
 * ("lanes") say to each other beside the shared task table (`task-table.ts`), and the `ctx` a task
 * receives. Tasks themselves travel through the table, never through these messages.
 */
import type { MessagePort } from 'node:worker_threads';
import type { SerializedError } from './errors.js';
import type { PageChangeEvent } from './events.js';

/** What a slot's payload asks a lane to run. */
export const TaskKind = {
  /** `module[name](...args)`: a plain function call (benchmarks, utilities). */
  CALL: 0,
  /** A `task` subscription's dispatch: `module[name](event, ctx: TaskContext)`. */
  SUBSCRIPTION: 1,
  /** A colony worker: `module.default(task, ctx: ColonyWorkerContext)`. */
  COLONY: 2,
  /** Load `module` and check that `name` is an exported function; runs nothing (for `subscribe`). */
  CHECK: 3,
} as const;
export type TaskKind = (typeof TaskKind)[keyof typeof TaskKind];

/** The dispatch a task subscription's task runs for. */
export interface TaskDispatch {
  readonly id: number;
  readonly subscriptionId: string;
  readonly key: string;
  readonly episodeId: string;
}

/** A slot's payload, by kind (tagged union on the first element). */
export type TaskPayload =
  | readonly [kind: typeof TaskKind.CALL, module: string, name: string, args: readonly unknown[]]
  | readonly [kind: typeof TaskKind.SUBSCRIPTION, module: string, name: string, event: PageChangeEvent, dispatch: TaskDispatch]
  | readonly [kind: typeof TaskKind.COLONY, module: string, name: string, task: string, workerId: string, input: unknown, hasEngine: boolean]
  | readonly [kind: typeof TaskKind.CHECK, module: string, name: string];

/** A task's outcome: `[true, value]` or `[false, error]`. */
export type TaskOutcome = readonly [ok: true, value: unknown] | readonly [ok: false, error: SerializedError];

/** workerData of the pool threads. */
export interface PoolThreadData {
  /** The engine's ingest ring, for `ctx.dispatchChange`; absent for a colony without an engine. */
  readonly ingest?: SharedArrayBuffer | undefined;
  /**
   * The engine's ack ring: a subscription task's derived events go there (see protocol.ts, AckError),
   * never queued behind a full ingest ring while the worker waits at `maxInFlight` for this very
   * task; the writer nudges the ingest ring afterwards.
   */
  readonly acks?: SharedArrayBuffer | undefined;
}

/** The Piscina task that starts a lane (one per pool thread while there is work). */
export interface LaneStart {
  readonly kind: 'lane';
  readonly table: SharedArrayBuffer;
  readonly lane: number;
  readonly port: MessagePort;
  /** Tasks one lane runs at once (async tasks interleave). */
  readonly concurrency: number;
  /** How long an idle lane waits for work before it retires and frees its thread. */
  readonly lingerMs: number;
}

/** Lane → main messages on the lane's port. */
export type LaneMessage =
  /** The main thread was parked and completions are waiting in the done queue. */
  | { readonly t: 'wake' }
  /** `ctx.emit(type, data)` of the task in `slot`. */
  | { readonly t: 'emit'; readonly slot: number; readonly type: string; readonly data: unknown }
  /** `ctx.dispatchChange(events)` of the colony worker in `slot` (validated; the colony forwards them to its engine). */
  | { readonly t: 'changes'; readonly slot: number; readonly events: readonly PageChangeEvent[] }
  /** The task in `slot` finished; the outcome is here, or in the slot when absent. */
  | { readonly t: 'done'; readonly slot: number; readonly outcome?: TaskOutcome }
  /** The slot's payload did not fit in the slot: send it. */
  | { readonly t: 'fetch'; readonly slot: number }
  /** The task in `slot` was claimed with inbox messages waiting: send them. */
  | { readonly t: 'inbox?'; readonly slot: number };

/** Main → lane messages on the lane's port. */
export type MainMessage =
  | { readonly t: 'abort'; readonly slot: number }
  | { readonly t: 'inbox'; readonly slot: number; readonly messages: readonly unknown[] }
  | { readonly t: 'payload'; readonly slot: number; readonly payload: TaskPayload };

/**
 * What a `task` subscription's function receives besides the event:
 * `export default async function (event: PageChangeEvent, ctx: TaskContext) { … }`.
 */
export interface TaskContext {
  readonly dispatch: TaskDispatch;
  /** Aborted when the engine closes. */
  readonly signal: AbortSignal;
  /**
   * Writes changes straight into the engine's ingest ring from the pool thread. They are derived
   * from this dispatch (budget and depth count them) and counted before the dispatch is released,
   * so quiescence waits for them.
   */
  dispatchChange(events: PageChangeEvent | readonly PageChangeEvent[]): void;
}

/** What a colony worker module's default export receives: `(task: string, ctx: ColonyWorkerContext)`. */
export interface ColonyWorkerContext {
  readonly workerId: string;
  /** The spawn's `input` (or the batch entry's `data`, or the trigger's input). */
  readonly input: unknown;
  /** Aborted by `stopWorker`, by a `waitForWorkerReports` timeout and by `stop()`. */
  readonly signal: AbortSignal;
  /** Messages sent with `sendToWorker`, in order; ends when the worker is stopped. */
  readonly inbox: AsyncIterable<unknown>;
  /** Publishes `{ type, data }` on the colony's EventBus, attributed to this worker. */
  emit(type: string, data?: unknown): void;
  /** Hands changes to the colony's `engine` (`engine.dispatchChange`); throws when it has none. */
  dispatchChange(events: PageChangeEvent | readonly PageChangeEvent[]): void;
}

/** What a colony worker module returns. Anything else (or nothing) counts as `{ status: 'success' }`. */
export interface ColonyWorkerResult {
  readonly status?: 'success' | 'partial' | 'failed';
  readonly summary?: string;
  readonly data?: unknown;
}
