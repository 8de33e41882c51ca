/**
 * The engine of {@link LocalFsWatcher}, free of any thread: it runs on the main thread (behind
 * `watch()`) or inside the watch worker (writing straight into the ingest ring). It turns raw
 * `@parcel/watcher` events — or periodic rescans when polling — into each path's net change.
 *
 * Nothing lost: the kernel's inotify queue overflows silently under a storm, so a window whose raw
 * event count comes near the queue limit (or a backend error) is *suspect*. The paths the events
 * name are delivered as the storm goes on; once it is over, the whole tree is reconciled once
 * against the known state (stat fingerprints, then content hashes of what differs), and every
 * path's final state is reported. (A storm that goes on and on is reconciled every few seconds.) A hold is kept from the first raw event until the changes
 * are handed over (and through any pending reconcile), so the engine is never quiescent meanwhile.
 */
import { type FSWatcher, readFileSync, watch as fsWatch } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import type { PageChangeEvent } from '../shared/events.js';
import { SourceNotFoundError, WatcherBackendError } from './errors.js';
import { FsTree, forEachSliced, type NetChange } from './fs-tree.js';
import { compileIgnore, NATIVE_IGNORE_GLOBS } from './ignore.js';

/** Options of the core, all resolved (see LocalFsWatcher for the user-facing ones). */
export interface FsWatchCoreOptions {
  debounceMs: number;
  ignore: string[];
  dataType: string;
  poll: boolean;
  pollIntervalMs: number;
  /** Longest a continuous burst may postpone a flush. */
  maxDelayMs: number;
  /** Raw events in one window that make it suspect; 0 = derive from the inotify queue limit. */
  suspectThreshold: number;
  /** Raw events in one window that start storm tracking (see FsWatchCore). Default 1: every burst. */
  stormEvents?: number;
  /** Quiet time on the storm's directories that ends a storm. Default debounceMs + 200 ms. */
  stormQuietMs?: number;
}

/** Where the core delivers. `emit` may return a promise: the core waits (backpressure). */
export interface FsWatchSink {
  emit(events: PageChangeEvent[]): void | Promise<void>;
  hold(): () => void;
  /** A non-fatal problem (the watcher carries on). */
  error(error: unknown): void;
}

/** Counters for diagnostics and tests. */
export interface FsWatchStats {
  backend: 'native' | 'poll' | 'none';
  rawEvents: number;
  flushes: number;
  rescans: number;
  suspectWindows: number;
  emitted: number;
}

/** Directories watched directly while a storm lasts (see FsWatchCore, storms). */
const MAX_STORM_DIRS = 32;
/** During a storm that goes on, a suspect window is reconciled at most this often… */
const MIN_RESCAN_INTERVAL_MS = 30_000;
/** …and at most once per this many times the last reconcile's duration (≤ 10 % of the time). */
const RESCAN_DUTY = 10;
/** Events per `emit` call. */
const EMIT_BATCH = 1_024;
/** The kernel default, if /proc cannot be read. */
const DEFAULT_INOTIFY_QUEUE = 16_384;

