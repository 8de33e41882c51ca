/**
 * The source contract (DESIGN §4): what `engine.mapSource` accepts, and the small protocol a source
 * may use to tell the engine that it still holds changes it has not yielded yet.
 */
import type { PageChangeEvent } from '../shared/events.js';

/** One page of a source's snapshot (for {@link SourcePollWatcher} diffs). */
export interface PageRecord {
  /** The page id events name, e.g. `file:src/a.ts`. */
  pageId: string;
  /** Anything that changes when the page's content changes (a hash, a version, an etag). */
  version: string;
  dataType?: string;
  /** Ids of the records the page is made of (a replaced page's events list what came and went). */
  records?: string[];
  /** Free-form fields copied into the events' `extra`. */
  extra?: Record<string, unknown>;
}

/**
 * What the bridge hands a source's `watch`. A source that coalesces or reconciles before it yields
 * takes a hold for as long as it has changes nobody has seen yet: the engine is not quiescent while
 * any hold is taken (a storm still being coalesced is not a settled system).
 */
export interface WatchContext {
  /** Takes a hold; call the returned function (idempotent) to give it back. */
  hold(): () => void;
  /** Reports a non-fatal problem (the engine emits it as `source-error`). */
  report?(error: unknown): void;
  /**
   * A source that sets `reportsReady` calls this once it is watching (baseline taken, subscriptions
   * open); `engine.mapSource` resolves only then, so a change made right after it is never missed.
   */
  ready?(): void;
  /**
   * Offered by an engine's bridge: runs a worker-hostable watcher (see {@link WORKER_HOSTED}) in the
   * engine's watch worker, whose events go straight into the ingest ring; resolves once it watches,
   * with a function that stops it. A composite source uses it for its LocalFsWatcher children.
   */
  hostInWorker?(descriptor: WorkerHostedDescriptor): Promise<() => Promise<void>>;
  /** Calls `listener` at each quiescence of the engine the source is mapped into; returns an unsubscribe. */
  onQuiescence?(listener: () => void): () => void;
}

/** A source of page changes. `static` sources are refused by `engine.mapSource`. */
export interface ContextPageSource {
  readonly static: boolean;
  /** True if `watch` calls `context.ready()` once it is watching (see {@link WatchContext.ready}). */
  readonly reportsReady?: boolean;
  /** Yields the source's changes until `signal` aborts (then it returns). */
  watch?(signal: AbortSignal, context?: WatchContext): AsyncIterable<PageChangeEvent>;
  /** The source's pages now, for polling diffs. */
  snapshot?(): Promise<PageRecord[]>;
}

/**
 * A source may offer to run inside the engine's watch worker thread instead of on the embedder's
 * thread: `source[WORKER_HOSTED]()` returns a serialisable descriptor the watch worker knows how to
 * build a watcher from. The bridge uses it when it can and falls back to `watch()` otherwise.
 */
export const WORKER_HOSTED: unique symbol = Symbol.for('converge.workerHosted');

/** Descriptor of a watcher the watch worker can host. */
export type WorkerHostedDescriptor = { kind: 'local-fs'; root: string; options: import('./local-fs-core.js').FsWatchCoreOptions };

/** A context whose holds do nothing (a source watched outside an engine). */
export const NO_WATCH_CONTEXT: WatchContext = Object.freeze({ hold: () => () => undefined });

/** Reports a source's problem as a process warning: loud when nobody listens for `source-error`. */
export function warnSourceError(sourceId: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  process.emitWarning(`source ${sourceId}: ${message}`, { type: 'ConvergeSourceWarning', code: typeof code === 'string' ? code : 'CONVERGE_SOURCE' });
}

/**
 * Where a watcher's non-fatal problem goes: its own `onError` if given, else the engine (through
 * the watch context, as `source-error`), else a process warning.
 */
export function reportSourceError(sourceId: string, error: unknown, context: WatchContext, onError?: (error: unknown) => void): void {
  if (onError !== undefined) onError(error);
  else if (context.report !== undefined) context.report(error);
  else warnSourceError(sourceId, error);
}
