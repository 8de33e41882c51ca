/** Entry of the engine's watch worker thread. Loaded by path; the logic lives in src/watchers/watch-host.ts. */
import { isMainThread, parentPort } from 'node:worker_threads';
import { getWorkerData } from '../shared/worker-entry.js';
import { runWatchHost } from '../watchers/watch-host.js';
import type { WatchWorkerData } from '../watchers/watch-protocol.js';

if (!isMainThread && parentPort !== null) runWatchHost(getWorkerData<WatchWorkerData>(), parentPort);
