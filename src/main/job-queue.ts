/**
 * Many jobs, many runtimes (DESIGN §6, seed 001 §1.3): a job is stored as a task in a TaskManager
 * store, and any process running {@link runJobs} on that store claims jobs — each claimed by exactly
 * one runtime — runs them and reports their results. Scale comes from running more jobs, never from
 * splitting one.
 *
 * A job spec is plain JSON: it names its agents', resolvers' and tools' modules by absolute path, so
 * any process (on any machine with the same files) can run it. Claims carry a TTL that the running
 * runtime renews; a runtime that dies stops renewing, its claim expires, another runtime releases it
 * and runs the job again from its start. Jobs are deterministic, so the re-run gives the same answer,
 * and the fencing token of the dead runtime's claim makes sure only one result is ever recorded.
 */
import { hostname } from 'node:os';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { TaskManager, type SubmitTaskInput } from '../coordination/task-manager.js';
import { StaleClaimError } from '../coordination/errors.js';
import type { Task } from '../coordination/task.js';
import type { TaskStore } from '../coordination/task-store.js';
import { serializeError, ValidationError, type SerializedError } from '../shared/errors.js';
import { ConvergeJob, type JobAgentDefinition, type JobResolverDefinition, type JobResult } from './job.js';
import { jsonCopy, type Dominance, type JobContext } from './job-merge.js';
import { PiscinaJobPool, type JobAgentPool, type JobPoolOptions } from './job-pool.js';
import type { BackoffOptions, CircuitBreakerOptions, ToolDefinition, ToolHandler } from './job-tools.js';

/** An agent in a job spec: as {@link JobAgentDefinition} without functions (eligibility comes from the module's own `eligible` export). */
export type JobAgentSpec = Omit<JobAgentDefinition, 'eligible' | 'module'> & { readonly module: string };

/** A tool in a job spec: its handler is the named export of a module, loaded by the runtime that runs the job. */
export interface JobToolSpec {
  readonly module: string;
  /** Default `default`. */
  readonly export?: string;
  readonly timeoutMs?: number;
  readonly retries?: number;
  readonly backoff?: BackoffOptions;
  readonly breaker?: CircuitBreakerOptions;
}

/** A job as stored in the queue: plain JSON. */
export interface JobSpec {
  readonly agents: readonly JobAgentSpec[];
  readonly resolvers?: readonly (Omit<JobResolverDefinition, 'module'> & { readonly module: string })[];
  readonly tools?: Readonly<Record<string, JobToolSpec>>;
  readonly dominance?: Dominance;
  readonly maxRounds?: number;
  readonly seed?: string | number;
  readonly context: JobContext;
}

/** A job's result as the queue stores it (a {@link JobResult} without its promise). */
export type StoredJobResult = Omit<JobResult, 'later' | 'early'>;

/** What the queue knows about a job. */
export interface JobRecord {
  readonly id: string;
  readonly state: Task['state'];
  /** Claims so far (a re-run after a dead runtime counts). */
  readonly attempts: number;
  /** The runtime that holds or held it. */
  readonly runtime: string | null;
  readonly result: StoredJobResult | null;
  /** Why the job could not run (a bad spec, a tool module that does not load). */
  readonly error: SerializedError | null;
}

/** Options of {@link JobQueue}. */
export interface JobQueueOptions {
  /** The store shared by every process of the queue (a PostgresStore across machines). Default a MemoryStore. */
  readonly store?: TaskStore;
  /** Jobs are tasks with this topic. Default `converge.job`. */
  readonly topic?: string;
  /** Claim lifetime without renewal: how long a dead runtime's job waits before it runs again. Default 30 000 ms. */
  readonly claimTtlMs?: number;
}

