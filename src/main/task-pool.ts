/**
 * The colony pool that runs `task` subscriptions: a Piscina pool created on first use, whose threads
 * share the engine's ingest ring so that what a task emits goes straight into it.
 */
import { Piscina } from 'piscina';
import { fileURLToPath } from 'node:url';
import type { PoolTaskMessage, PoolWorkerData } from '../shared/protocol.js';
import { resolveWorkerEntry } from '../shared/worker-entry.js';

const POOL_WORKER = new URL('../workers/pool.worker.js', import.meta.url);

/** Pool sizing (`createEngine({ pool })`). Piscina's defaults apply to what is left out. */
export interface TaskPoolOptions {
  minThreads?: number;
  maxThreads?: number;
  idleTimeout?: number;
}

/** `engine.getStatus().pool` */
export interface TaskPoolStats {
  threads: number;
  running: number;
  queued: number;
  completed: number;
}

export class TaskPool {
  readonly #options: TaskPoolOptions;
  readonly #ingest: SharedArrayBuffer;
  #pool: Piscina | undefined;
  #running = 0;

  constructor(ingest: SharedArrayBuffer, options: TaskPoolOptions) {
    this.#ingest = ingest;
    this.#options = options;
  }

  run(task: PoolTaskMessage): Promise<unknown> {
    this.#pool ??= this.#create();
    this.#running++;
    return this.#pool.run(task).finally(() => this.#running--);
  }

  stats(): TaskPoolStats {
    const pool = this.#pool;
    if (pool === undefined) return { threads: 0, running: 0, queued: 0, completed: 0 };
    return { threads: pool.threads.length, running: this.#running, queued: pool.queueSize, completed: pool.completed };
  }

  async destroy(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool !== undefined) await pool.destroy();
  }

  #create(): Piscina {
    const entry = resolveWorkerEntry(POOL_WORKER, 'pool');
    const data: PoolWorkerData = { ingest: this.#ingest };
    const options: ConstructorParameters<typeof Piscina>[0] = { filename: fileURLToPath(entry.filename), workerData: entry.wrap(data) };
    if (this.#options.minThreads !== undefined) options.minThreads = this.#options.minThreads;
    if (this.#options.maxThreads !== undefined) options.maxThreads = this.#options.maxThreads;
    if (this.#options.idleTimeout !== undefined) options.idleTimeout = this.#options.idleTimeout;
    return new Piscina(options);
  }
}
