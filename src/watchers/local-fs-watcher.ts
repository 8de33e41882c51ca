/**
 * `LocalFsWatcher` (DESIGN §4): a directory's files as pages. Page id `file:<relative path>`,
 * `extra.relativePath`, sourceId `file:<absolute root>`. Mapped into an engine it runs in the
 * engine's watch worker thread; iterated directly (`watch()`), it runs on the caller's thread.
 */
import { z } from 'zod';
import { ValidationError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import { parseInput } from '../shared/validation.js';
import { EventQueue } from './event-queue.js';
import { FsWatchCore, type FsWatchCoreOptions } from './local-fs-core.js';
import { type ContextPageSource, NO_WATCH_CONTEXT, reportSourceError, type WatchContext, WORKER_HOSTED, type WorkerHostedDescriptor } from './source.js';

/** Options of {@link LocalFsWatcher}; all optional. */
export interface LocalFsWatcherOptions {
  /** Quiet time that ends a burst; changes inside it are coalesced per path. Default 50 ms. */
  debounceMs?: number;
  /** Extra picomatch globs (root-relative, `/` separators) to ignore, on top of the defaults. */
  ignore?: string[];
  /** `dataType` of the events. Default `file`. */
  dataType?: string;
  /** Poll (mtime and size, then content hash) instead of using the native watcher. */
  poll?: boolean;
  /** Interval of the polling fallback. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Longest a continuous storm may postpone delivery. Default 1000 ms. */
  maxDelayMs?: number;
  /** Non-fatal problems (backend errors, fallback to polling). Default: a process warning. */
  onError?: (error: unknown) => void;
}

/** Defaults of {@link LocalFsWatcherOptions}. */
export const LOCAL_FS_DEFAULTS = Object.freeze({ debounceMs: 50, dataType: 'file', poll: false, pollIntervalMs: 1_000, maxDelayMs: 1_000 });

const OptionsSchema = z
  .object({
    debounceMs: z.number().finite().nonnegative().optional(),
    ignore: z.array(z.string().min(1)).optional(),
    dataType: z.string().min(1).optional(),
    poll: z.boolean().optional(),
    pollIntervalMs: z.number().finite().positive().optional(),
    maxDelayMs: z.number().finite().positive().optional(),
    onError: z.custom<(error: unknown) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .strict();

export class LocalFsWatcher implements ContextPageSource {
  readonly static = false;
  readonly reportsReady = true;
  /** `file:<absolute root>` */
  readonly sourceId: string;
  readonly root: string;
  readonly #options: FsWatchCoreOptions;
  readonly #onError: ((error: unknown) => void) | undefined;

  constructor(root: string, options: LocalFsWatcherOptions = {}) {
    if (typeof root !== 'string' || root.length === 0) throw new ValidationError('root', 'must be a non-empty path');
    const input = parseInput(OptionsSchema, options, 'options');
    this.#options = {
      debounceMs: input.debounceMs ?? LOCAL_FS_DEFAULTS.debounceMs,
      ignore: input.ignore ?? [],
      dataType: input.dataType ?? LOCAL_FS_DEFAULTS.dataType,
      poll: input.poll ?? LOCAL_FS_DEFAULTS.poll,
      pollIntervalMs: input.pollIntervalMs ?? LOCAL_FS_DEFAULTS.pollIntervalMs,
      maxDelayMs: input.maxDelayMs ?? LOCAL_FS_DEFAULTS.maxDelayMs,
      suspectThreshold: 0,
    };
    this.#onError = input.onError;
    const core = new FsWatchCore(root, this.#options, { emit: () => undefined, hold: () => () => undefined, error: () => undefined });
    this.root = core.root;
    this.sourceId = core.sourceId;
  }

  /** Yields each path's net change after every burst until `signal` aborts. */
  async *watch(signal: AbortSignal = new AbortController().signal, context: WatchContext = NO_WATCH_CONTEXT): AsyncGenerator<PageChangeEvent> {
    const descriptor = this[WORKER_HOSTED]();
    if (context.hostInWorker !== undefined && descriptor !== undefined) {
      // Inside an engine (e.g. a GitRepoSource's tree watcher): the watch worker delivers the events
      // straight into the ingest ring; this iteration only lives as long as the watch should.
      if (signal.aborted) return;
      const stop = await context.hostInWorker(descriptor);
      try {
        context.ready?.();
        if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      } finally {
        await stop();
      }
      return;
    }
    const queue = new EventQueue<PageChangeEvent>({ context });
    const core = new FsWatchCore(this.root, this.#options, {
      emit: (events) => queue.push(events),
      hold: () => context.hold(),
      error: (error) => this.#report(error, context),
    });
    const onAbort = (): void => queue.end();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) return;
      await core.start();
      context.ready?.();
      yield* queue;
    } finally {
      signal.removeEventListener('abort', onAbort);
      await core.stop();
    }
  }

  #report(error: unknown, context: WatchContext): void {
    reportSourceError(this.sourceId, error, context, this.#onError);
  }

  /** @internal Lets the engine host this watcher in its watch worker thread. */
  [WORKER_HOSTED](): WorkerHostedDescriptor | undefined {
    // A user callback cannot cross threads: such a watcher stays on the caller's thread.
    if (this.#onError !== undefined) return undefined;
    return { kind: 'local-fs', root: this.root, options: { ...this.#options, ignore: [...this.#options.ignore] } };
  }
}
