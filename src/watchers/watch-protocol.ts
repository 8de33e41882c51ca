/**
 * What the engine's main thread (src/main/source-bridge.ts) and its watch worker
 * (src/workers/watch.worker.ts, logic in ./watch-host.ts) exchange over the worker's port. Events do
 * not travel here: the worker writes them straight into the ingest ring.
 */
import type { SerializedError } from '../shared/errors.js';
import type { WorkerHostedDescriptor } from './source.js';

/** workerData of the watch worker. */
export interface WatchWorkerData {
  /** The engine's ingest ring. */
  ingest: SharedArrayBuffer;
  /** One Int32: 1 while the worker holds the ring's PENDING slot (see IngestHold.releaseOrphaned). */
  held: SharedArrayBuffer;
  /**
   * One Int32 the worker sets to 1 (and notifies) once every watcher stopped after `close`: the
   * main thread blocks on it in a `process.on('exit')` listener, where no message can reach it.
   */
  closed: SharedArrayBuffer;
}

/** Main thread → watch worker. */
export type WatchRequest =
  | { type: 'watch'; id: number; descriptor: WorkerHostedDescriptor }
  | { type: 'unwatch'; id: number }
  /** Stop every watcher (their native subscriptions closed), then answer `closed`: the thread may end. */
  | { type: 'close' };

/** Watch worker → main thread. */
export type WatchReply =
  /** The watcher took its baseline and is watching. */
  | { type: 'started'; id: number }
  /** The watcher could not start (e.g. ENOENT); it is gone. */
  | { type: 'failed'; id: number; error: SerializedError }
  /** A non-fatal problem of a running watcher. */
  | { type: 'source-error'; id: number; error: SerializedError }
  /** The watcher stopped (after `unwatch`, or because the ring closed) and released its holds. */
  | { type: 'stopped'; id: number }
  /** Every watcher stopped after `close`; terminating the thread is now safe. */
  | { type: 'closed' }
  /** An error escaped the worker's code: every watcher was stopped and the thread is ending. */
  | { type: 'fatal'; error: SerializedError };
