/**
 * `runTaskWorker`: the distributed half of task subscriptions (DESIGN §6). A process that shares an
 * engine's store (SQLite, PostgreSQL) claims the dispatches an engine left pending there
 * (`pool: { runLocally: false }`, topic `converge.task`), runs them in its own colony pool, and
 * reports each one with what its task emitted; the engine writes those events into its ring before
 * it acknowledges the dispatch, so quiescence stays exact. Claims carry fencing tokens and are
 * renewed while a task runs; a worker that dies loses its claims when their TTL runs out, and the
 * engine's pool returns them to pending.
 */
import { z } from 'zod';
import { TaskClaimer } from '../coordination/task-claimer.js';
import { TaskManager } from '../coordination/task-manager.js';
import type { Task } from '../coordination/task.js';
import type { TaskStore } from '../coordination/task-store.js';
import { serializeError } from '../shared/errors.js';
import { TaskKind } from '../shared/pool-protocol.js';
import { parseInput } from '../shared/validation.js';
import { type SharedTaskPayload, TASK_TOPIC, TaskPool, type TaskPoolOptions } from './task-pool.js';

/** Defaults of {@link TaskWorkerOptions}. */
export const TASK_WORKER_DEFAULTS = Object.freeze({
  /** Tasks claimed and running at once. */
  concurrency: 4,
  /** Wait before looking again when nothing was pending. */
  pollMs: 100,
});

/** Options of {@link runTaskWorker}. */
export interface TaskWorkerOptions {
  /** The store the engine shares (SQLite or PostgreSQL). */
  store: TaskStore;
  /** Agent id of this worker in the store. Default `task-worker:<pid>:<n>`. */
  agentId?: string;
  concurrency?: number;
  pollMs?: number;
  pool?: TaskPoolOptions;
  /** Stops the worker when aborted (like `stop()`). */
  signal?: AbortSignal;
}

/** A running task worker. */
export interface TaskWorker {
  readonly agentId: string;
  /** Tasks completed and failed so far. */
  stats(): { completed: number; failed: number; running: number };
  /** Stops claiming, waits for running tasks, releases the pool. Idempotent. */
  stop(): Promise<void>;
}

const OptionsSchema = z.strictObject({
  store: z.custom<TaskStore>((v) => typeof v === 'object' && v !== null && typeof (v as TaskStore).claimNext === 'function', 'must be a TaskStore'),
  agentId: z.string().min(1).optional(),
  concurrency: z.number().int().min(1).max(1024).optional(),
  pollMs: z.number().int().min(1).max(60_000).optional(),
  pool: z.record(z.string(), z.unknown()).optional(),
  signal: z.instanceof(AbortSignal).optional(),
});

let workerSeq = 0;

/** Starts claiming and running shared task-subscription dispatches; see the file comment. */
export function runTaskWorker(options: TaskWorkerOptions): TaskWorker {
  const o = parseInput(OptionsSchema, options, 'options');
  const agentId = o.agentId ?? `task-worker:${process.pid}:${++workerSeq}`;
  const concurrency = o.concurrency ?? TASK_WORKER_DEFAULTS.concurrency;
  const pollMs = o.pollMs ?? TASK_WORKER_DEFAULTS.pollMs;
  const manager = new TaskManager({ store: o.store });
  const pool = new TaskPool(undefined, { ...(options.pool ?? {}) });
  const warn = (error: unknown): void => {
    if (!stopped) process.emitWarning(`task worker ${agentId}: ${(error as Error)?.message ?? String(error)}`, { code: 'CONVERGE_TASK_WORKER' });
  };
  // Batched claims into a small local queue (one statement per batch, in claim order), batched
  // settlements, and an idle wait woken by new tasks (LISTEN/NOTIFY on PostgreSQL) or `pollMs`.
  // topicRequired: never a task that is not a dispatch (the engine's own local tasks, or another
  // system's in the same store), which a plain topic filter would let through.
  const claimer = new TaskClaimer(manager, {
    agentId,
    filter: { topics: [TASK_TOPIC], topicRequired: true },
    batchSize: concurrency,
    idlePollMs: pollMs,
    onError: warn,
  });
  let completed = 0;
  let failed = 0;
  let running = 0;
  let stopped = false;

  async function runOne(task: Task): Promise<void> {
    const holder = { fencingToken: task.fencingToken };
    let heartbeat: NodeJS.Timeout | undefined;
    if (task.claimTtlMs !== null) {
      heartbeat = setInterval(() => void manager.renewClaim(agentId, task.id, holder).catch(() => undefined), Math.max(1, Math.floor(task.claimTtlMs / 3)));
    }
    try {
      const payload = task.payload as SharedTaskPayload;
      const value = await pool.submit([TaskKind.SUBSCRIPTION, payload.module, payload.name, payload.event, payload.dispatch], { internal: true }).result;
      await claimer.complete(task, value ?? null);
      completed++;
    } catch (error) {
      failed++;
      await claimer.fail(task, serializeError(error)).catch(() => undefined);
    } finally {
      clearInterval(heartbeat);
    }
  }

  async function work(): Promise<void> {
    for (let task = await claimer.next(); task !== null; task = await claimer.next()) {
      running++;
      try {
        await runOne(task);
      } finally {
        running--;
      }
    }
  }

  const looping = Promise.all(Array.from({ length: concurrency }, work));
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      stopped = true;
      // Stops claiming, wakes the idle workers, releases claimed tasks not started; running ones
      // finish and settle.
      await claimer.close();
      await looping.catch(() => undefined);
      await pool.destroy();
      await manager.close();
    })());
  o.signal?.addEventListener('abort', () => void stop(), { once: true });
  return { agentId, stats: () => ({ completed, failed, running }), stop };
}
