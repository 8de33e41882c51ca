/**
 * The engine's side of `mapSource` (DESIGN §4): exactly one bridge per mapped non-static source,
 * feeding the ingest ring in batches.
 *
 * - A source that can run in the watch worker (it exposes a {@link WORKER_HOSTED} descriptor, as
 *   `LocalFsWatcher` does) is hosted there: the worker writes framed events straight into the ring,
 *   so a storm costs the embedder's event loop nothing.
 * - Any other source is drained on the main thread: events are collected as they come and written
 *   in one `dispatchChange` per turn of the event loop (not one awaited write per event); while a
 *   write waits for ring space, the next batch accumulates, up to a bound that pauses the source.
 *
 * In-flight accounting: a bridge holds the ingest ring's PENDING slot (see `IngestHold`) while it has
 * events not yet handed to the ring, and lends the same hold to the source through `WatchContext`,
 * so a storm still being coalesced or reconciled keeps the engine from declaring quiescence.
 */
import { createRequire } from 'node:module';
import type { ResourceLimits, Worker } from 'node:worker_threads';
import { deserializeError, StaticSourceError, TimeoutError, ValidationError, WorkerCrashedError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import { startWorker } from '../shared/worker-entry.js';
import { IngestHold } from '../watchers/ingest-hold.js';
import { type ContextPageSource, type WatchContext, WORKER_HOSTED, type WorkerHostedDescriptor } from '../watchers/source.js';
import { SourcePollWatcher } from '../watchers/source-poll-watcher.js';
import type { WatchReply, WatchRequest, WatchWorkerData } from '../watchers/watch-protocol.js';

const WATCH_WORKER = new URL('../workers/watch.worker.js', import.meta.url);
/** How long close() lets the watch worker close its native subscriptions before terminating it. */
const WATCH_WORKER_CLOSE_MS = 10_000;
/**
 * How long a `process.exit()` with sources still mapped blocks the main thread while the watch
 * worker closes its native subscriptions (the process would otherwise crash as it ends the thread).
 */
const WATCH_WORKER_EXIT_MS = 3_000;

let nativeWatcherPinned = false;
/**
 * Loads `@parcel/watcher` once on the main thread and keeps it loaded. Its addon cannot be unloaded
 * and loaded again: once the only thread that loaded it ends, the next watch worker (a second engine
 * in the same process) fails with "Module did not self-register" and would fall back to polling.
 */
function pinNativeWatcher(): void {
  if (nativeWatcherPinned) return;
  nativeWatcherPinned = true;
  try {
    createRequire(import.meta.url)('@parcel/watcher');
  } catch {
    // Unavailable on this platform: the watch worker reports the fallback to polling per source.
  }
}

/** Events a main-thread bridge buffers before it stops pulling from its source (backpressure). */
const MAX_BUFFERED_EVENTS = 8_192;
/** How long an unmap waits for a source that ignores its abort signal before giving up on it. */
const SOURCE_STOP_TIMEOUT_MS = 5_000;

export type { ContextPageSource } from '../watchers/source.js';

export { warnSourceError } from '../watchers/source.js';

/** What the engine lends its bridges. */
export interface SourceBridgeHost {
  /** The ingest ring's buffer. */
  readonly ingest: SharedArrayBuffer;
  /** Writes external events into the ingest ring (validated, all or none); resolves when written. */
  dispatch(events: PageChangeEvent[]): Promise<void>;
  /** Reports a source's failure (`source-error`). */
  reportError(sourceId: string, error: unknown): void;
  /** Subscribes to the engine's quiescence announcements; returns an unsubscribe. */
  onQuiescence?(listener: () => void): () => void;
  /** Called when the set of bridges changes (the engine keeps the process alive while any exists). */
  onChange?(): void;
  /** V8 limits of the watch worker thread (the engine passes its `resourceLimits` option). */
  readonly resourceLimits?: ResourceLimits;
}

/** What `engine.mapSource` resolves to. */
export interface MappedSource {
  readonly sourceId: string;
  /** Stops the bridge and waits for it; idempotent. */
  unmap(): Promise<void>;
}

interface Bridge {
  readonly sourceId: string;
  stop(): Promise<void>;
}

/** A readable name for a source in errors. */
export function describeSource(source: ContextPageSource): string {
  const id = (source as { sourceId?: unknown }).sourceId;
  if (typeof id === 'string' && id.length > 0) return id;
  return source.constructor?.name ?? 'source';
}

/** The set of bridges of one engine. */
export class SourceBridges {
  readonly #host: SourceBridgeHost;
  readonly #hold: IngestHold;
  readonly #bridges = new Map<ContextPageSource, Promise<Bridge>>();
  #watchWorker: WatchWorkerLink | undefined;
  #closed = false;

  constructor(host: SourceBridgeHost) {
    this.#host = host;
    this.#hold = new IngestHold(host.ingest);
  }

  /** The watch worker's V8 limits while it runs; null before a source needed it. */
  get watchResourceLimits(): ResourceLimits | null {
    return this.#watchWorker?.resourceLimits ?? null;
  }

  /** Bridges held at the moment (diagnostics). */
  get size(): number {
    return this.#bridges.size;
  }

  /**
   * Starts the bridge of `source` (or returns the existing one). Validation happens before any
   * await so that a static source is refused at once. A worker-hosted source resolves once its
   * watcher has taken its baseline, and rejects if it cannot start (e.g. a missing root: ENOENT).
   */
  map(source: ContextPageSource): Promise<MappedSource> {
    if (source === null || typeof source !== 'object') return Promise.reject(new ValidationError('source', 'must be a ContextPageSource object'));
    if (source.static !== false) {
      if (source.static === true) return Promise.reject(new StaticSourceError(`${describeSource(source)} is static: it has no live changes to bridge`));
      return Promise.reject(new ValidationError('source.static', 'must be a boolean'));
    }
    const watches = typeof source.watch === 'function' || descriptorOf(source) !== undefined;
    if (!watches && typeof source.snapshot !== 'function') {
      return Promise.reject(new ValidationError('source.watch', 'a non-static source must implement watch(signal) or snapshot()'));
    }
    let bridge = this.#bridges.get(source);
    if (bridge === undefined) {
      // A source with only snapshot() is polled (SourcePollWatcher, default interval) and diffed.
      bridge = this.#start(watches ? source : new SourcePollWatcher(source), source);
      this.#bridges.set(source, bridge);
      // A bridge that failed to start is forgotten, so the source can be mapped again.
      bridge.catch(() => {
        this.#bridges.delete(source);
        this.#host.onChange?.();
      });
    }
    return bridge.then((b) => ({ sourceId: b.sourceId, unmap: () => this.unmap(source).then(() => undefined) }));
  }

  /** Starts the bridge that watches `source`; `key` is the source as mapped (the map's key). */
  async #start(source: ContextPageSource, key: ContextPageSource): Promise<Bridge> {
    const descriptor = descriptorOf(source);
    if (descriptor !== undefined) {
      this.#watchWorker ??= new WatchWorkerLink(this.#host);
      return this.#watchWorker.watch(describeSource(source), descriptor);
    }
    const hostInWorker = (descriptor: WorkerHostedDescriptor): Promise<() => Promise<void>> => {
      this.#watchWorker ??= new WatchWorkerLink(this.#host);
      return this.#watchWorker.watch(describeSource(source), descriptor).then((hosted) => () => hosted.stop());
    };
    const bridge = new MainThreadBridge(source, this.#host, this.#hold, hostInWorker, () => {
      this.#bridges.delete(key);
      this.#host.onChange?.();
    });
    // A source that announces readiness is mapped once it watches (or fails to start: rejected).
    if (source.reportsReady === true) await bridge.started;
    return bridge;
  }

  /** Stops the bridge of `source`; false if it was not mapped. */
  async unmap(source: ContextPageSource): Promise<boolean> {
    const bridge = this.#bridges.get(source);
    if (bridge === undefined) return false;
    this.#bridges.delete(source);
    this.#host.onChange?.();
    const started = await bridge.catch(() => undefined);
    await started?.stop();
    return started !== undefined;
  }

  /** Stops every bridge and the watch worker. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const bridges = [...this.#bridges.keys()];
    await Promise.all(bridges.map((source) => this.unmap(source)));
    await this.#watchWorker?.close();
    this.#hold.releaseAll();
  }
}

function descriptorOf(source: ContextPageSource): WorkerHostedDescriptor | undefined {
  const describe = (source as { [WORKER_HOSTED]?: () => WorkerHostedDescriptor | undefined })[WORKER_HOSTED];
  return typeof describe === 'function' ? describe.call(source) : undefined;
}

/** Drains a source's `watch()` on the main thread, writing one batch per event-loop turn. */
class MainThreadBridge implements Bridge {
  readonly sourceId: string;
  readonly #host: SourceBridgeHost;
  readonly #hold: IngestHold;
  readonly #controller = new AbortController();
  readonly #done: Promise<void>;
  #buffer: PageChangeEvent[] = [];
  #release: (() => void) | undefined;
  #flushScheduled = false;
  #writing: Promise<void> | undefined;
  #ready = false;
  #resolveStarted!: () => void;
  #rejectStarted!: (error: unknown) => void;
  /** Settles when the source reports ready, yields its first event, ends, or fails before either. */
  readonly started = new Promise<void>((resolve, reject) => {
    this.#resolveStarted = resolve;
    this.#rejectStarted = reject;
  });

