/**
 * Starting a worker thread from the source tree and from the published `dist/` with one code path.
 *
 * Node 20 cannot load a `.ts` file as a Worker entry, and `--import tsx` in a Worker's `execArgv`
 * is not applied before the entry loads. So callers always name the built `.js` entry
 * (`new URL('../workers/convergence.worker.js', import.meta.url)`); when that file does not exist
 * we are running from source, and the thread starts in a tiny bootstrap that registers the tsx
 * loader and then imports the `.ts` entry. The entry reads its data through {@link getWorkerData},
 * which unwraps the bootstrap's envelope.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, workerData as rawWorkerData, type WorkerOptions } from 'node:worker_threads';

const BOOTSTRAP = new URL('./ts-worker-bootstrap.mjs', import.meta.url);
const POOL_BOOTSTRAP = new URL('./ts-pool-bootstrap.mjs', import.meta.url);

/** How to start a thread for an entry: the file to load and the workerData to pass. */
export interface WorkerEntry {
  readonly filename: URL;
  /** True when the entry runs from TypeScript source through the tsx bootstrap. */
  readonly fromSource: boolean;
  wrap(data: unknown): unknown;
}

/**
 * Resolves `entry` (a `.js` URL) to itself when built, or to the tsx bootstrap over its `.ts` source.
 * `kind: 'pool'` picks the bootstrap that re-exports the entry's default handler (for Piscina).
 */
export function resolveWorkerEntry(entry: URL, kind: 'thread' | 'pool' = 'thread'): WorkerEntry {
  if (existsSync(fileURLToPath(entry))) return { filename: entry, fromSource: false, wrap: (data) => data };
  const source = new URL(entry.href.replace(/\.js$/, '.ts'));
  if (!existsSync(fileURLToPath(source))) throw new Error(`worker entry not found: ${fileURLToPath(entry)} (nor its .ts source)`);
  const filename = kind === 'pool' ? POOL_BOOTSTRAP : BOOTSTRAP;
  return { filename, fromSource: true, wrap: (data) => ({ __convergeEntry: source.href, data }) };
}

/** Starts a Worker on `entry` (see {@link resolveWorkerEntry}). */
export function startWorker(entry: URL, options: WorkerOptions = {}): Worker {
  const resolved = resolveWorkerEntry(entry);
  return new Worker(resolved.filename, { ...options, workerData: resolved.wrap(options.workerData) });
}

/** The workerData the starter passed, whether or not the thread went through the bootstrap. */
export function getWorkerData<T>(): T {
  const raw = rawWorkerData as { __convergeEntry?: string; data?: unknown } | undefined;
  if (raw !== null && typeof raw === 'object' && typeof raw.__convergeEntry === 'string') return raw.data as T;
  return raw as T;
}