/** What a runtime reports about each job (`runJobs({ onJob })`). */
export type JobRunnerEvent =
  | { readonly type: 'started'; readonly jobId: string; readonly attempt: number }
  | { readonly type: 'completed'; readonly jobId: string; readonly result: StoredJobResult }
  | { readonly type: 'failed'; readonly jobId: string; readonly error: SerializedError }
  /** The claim expired under this runtime (the job went to another) or the job was cancelled: its result was discarded. */
  | { readonly type: 'lost'; readonly jobId: string };

/** Options of `runJobs`. */
export interface RunJobsOptions {
  /** Jobs run at once by this runtime. Default 1. */
  readonly concurrency?: number;
  /** Stops claiming; jobs already running finish and report, then `runJobs` resolves. */
  readonly signal?: AbortSignal;
  /** Resolve once no job is pending and none runs here (claimed elsewhere is not waited for). */
  readonly untilIdle?: boolean;
  /** This runtime's id in the store. Default `jobs-<host>-<pid>-<random>`. */
  readonly runtimeId?: string;
  /** Where agents run. Default a Piscina pool owned by this call. */
  readonly pool?: JobAgentPool | JobPoolOptions;
  /** How often an idle runtime looks for jobs and expired claims. Default 250 ms. */
  readonly pollMs?: number;
  readonly onJob?: (event: JobRunnerEvent) => void;
}

/** What `runJobs` did. */
export interface RunJobsSummary {
  readonly completed: number;
  readonly failed: number;
  readonly lost: number;
}

const JOB_KIND = 'converge.job';
const DEFAULT_TOPIC = 'converge.job';
const DEFAULT_CLAIM_TTL_MS = 30_000;
const DEFAULT_POLL_MS = 250;

/** The stored payload: a marker (so a runtime never runs a task that is not a job) and the spec. */
interface JobPayload {
  readonly kind: typeof JOB_KIND;
  readonly version: 1;
  readonly spec: JobSpec;
}

/** A submitJob call waiting for the end of its turn. */
interface PendingSubmit {
  readonly input: SubmitTaskInput;
  readonly resolve: (id: string) => void;
  readonly reject: (error: unknown) => void;
}

/** A queue of jobs over a TaskManager store. */
export class JobQueue {
  readonly #manager: TaskManager;
  readonly #topic: string;
  readonly #claimTtlMs: number;
  /** Jobs submitted in this turn, stored together at its end. */
  #burst: PendingSubmit[] = [];