  readonly #hostInWorker: (descriptor: WorkerHostedDescriptor) => Promise<() => Promise<void>>;

  constructor(
    source: ContextPageSource,
    host: SourceBridgeHost,
    hold: IngestHold,
    hostInWorker: (descriptor: WorkerHostedDescriptor) => Promise<() => Promise<void>>,
    onEnd: () => void,
  ) {
    this.sourceId = describeSource(source);
    this.#host = host;
    this.#hold = hold;
    this.#hostInWorker = hostInWorker;
    this.#done = this.#run(source, onEnd);
  }

  async #run(source: ContextPageSource, onEnd: () => void): Promise<void> {
    let failure: { error: unknown } | undefined;
    const signal = this.#controller.signal;
    const context: WatchContext = { hold: () => this.#hold.hold(), report: (error) => this.#host.reportError(this.sourceId, error) };
    if (this.#host.onQuiescence !== undefined) context.onQuiescence = this.#host.onQuiescence;
    context.ready = () => this.#markReady();
    context.hostInWorker = this.#hostInWorker;
    this.started.catch(() => undefined);
    let iterator: AsyncIterator<PageChangeEvent> | undefined;
    const aborted = new Promise<IteratorResult<PageChangeEvent>>((resolve) =>
      signal.addEventListener('abort', () => resolve({ done: true, value: undefined }), { once: true }),
    );
    try {
      iterator = source.watch!(signal, context)[Symbol.asyncIterator]();
      for (;;) {
        // Race the abort: a source that ignores its signal must not keep unmap waiting.
        const result = await Promise.race([iterator.next(), aborted]);
        if (result.done === true || signal.aborted) break;
        this.#markReady();
        this.#buffer.push(result.value);
        this.#release ??= this.#hold.hold();
        if (this.#buffer.length >= MAX_BUFFERED_EVENTS) await this.#flushNow();
        else this.#scheduleFlush();
      }
    } catch (error) {
      if (!signal.aborted) failure = { error };
    } finally {
      await this.#flushNow().catch(() => undefined);
      if (iterator?.return !== undefined && failure === undefined) {
        await withTimeout(Promise.resolve(iterator.return()), SOURCE_STOP_TIMEOUT_MS).catch((error: unknown) => this.#host.reportError(this.sourceId, error));
      }
      this.#releaseHold();
    }
    // Forget the bridge before reporting, so a listener that maps the source again gets a new one.
    onEnd();
    if (failure !== undefined && !this.#ready) {
      // Failed to start: mapSource rejects with the error (a source that announces readiness).
      this.#ready = true;
      this.#rejectStarted(failure.error);
      if (source.reportsReady === true) return;
    }
    this.#markReady();
    if (failure !== undefined) this.#host.reportError(this.sourceId, failure.error);
  }

  #markReady(): void {
    if (this.#ready) return;
    this.#ready = true;
    this.#resolveStarted();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // setImmediate runs after every microtask: everything the source had ready is in the batch.
    setImmediate(() => {
      this.#flushScheduled = false;
      void this.#flushNow();
    });
  }

  /** Writes the buffer (after the write in progress, which keeps ring order); resolves when written. */
  async #flushNow(): Promise<void> {
    while (this.#writing !== undefined) await this.#writing;
    if (this.#buffer.length === 0) {
      this.#releaseHold();
      return;
    }
    const batch = this.#buffer;
    this.#buffer = [];
    this.#writing = this.#write(batch).finally(() => {
      this.#writing = undefined;
      if (this.#buffer.length === 0) this.#releaseHold();
    });
    await this.#writing;
  }

  async #write(batch: PageChangeEvent[]): Promise<void> {
    try {
      await this.#host.dispatch(batch);
    } catch (error) {
      if (!(error instanceof ValidationError)) {
        this.#host.reportError(this.sourceId, error);
        return;
      }
      // One malformed event must not cost the others: write them one by one, report the bad ones.
      for (const event of batch) {
        await this.#host.dispatch([event]).catch((e: unknown) => this.#host.reportError(this.sourceId, e));
      }
    }
  }

  #releaseHold(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  async stop(): Promise<void> {
    this.#controller.abort();
    await this.#done;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`source did not stop within ${ms} ms of its abort signal`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The main thread's link to the watch worker: starts it on first use, one thread for all sources. */
class WatchWorkerLink {
  readonly #host: SourceBridgeHost;
  readonly #worker: Worker;
  readonly #held = new SharedArrayBuffer(4);
  readonly #closedFlag = new Int32Array(new SharedArrayBuffer(4));
  readonly #onProcessExit = (): void => this.#closeOnExit();
  readonly #pending = new Map<number, { resolve: () => void; reject: (error: unknown) => void }>();
  readonly #stopped = new Map<number, () => void>();
  readonly #names = new Map<number, string>();
  #nextId = 1;
  #exited = false;
  #fatal: unknown;
  #closed: (() => void) | undefined;

  constructor(host: SourceBridgeHost) {
    this.#host = host;
    pinNativeWatcher();
    const data: WatchWorkerData = { ingest: host.ingest, held: this.#held, closed: this.#closedFlag.buffer as SharedArrayBuffer };
    const limits = host.resourceLimits;
    this.#worker = startWorker(WATCH_WORKER, { workerData: data, name: 'converge:watch', ...(limits === undefined ? {} : { resourceLimits: limits }) });
    this.#worker.unref();
    this.#worker.on('message', (reply: WatchReply) => this.#onReply(reply));
    this.#worker.on('error', (error) => this.#onExit(error));
    this.#worker.on('exit', (code) => {
      this.#closed?.();
      this.#onExit(new WorkerCrashedError(`watch worker exited with code ${code}`, this.#fatal === undefined ? undefined : { cause: this.#fatal }));
    });
  }

  /** The V8 limits the thread runs with (null once it exited). */
  get resourceLimits(): ResourceLimits | null {
    return this.#exited ? null : (this.#worker.resourceLimits ?? null);
  }

  watch(sourceId: string, descriptor: WorkerHostedDescriptor): Promise<Bridge> {
    if (this.#exited) return Promise.reject(new WorkerCrashedError('watch worker is not running'));
    const id = this.#nextId++;
    this.#names.set(id, sourceId);
    // A mapped source keeps the process alive (DESIGN §3, Lifetime); an idle engine does not.
    if (this.#names.size === 1) {
      this.#worker.ref();
      process.on('exit', this.#onProcessExit);
    }
    const started = new Promise<void>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    this.#post({ type: 'watch', id, descriptor });
    return started.then(
      () => ({ sourceId, stop: () => this.#unwatch(id) }),
      (error: unknown) => {
        this.#forget(id);
        throw error;
      },
    );
  }

  #unwatch(id: number): Promise<void> {
    if (this.#exited || !this.#names.has(id)) return Promise.resolve();
    const stopped = new Promise<void>((resolve) => this.#stopped.set(id, resolve));
    this.#post({ type: 'unwatch', id });
    return stopped;
  }

  #post(request: WatchRequest): void {
    this.#worker.postMessage(request);
  }

  #forget(id: number): void {
    this.#names.delete(id);
    if (this.#names.size === 0) {
      process.off('exit', this.#onProcessExit);
      if (!this.#exited) this.#worker.unref();
    }
  }

  /**
   * `process.exit()` while sources are mapped: Node ends this worker after the `exit` listeners, and
   * ending it with a native subscription open aborts the process (parcel-bundler/watcher#264). So
   * ask it to close them and block this thread until it has (it runs on its own event loop), at
   * most {@link WATCH_WORKER_EXIT_MS}.
   */
  #closeOnExit(): void {
    process.off('exit', this.#onProcessExit);
    if (this.#exited) return;
    this.#post({ type: 'close' });
    const deadline = Date.now() + WATCH_WORKER_EXIT_MS;
    for (let left = WATCH_WORKER_EXIT_MS; left > 0 && Atomics.load(this.#closedFlag, 0) === 0; left = deadline - Date.now()) {
      Atomics.wait(this.#closedFlag, 0, 0, left);
    }
  }

  #onReply(reply: WatchReply): void {
    switch (reply.type) {
      case 'started':
        this.#pending.get(reply.id)?.resolve();
        this.#pending.delete(reply.id);
        return;
      case 'failed':
        this.#pending.get(reply.id)?.reject(deserializeError(reply.error));
        this.#pending.delete(reply.id);
        return;
      case 'source-error':
        this.#host.reportError(this.#names.get(reply.id) ?? 'watch-worker', deserializeError(reply.error));
        return;
      case 'stopped':
        this.#forget(reply.id);
        this.#stopped.get(reply.id)?.();
        this.#stopped.delete(reply.id);
        return;
      case 'closed':
        this.#closed?.();
        return;
      case 'fatal':
        this.#fatal = deserializeError(reply.error);
        return;
    }
  }

  #onExit(error: unknown): void {
    if (this.#exited) return;
    this.#exited = true;
    IngestHold.releaseOrphaned(this.#host.ingest, this.#held);
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
    for (const resolve of this.#stopped.values()) resolve();
    this.#stopped.clear();
    // Watchers die with the thread: say so for each source that was still mapped.
    for (const sourceId of this.#names.values()) this.#host.reportError(sourceId, error);
    this.#names.clear();
    process.off('exit', this.#onProcessExit);
  }

  /**
   * Ends the thread once its watchers have closed their native subscriptions: terminating it with a
   * subscription open crashes the process (parcel-bundler/watcher#264). A worker that does not answer
   * within {@link WATCH_WORKER_CLOSE_MS} is terminated anyway, with a warning.
   */
  async close(): Promise<void> {
    if (this.#exited) return;
    let timer: NodeJS.Timeout | undefined;
    const closed = new Promise<boolean>((resolve) => {
      this.#closed = () => resolve(true);
      timer = setTimeout(() => resolve(false), WATCH_WORKER_CLOSE_MS).unref();
    });
    this.#post({ type: 'close' });
    const answered = await closed;
    clearTimeout(timer);
    if (!answered && !this.#exited) {
      process.emitWarning(`converge: the watch worker did not close its watchers within ${WATCH_WORKER_CLOSE_MS} ms; terminating it`, {
        code: 'CONVERGE_CLOSE_TIMEOUT',
      });
    }
    if (this.#exited) return;
    this.#exited = true;
    process.off('exit', this.#onProcessExit);
    this.#worker.removeAllListeners('exit');
    this.#worker.on('error', () => undefined);
    await this.#worker.terminate();
    IngestHold.releaseOrphaned(this.#host.ingest, this.#held);
  }
}