/** The inotify queue limit of this machine (events the kernel buffers before it drops them). */
export function inotifyQueueLimit(): number {
  try {
    const value = Number.parseInt(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'), 10);
    return Number.isFinite(value) && value > 0 ? value : DEFAULT_INOTIFY_QUEUE;
  } catch {
    return DEFAULT_INOTIFY_QUEUE;
  }
}

type ParcelModule = typeof import('@parcel/watcher');
type ParcelEvent = { path: string; type: 'create' | 'update' | 'delete' };

export class FsWatchCore {
  readonly root: string;
  readonly sourceId: string;
  readonly #options: FsWatchCoreOptions;
  readonly #sink: FsWatchSink;
  readonly #threshold: number;
  #tree: FsTree | undefined;
  #realRoot = '';
  #subscription: { unsubscribe(): Promise<void> } | undefined;
  /** The native subscribe call while it is in flight: stop() waits for it (see stop). */
  #subscribing: Promise<void> | undefined;
  #dirty = new Set<string>();
  #fullRescan = false;
  /** A window since the last full reconcile may have lost events (see #afterFlush). */
  #suspect = false;
  #suspectSince = 0;
  /** How long the last full reconcile took (ms). */
  #lastRescanMs = 0;
  #windowEvents = 0;
  #windowStart = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #ready = false;
  #stopped = false;
  #release: (() => void) | undefined;
  /**
   * Storms: `@parcel/watcher` delivers nothing while events keep coming less than 50 ms apart (its
   * native debounce), so during a continuous storm the watcher would look idle and the engine could
   * declare quiescence in the middle of it. While a storm lasts, a few of its directories are also
   * watched with `fs.watch` (undebounced inotify) just to see activity, and the hold is kept until
   * they have been quiet for `stormQuietMs`. Every burst is treated so: the first delivery of a
   * storm may hold a dozen events while the rest is still buffered natively, and a hold dropped
   * then would be a quiescence 50 ms into the storm (seen in the 100k-file bench).
   */
  readonly #stormDirs = new Map<string, FSWatcher>();
  #lastActivity = 0;
  /** Raw events that arrived while the baseline was being taken (see start). */
  readonly #baselineEvents = new Map<string, ParcelEvent['type']>();
  readonly stats: FsWatchStats = { backend: 'none', rawEvents: 0, flushes: 0, rescans: 0, suspectWindows: 0, emitted: 0 };

  constructor(root: string, options: FsWatchCoreOptions, sink: FsWatchSink) {
    this.root = resolve(root);
    this.sourceId = `file:${this.root}`;
    this.#options = options;
    this.#sink = sink;
    this.#threshold = options.suspectThreshold > 0 ? options.suspectThreshold : Math.max(64, Math.floor(inotifyQueueLimit() / 8));
  }

  /** Checks the root, takes the baseline, starts watching. Rejects with code ENOENT if the root is missing. */
  async start(): Promise<void> {
    try {
      const st = await stat(this.root);
      if (!st.isDirectory()) throw Object.assign(new Error(`not a directory: ${this.root}`), { code: 'ENOTDIR' });
      this.#realRoot = await realpath(this.root);
    } catch (error) {
      throw new SourceNotFoundError(this.root, { cause: error });
    }
    this.#tree = new FsTree(this.#realRoot, compileIgnore(this.#options.ignore));
    if (!this.#options.poll) await this.#startNative();
    // Baseline after subscribing: a change during the scan is either in the baseline or an event.
    const tree = this.#tree;
    await tree.reconcileAll(() => false, () => undefined);
    // A change reported after the subscription opened is a change after the watch started, even if
    // the scan already saw its result: a created file is reported as added, an updated one as replaced.
    for (const [rel, type] of this.#baselineEvents) {
      if (type === 'create') tree.files.delete(rel);
      else if (type === 'update') tree.files.invalidate(rel);
    }
    this.#baselineEvents.clear();
    this.#ready = true;
    if (this.#stopped) return;
    if (this.stats.backend === 'none') this.#startPolling();
    else if (this.#dirty.size > 0 || this.#fullRescan) this.#schedule();
  }

  #startNative(): Promise<void> {
    this.#subscribing = this.#subscribeNative();
    return this.#subscribing;
  }

  async #subscribeNative(): Promise<void> {
    try {
      const parcel = (await import('@parcel/watcher')) as ParcelModule;
      this.#subscription = await parcel.subscribe(this.#realRoot, (err, events) => this.#onRaw(err, events as ParcelEvent[]), {
        ignore: [...NATIVE_IGNORE_GLOBS],
      });
      this.stats.backend = 'native';
    } catch (error) {
      this.#sink.error(new WatcherBackendError(`native file watcher unavailable for ${this.root}; polling instead`, { cause: error }));
    }
  }

  #startPolling(): void {
    this.stats.backend = 'poll';
    const tick = (): void => {
      if (this.#stopped) return;
      this.#fullRescan = true;
      this.#release ??= this.#sink.hold();
      void this.#flush().finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(tick, this.#options.pollIntervalMs);
      });
    };
    this.#timer = setTimeout(tick, this.#options.pollIntervalMs);
  }

  #onRaw(err: Error | null, events: readonly ParcelEvent[]): void {
    if (this.#stopped) return;
    const now = performance.now();
    if (err !== null) {
      // Whatever the backend lost, a full reconcile finds it.
      this.#sink.error(new WatcherBackendError(`file watcher error under ${this.root}; rescanning`, { cause: err }));
      this.#fullRescan = true;
    }
    if (this.#windowEvents === 0) this.#windowStart = now;
    for (const event of events) {
      const rel = this.#relative(event.path);
      if (rel === undefined) continue;
      this.#dirty.add(rel);
      // During the baseline scan, the scan may have caught this change already: remember what it was.
      if (!this.#ready && !this.#baselineEvents.has(rel)) this.#baselineEvents.set(rel, event.type);
    }
    this.stats.rawEvents += events.length;
    this.#windowEvents += events.length;
    this.#lastActivity = now;
    if (this.#windowEvents >= (this.#options.stormEvents ?? 1)) this.#trackStorm(events);
    if (this.#windowEvents >= this.#threshold && !this.#suspect) {
      this.#suspect = true;
      this.#suspectSince = now;
      this.stats.suspectWindows++;
    }
    if (this.#dirty.size > 0 || this.#fullRescan) {
      this.#release ??= this.#sink.hold();
      if (this.#ready) this.#schedule();
    }
  }

  #relative(abs: string): string | undefined {
    // The native watcher reports absolute paths under the real root: a prefix cut is enough (and
    // path.relative, which normalizes both paths, was a tenth of this thread's time in a storm).
    const prefix = this.#realRoot.endsWith(sep) ? this.#realRoot : this.#realRoot + sep;
    const rel = abs.startsWith(prefix) ? abs.slice(prefix.length) : relative(this.#realRoot, abs);
    if (rel === '' || rel.startsWith('..')) return undefined;
    const posix = sep === '/' ? rel : rel.split(sep).join('/');
    return this.#tree!.ignored(posix) ? undefined : posix;
  }

  /** Trailing debounce, capped at maxDelayMs from the window's first event. */
  #schedule(): void {
    if (this.#stopped || this.stats.backend === 'poll') return;
    const now = performance.now();
    const due = Math.min(now + this.#options.debounceMs, this.#windowStart + this.#options.maxDelayMs);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, Math.max(0, due - now));
  }

  async #flush(): Promise<void> {
    if (this.#flushing !== undefined) return this.#flushing;
    this.#flushing = this.#flushOnce()
      .catch((error: unknown) => {
        // A flush that failed part-way is redone in full: state comparisons make that idempotent.
        this.#fullRescan = true;
        this.#sink.error(error);
      })
      .finally(() => {
        this.#flushing = undefined;
        this.#afterFlush();
      });
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    const tree = this.#tree!;
    const full = this.#fullRescan;
    const dirty = this.#dirty;
    this.#dirty = new Set();
    this.#fullRescan = false;
    if (full) this.#suspect = false;
    this.#windowEvents = 0;
    this.stats.flushes++;
    const startedAt = performance.now();
    const changes = new Map<string, NetChange>();
    const record = (rel: string, change: NetChange): void => void changes.set(rel, change);
    const checkAll = (list: Iterable<string>, trust: (rel: string) => boolean) =>
      forEachSliced([...list], (rel) => {
        const change = tree.check(rel, trust(rel));
        if (change !== undefined) record(rel, change);
      });
    const paths = new Set<string>();
    if (full) {
      // Only paths an event named are re-read; the rest trust their stat fingerprint.
      this.stats.rescans++;
      await tree.reconcileAll((rel) => !dirty.has(rel), record);
    } else {
      // A known directory an event named stands for its whole subtree (removed, or renamed away).
      for (const rel of dirty) {
        if (tree.dirs.has(rel)) for (const sub of await tree.reconcileSet(rel)) paths.add(sub);
        else paths.add(rel);
      }
      await checkAll(paths, () => false);
    }
    // New directories: their files may predate the directory's watch, so list them (and nested ones).
    while (tree.discovered.length > 0) {
      const found = new Set<string>();
      for (const dir of tree.discovered.splice(0)) for (const sub of await tree.reconcileSet(dir)) if (!paths.has(sub)) found.add(sub);
      for (const sub of found) paths.add(sub);
      await checkAll(found, () => false);
    }
    if (full) this.#lastRescanMs = performance.now() - startedAt;
    if (this.#stopped || changes.size === 0) return;
    const sorted = [...changes.keys()].sort();
    for (let i = 0; i < sorted.length && !this.#stopped; i += EMIT_BATCH) {
      const batch = sorted.slice(i, i + EMIT_BATCH).map((rel) => this.#event(rel, changes.get(rel)!));
      await this.#sink.emit(batch);
      this.stats.emitted += batch.length;
    }
  }

  #event(rel: string, change: NetChange): PageChangeEvent {
    const pageId = `file:${rel}`;
    const extra: Record<string, unknown> = { relativePath: rel };
    const hash = this.#tree!.files.hash(rel);
    if (change !== 'removed' && hash !== undefined) extra['contentHash'] = hash;
    const base = { pageId, sourceId: this.sourceId, dataType: this.#options.dataType, extra, ts: Date.now() };
    switch (change) {
      case 'added':
        return { kind: 'page_added', ...base };
      case 'replaced':
        return { kind: 'page_replaced', ...base, related: [pageId] };
      case 'removed':
        return { kind: 'page_invalidated', ...base, reason: 'deleted' };
    }
  }

  /**
   * After each flush: flush again if more came in; reconcile a suspect window once the storm is
   * over; keep the hold while a storm may still be buffered in the native watcher; else let go.
   */
  #afterFlush(): void {
    if (this.#stopped || this.stats.backend === 'poll') {
      this.#dropHold();
      return;
    }
    if (this.#dirty.size > 0 || this.#fullRescan) {
      this.#windowStart = performance.now();
      this.#schedule();
      return;
    }
    if (this.#timer !== undefined) return;
    const now = performance.now();
    const quietFor = now - this.#lastActivity;
    // A storm is over once its directories have been quiet for stormQuietMs (without one, a debounce).
    const quietMs = this.#stormDirs.size > 0 ? (this.#options.stormQuietMs ?? this.#options.debounceMs + 200) : this.#options.debounceMs;
    if (this.#suspect) {
      // Events may have been lost: reconcile the whole tree once, when the storm is over (a rescan in
      // the middle of it would only be redone), or every so often during a storm that goes on.
      const overdue = now - this.#suspectSince >= Math.max(MIN_RESCAN_INTERVAL_MS, RESCAN_DUTY * this.#lastRescanMs);
      if (quietFor >= quietMs || overdue) {
        this.#fullRescan = true;
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          void this.#flush();
        }, 0);
        return;
      }
    }
    if (this.#suspect || (this.#stormDirs.size > 0 && quietFor < quietMs)) {
      // The storm may still be going on inside the native watcher: look again when it could be over.
      this.#timer = setTimeout(
        () => {
          this.#timer = undefined;
          this.#afterFlush();
        },
        Math.max(1, quietMs - quietFor),
      );
      return;
    }
    this.#endStorm();
    this.#dropHold();
  }

  #trackStorm(events: readonly ParcelEvent[]): void {
    for (const event of events) {
      if (this.#stormDirs.size >= MAX_STORM_DIRS) return;
      const dir = dirname(event.path);
      if (this.#stormDirs.has(dir)) continue;
      try {
        const watcher = fsWatch(dir, { persistent: false }, () => (this.#lastActivity = performance.now()));
        // Only a hint: a directory that goes away (or a watch limit) just stops contributing.
        watcher.on('error', () => watcher.close());
        this.#stormDirs.set(dir, watcher);
      } catch {
        this.#stormDirs.set(dir, { close: () => undefined } as FSWatcher);
      }
    }
  }

  #endStorm(): void {
    for (const watcher of this.#stormDirs.values()) watcher.close();
    this.#stormDirs.clear();
  }

  #dropHold(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  /** Delivers what is pending now instead of at the end of the debounce window. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#flush();
  }

  /** Requests a full reconcile now (tests, and callers that know the backend lost events). */
  rescan(): Promise<void> {
    this.#fullRescan = true;
    this.#release ??= this.#sink.hold();
    return this.#flush();
  }

  /**
   * Stops watching; waits for a flush in progress. Idempotent.
   *
   * When this resolves, the native subscription is gone, even if stop() was called while it was
   * still being opened: the thread hosting the watcher may then exit. (`@parcel/watcher` 2.6 crashes
   * the whole process when a worker thread exits with a live subscription; parcel-bundler/watcher#264.)
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#subscribing;
    const subscription = this.#subscription;
    this.#subscription = undefined;
    await subscription?.unsubscribe().catch((error: unknown) => this.#sink.error(error));
    await this.#flushing;
    this.#endStorm();
    this.#dropHold();
  }
}