  constructor(options: JobQueueOptions = {}) {
    this.#manager = new TaskManager(options.store === undefined ? {} : { store: options.store });
    this.#topic = options.topic ?? DEFAULT_TOPIC;
    if (typeof this.#topic !== 'string' || this.#topic === '') throw new ValidationError('topic', 'must be a non-empty string');
    this.#claimTtlMs = options.claimTtlMs ?? DEFAULT_CLAIM_TTL_MS;
    if (!Number.isInteger(this.#claimTtlMs) || this.#claimTtlMs < 10) throw new ValidationError('claimTtlMs', 'must be an integer >= 10');
  }

  /** The manager over the queue's store. */
  get manager(): TaskManager {
    return this.#manager;
  }

  /** Stores a job; returns its id. The spec is validated here (a bad one is refused, not queued). */
  async submitJob(spec: JobSpec, options: { readonly id?: string; readonly priority?: number } = {}): Promise<string> {
    const input: SubmitTaskInput = { id: options.id, payload: jobPayload(spec, 'spec'), topic: this.#topic, priority: options.priority, claimTtlMs: this.#claimTtlMs };
    // Jobs submitted in one turn (a job subscription's matches in one dispatch frame) go to the store
    // together, with one submitMany.
    return new Promise<string>((resolve, reject) => {
      this.#burst.push({ input, resolve, reject });
      if (this.#burst.length === 1) queueMicrotask(this.#submitBurst);
    });
  }

  readonly #submitBurst = (): void => {
    const burst = this.#burst;
    this.#burst = [];
    const one = (item: PendingSubmit): void => {
      this.#manager.submit(item.input).then((task) => item.resolve(task.id), item.reject);
    };
    if (burst.length === 1) {
      one(burst[0]!);
      return;
    }
    this.#manager.submitMany(burst.map((item) => item.input)).then(
      (tasks) => tasks.forEach((task, i) => burst[i]!.resolve(task.id)),
      // All or none: nothing was stored. Each alone, so that each gets its own outcome (a taken id
      // refuses that job only).
      () => burst.forEach(one),
    );
  };

  /** Stores many jobs in one step (all or none); returns their ids in order. */
  async submitJobs(specs: readonly JobSpec[]): Promise<string[]> {
    if (!Array.isArray(specs)) throw new ValidationError('specs', 'must be an array of job specs');
    const inputs = specs.map((spec, i) => ({ payload: jobPayload(spec, `specs[${i}]`), topic: this.#topic, claimTtlMs: this.#claimTtlMs }));
    return (await this.#manager.submitMany(inputs)).map((task) => task.id);
  }

  /** The job, or null for an unknown id. */
  async getJob(id: string): Promise<JobRecord | null> {
    const task = await this.#manager.getTask(id);
    return task === null ? null : jobRecord(task);
  }

  /** The job once it is done (completed, failed or cancelled); null on timeout or for an unknown id. */
  async waitForJob(id: string, options: { readonly timeoutMs: number }): Promise<JobRecord | null> {
    const task = await this.#manager.waitUntilDone(id, options);
    return task === null ? null : jobRecord(task);
  }

  /** Cancels a job that has not finished (a runtime running it stops at its next claim renewal). Unknown or finished → false. */
  cancelJob(id: string): Promise<boolean> {
    return this.#manager.cancelTask(id);
  }

  /** Runs jobs from this queue in this process (see {@link runJobs}). */
  runJobs(options: RunJobsOptions = {}): Promise<RunJobsSummary> {
    return new JobRunner(this.#manager, this.#topic, options).run();
  }

  /** Closes the manager (and the store only if the queue created it). */
  close(): Promise<void> {
    return this.#manager.close();
  }
}

/**
 * Runs jobs from `store` in this process until `signal` aborts (or, with `untilIdle`, until none is
 * left): claims them (exactly one runtime per job), renews the claims while they run, reports the
 * results, and re-runs the jobs of runtimes whose claims expired.
 */
export async function runJobs(options: RunJobsOptions & { readonly store: TaskStore; readonly topic?: string }): Promise<RunJobsSummary> {
  const queue = new JobQueue({ store: options.store, topic: options.topic });
  try {
    return await queue.runJobs(options);
  } finally {
    await queue.close();
  }
}

/** One `runJobs` call. */
class JobRunner {
  readonly #tm: TaskManager;
  readonly #topic: string;
  readonly #concurrency: number;
  readonly #signal: AbortSignal | undefined;
  readonly #untilIdle: boolean;
  readonly #runtimeId: string;
  readonly #pollMs: number;
  readonly #onJob: ((event: JobRunnerEvent) => void) | undefined;
  readonly #pool: JobAgentPool;
  readonly #ownsPool: boolean;
  readonly #active = new Set<Promise<void>>();
  readonly #summary = { completed: 0, failed: 0, lost: 0 };
  readonly #tools = new Map<string, Promise<ToolHandler>>();

  constructor(tm: TaskManager, topic: string, options: RunJobsOptions) {
    this.#tm = tm;
    this.#topic = topic;
    this.#concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1 || this.#concurrency > 1024) throw new ValidationError('concurrency', 'must be an integer in [1, 1024]');
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new ValidationError('signal', 'must be an AbortSignal');
    this.#signal = options.signal;
    this.#untilIdle = options.untilIdle === true;
    this.#runtimeId = options.runtimeId ?? `jobs-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.#pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    if (!Number.isInteger(this.#pollMs) || this.#pollMs < 1) throw new ValidationError('pollMs', 'must be a positive integer');
    this.#onJob = options.onJob;
    const pool = options.pool;
    this.#ownsPool = pool === undefined || typeof (pool as JobAgentPool).run !== 'function';
    this.#pool = this.#ownsPool ? new PiscinaJobPool(pool as JobPoolOptions | undefined) : (pool as JobAgentPool);
  }

  async run(): Promise<RunJobsSummary> {
    try {
      while (this.#signal?.aborted !== true) {
        if (this.#active.size >= this.#concurrency) {
          await Promise.race(this.#active);
          continue;
        }
        // topicRequired: a task without a topic is not a job (another system's, in a shared store).
        const task = await this.#tm.claimNext(this.#runtimeId, { topics: [this.#topic], topicRequired: true });
        if (task !== null) {
          const running = this.#runJob(task).finally(() => this.#active.delete(running));
          this.#active.add(running);
          continue;
        }
        if ((await this.#tm.releaseExpiredClaims()).length > 0) continue;
        if (this.#untilIdle && this.#active.size === 0) break;
        await this.#idle();
      }
      await Promise.all(this.#active);
      return { ...this.#summary };
    } finally {
      if (this.#ownsPool) await this.#pool.destroy();
    }
  }

  /** Waits for a poll interval, a job of ours to finish, or the signal. */
  #idle(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, this.#pollMs);
      this.#signal?.addEventListener('abort', done, { once: true });
      for (const running of this.#active) void running.then(done);
    });
  }

  #emit(event: JobRunnerEvent): void {
    if (this.#onJob === undefined) return;
    try {
      this.#onJob(event);
    } catch (error) {
      process.emitWarning(`runJobs: onJob threw: ${String(error)}`, { code: 'CONVERGE_JOB_LISTENER' });
    }
  }

  async #runJob(task: Task): Promise<void> {
    const holder = { fencingToken: task.fencingToken };
    const controller = new AbortController();
    let lost = false;
    const lose = (): void => {
      lost = true;
      controller.abort();
    };
    // Renew well inside the TTL, so a busy event loop does not let a live job's claim expire.
    const ttl = task.claimTtlMs;
    const renewal =
      ttl === null
        ? undefined
        : setInterval(() => {
            this.#tm.renewClaim(this.#runtimeId, task.id, holder).then((held) => held || lose(), lose);
          }, Math.max(5, Math.floor(ttl / 3)));
    try {
      this.#emit({ type: 'started', jobId: task.id, attempt: task.attempts });
      let result: StoredJobResult;
      try {
        const payload = task.payload as JobPayload;
        if (payload === null || typeof payload !== 'object' || payload.kind !== JOB_KIND) throw new ValidationError('payload', `task ${task.id} is not a job (its topic is shared with other tasks): refusing to run it`);
        const spec = payload.spec;
        const job = new ConvergeJob({
          agents: spec.agents,
          resolvers: spec.resolvers,
          dominance: spec.dominance,
          maxRounds: spec.maxRounds,
          seed: spec.seed,
          tools: await this.#loadTools(spec.tools ?? {}),
          pool: this.#pool,
        });
        const { later: _later, early: _early, ...stored } = await job.run(spec.context, { signal: controller.signal });
        result = stored;
      } catch (error) {
        if (lost) throw error;
        // Stored as JSON (no stack; fields that are not plain data, like a loader's Error, flattened).
        const { stack: _stack, ...rest } = serializeError(error);
        const serialized = JSON.parse(JSON.stringify(rest)) as SerializedError;
        await this.#tm.failTask(task.id, { error: serialized }, { agentId: this.#runtimeId, fencingToken: task.fencingToken });
        this.#summary.failed++;
        this.#emit({ type: 'failed', jobId: task.id, error: serialized });
        return;
      }
      await this.#tm.report(this.#runtimeId, task.id, result, holder);
      this.#summary.completed++;
      this.#emit({ type: 'completed', jobId: task.id, result });
    } catch (error) {
      if (lost || error instanceof StaleClaimError) {
        this.#summary.lost++;
        this.#emit({ type: 'lost', jobId: task.id });
        if (this.#onJob === undefined) process.emitWarning(`runJobs: job ${task.id}: the claim expired under this runtime or the job was cancelled; this result was discarded`, { code: 'CONVERGE_JOB_LOST' });
        return;
      }
      // The store failed: the claim will expire and the job run again elsewhere. Loud, not fatal.
      process.emitWarning(`runJobs: job ${task.id}: ${String(error)}`, { code: 'CONVERGE_JOB_STORE' });
    } finally {
      clearInterval(renewal);
    }
  }

  async #loadTools(specs: Readonly<Record<string, JobToolSpec>>): Promise<Record<string, ToolDefinition>> {
    const out: Record<string, ToolDefinition> = {};
    for (const name of Object.keys(specs).sort()) {
      const spec = specs[name]!;
      const key = `${spec.module}#${spec.export ?? 'default'}`;
      let handler = this.#tools.get(key);
      if (handler === undefined) {
        handler = loadHandler(spec, `tools.${name}`);
        handler.catch(() => this.#tools.delete(key));
        this.#tools.set(key, handler);
      }
      const { module: _m, export: _e, ...policy } = spec;
      out[name] = { ...policy, handler: await handler };
    }
    return out;
  }
}

async function loadHandler(spec: JobToolSpec, field: string): Promise<ToolHandler> {
  const url = spec.module.startsWith('file:') || spec.module.startsWith('data:') ? spec.module : pathToFileURL(spec.module).href;
  const loaded = (await import(url)) as Record<string, unknown>;
  const handler = loaded[spec.export ?? 'default'];
  if (typeof handler !== 'function') throw new ValidationError(`${field}.export`, `${spec.module} has no exported function ${JSON.stringify(spec.export ?? 'default')}`);
  return handler as ToolHandler;
}

/** Validates a spec (by building the job it describes) and wraps it as a task payload. */
function jobPayload(spec: JobSpec, field: string): JobPayload {
  if (spec === null || typeof spec !== 'object') throw new ValidationError(field, 'must be a job spec { agents, context, ... }');
  const copy = jsonCopy(spec, field);
  if (copy.context === null || typeof copy.context !== 'object' || Array.isArray(copy.context)) throw new ValidationError(`${field}.context`, 'must be a JSON object');
  for (const [name, tool] of Object.entries(copy.tools ?? {})) {
    if (tool === null || typeof tool !== 'object' || typeof tool.module !== 'string' || !(tool.module.startsWith('/') || tool.module.startsWith('file:') || tool.module.startsWith('data:'))) {
      throw new ValidationError(`${field}.tools.${name}.module`, 'must be an absolute path, a file URL or a data: URL');
    }
  }
  // The constructor checks agents, resolvers, rounds and dominance; tool policies with a stand-in handler.
  const standIn = Object.fromEntries(Object.entries(copy.tools ?? {}).map(([name, { module: _m, export: _e, ...policy }]) => [name, { ...policy, handler: () => null }]));
  try {
    new ConvergeJob({ ...copy, tools: standIn, pool: NO_POOL });
  } catch (error) {
    if (error instanceof ValidationError) throw new ValidationError(`${field}.${error.field}`, error.message.replace(`${error.field}: `, ''));
    throw error;
  }
  return { kind: JOB_KIND, version: 1, spec: copy };
}

/** A pool that is never used (validation only). */
const NO_POOL: JobAgentPool = {
  run: () => Promise.reject(new Error('validation only')),
  destroy: () => Promise.resolve(),
};

function jobRecord(task: Task): JobRecord {
  const failed = task.state === 'failed';
  const result = task.result as StoredJobResult | { error?: SerializedError } | null;
  return {
    id: task.id,
    state: task.state,
    attempts: task.attempts,
    runtime: task.assignedTo,
    result: task.state === 'completed' ? (result as StoredJobResult) : null,
    error: failed ? ((result as { error?: SerializedError } | null)?.error ?? null) : null,
  };
}
