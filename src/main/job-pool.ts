/**
 * Where a job's agents run. {@link JobAgentPool} is the whole contract the job runtime needs from a
 * thread pool — run one agent task (with its port transferred), honour an abort signal, shut down —
 * so that a job can run on the colony's pool as well as on the small Piscina pool below.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { z } from 'zod';
import { ClosedError } from '../shared/errors.js';
import type { JobAgentOutcome, JobAgentTask } from '../shared/job-protocol.js';
import { parseInput } from '../shared/validation.js';
import { resolveWorkerEntry } from '../shared/worker-entry.js';

/** How long an idle thread of the default pool lives. */
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const JOB_WORKER = new URL('../workers/job.worker.js', import.meta.url);

/** Runs agent tasks on threads. Implement it to run jobs on another pool. */
export interface JobAgentPool {
  /**
   * Runs `task` on a thread whose default export is the job worker entry (`jobWorkerEntry()`);
   * `task.port` must be transferred. Rejects when `signal` aborts.
   */
  run(task: JobAgentTask, options: { readonly signal?: AbortSignal }): Promise<JobAgentOutcome>;
  /** Stops the threads. Idempotent. */
  destroy(): Promise<void>;
}

/** Sizing of the default pool. Piscina's defaults apply to what is left out. */
export interface JobPoolOptions {
  readonly minThreads?: number;
  readonly maxThreads?: number;
  /** Default 30 000 ms. */
  readonly idleTimeout?: number;
}

const JobPoolOptionsSchema = z
  .strictObject({
    minThreads: z.number().int().nonnegative().max(256).optional(),
    maxThreads: z.number().int().positive().max(256).optional(),
    idleTimeout: z.number().finite().nonnegative().max(2 ** 31 - 1).optional(),
  })
  .refine((pool) => pool.minThreads === undefined || pool.maxThreads === undefined || pool.minThreads <= pool.maxThreads, {
    message: 'must not exceed maxThreads',
    path: ['minThreads'],
  });

/**
 * Checks pool sizing up front (ValidationError naming `pool.<field>`): Piscina would refuse it only
 * when the first agent runs.
 */
export function validateJobPoolOptions(options: unknown, name = 'pool'): JobPoolOptions {
  return parseInput(JobPoolOptionsSchema, options, name);
}

/** The file a pool thread must load to run agent tasks (the built entry, or its tsx bootstrap in source mode) and the workerData to give it. */
export function jobWorkerEntry(): { filename: string; workerData: unknown } {
  const entry = resolveWorkerEntry(JOB_WORKER, 'pool');
  return { filename: fileURLToPath(entry.filename), workerData: entry.wrap(null) };
}

/** The default {@link JobAgentPool}: a Piscina pool started on first use. Idle threads do not hold the process. */
export class PiscinaJobPool implements JobAgentPool {
  readonly #options: JobPoolOptions;
  #pool: Piscina | undefined;
  #destroyed = false;

  constructor(options: JobPoolOptions = {}) {
    this.#options = options;
  }

  run(task: JobAgentTask, options: { readonly signal?: AbortSignal }): Promise<JobAgentOutcome> {
    if (this.#destroyed) return Promise.reject(new ClosedError('job pool'));
    this.#pool ??= this.#create();
    return this.#pool.run(task, { transferList: [task.port] as never, signal: options.signal ?? null }) as Promise<JobAgentOutcome>;
  }

  async destroy(): Promise<void> {
    this.#destroyed = true;
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool !== undefined) await pool.destroy();
  }

  #create(): Piscina {
    const entry = jobWorkerEntry();
    // Idle threads are kept a while (they are unref'd, so they never hold the process): a job's
    // rounds come in bursts, and restarting a thread (a tsx bootstrap from source) costs far more.
    const options: ConstructorParameters<typeof Piscina>[0] = { filename: entry.filename, workerData: entry.workerData, idleTimeout: DEFAULT_IDLE_TIMEOUT_MS };
    if (this.#options.minThreads !== undefined) options.minThreads = this.#options.minThreads;
    if (this.#options.maxThreads !== undefined) options.maxThreads = this.#options.maxThreads;
    if (this.#options.idleTimeout !== undefined) options.idleTimeout = this.#options.idleTimeout;
    return new Piscina(options);
  }
}
