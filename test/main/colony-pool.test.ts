/**
 * The colony pool: tasks claimed through the TaskManager, pulled by pool threads from the shared
 * task table. Real threads throughout; no sleeps.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, SqliteStore } from '../../src/coordination/index.js';
import { TaskPool } from '../../src/main/task-pool.js';
import { ValidationError, WorkerCrashedError } from '../../src/main/index.js';
import { TaskKind } from '../../src/shared/pool-protocol.js';
import { TaskTable } from '../../src/shared/task-table.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const math = new URL('../fixtures/colony/math.mjs', import.meta.url).href;
const pools: TaskPool[] = [];
function pool(...args: ConstructorParameters<typeof TaskPool>): TaskPool {
  const p = new TaskPool(...args);
  pools.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.destroy()));
});

describe('TaskTable claims', () => {
  it('two threads racing for one task: exactly one wins, every round', async () => {
    const rounds = 300;
    const table = TaskTable.create({ capacity: 4, slotBytes: 64 });
    const control = new SharedArrayBuffer(8);
    const c = new Int32Array(control);
    const racer = new URL('../fixtures/colony/racer.mjs', import.meta.url);
    const threads = [0, 1].map((lane) => new Worker(racer, { workerData: { table: table.buffer, control, lane, rounds } }));
    const results = threads.map((t) => new Promise<number[]>((resolve, reject) => (t.once('message', resolve), t.once('error', reject))));
    for (let round = 1; round <= rounds; round++) {
      table.write(0, round);
      table.publish(0);
      Atomics.store(c, 0, round);
      Atomics.notify(c, 0);
      // Both threads have tried before the next round.
      while (Atomics.load(c, 1) < round * 2) {
        const seen = Atomics.load(c, 1);
        if (seen < round * 2) await Atomics.waitAsync(c, 1, seen, 1000).value;
      }
      table.free(0);
    }
    const [a, b] = await Promise.all(results);
    expect(a!.length + b!.length).toBe(rounds);
    expect(new Set([...a!, ...b!]).size).toBe(rounds);
    await Promise.all(threads.map((t) => t.terminate()));
  });

  it('a cancelled task is skipped, never claimed', () => {
    const table = TaskTable.create({ capacity: 2, slotBytes: 64 });
    table.write(0, 'a');
    table.publish(0);
    table.write(1, 'b');
    table.publish(1);
    expect(table.cancel(0)).toBe(true);
    expect(table.claim(3)).toBe(1);
    expect(table.cancel(1)).toBe(false);
    expect(table.claim(3)).toBe(-1);
    expect(table.popDone()).toBe(0); // the skipped slot comes back to the main thread
  });
});

describe('TaskPool', () => {
  it('runs every task exactly once across threads and records each in the TaskManager', async () => {
    const store = new MemoryStore();
    const p = pool(undefined, { maxThreads: 2 }, store);
    const n = 2000;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => p.call(math, 'add', [i, 1])));
    expect(results).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(p.stats()).toMatchObject({ completed: n, failed: 0, running: 0, queued: 0 });
    // The store holds every task as completed by the pool's agent, none pending.
    expect(await p.manager.listPendingTasks()).toHaveLength(0);
    const handle = p.submit([TaskKind.CALL, math, 'add', [2, 3]]);
    expect(await handle.result).toBe(5);
    const task = await p.manager.getTask(handle.taskId);
    expect(task).toMatchObject({ state: 'completed', result: 5, assignedTo: p.agentId, attempts: 1 });
  });

  it('more tasks than slots wait FIFO; payloads and results larger than a slot travel by message', async () => {
    const p = pool(undefined, { maxThreads: 2, capacity: 4, slotBytes: 64 });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => p.call(math, 'big', [i * 10])));
    expect(results.map((r) => (r as string).length)).toEqual(Array.from({ length: 50 }, (_, i) => i * 10));
    expect(await p.call(math, 'add', ['y'.repeat(500), 'z'])).toBe(`${'y'.repeat(500)}z`);
  });

  it('task errors keep their class, code and fields; failures are recorded in the store', async () => {
    const p = pool(undefined, { maxThreads: 1 });
    const handle = p.submit([TaskKind.CALL, math, 'invalid', ['task.input.x']]);
    const error = await handle.result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ code: 'CONVERGE_VALIDATION', field: 'task.input.x' });
    expect(await p.manager.getTask(handle.taskId)).toMatchObject({ state: 'failed', result: { name: 'ValidationError', code: 'CONVERGE_VALIDATION' } });
  });

  it('a built-in error thrown by a task keeps its class, message, code and cause (DESIGN §3)', async () => {
    const p = pool(undefined, { maxThreads: 1 });
    const error = await p.call(math, 'builtinError', ['not a number']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(error).toMatchObject({ name: 'TypeError', message: 'not a number', code: 'APP_BAD_TYPE' });
    expect((error as Error).cause).toBeInstanceOf(RangeError);
    expect((error as Error).stack).toMatch(/^TypeError: not a number/);
  });

  it('check() names task.filename / task.name without running the function', async () => {
    const p = pool(undefined, { maxThreads: 1 });
    await expect(p.check(math, 'add')).resolves.toBeUndefined();
    await expect(p.check(math, 'nope')).rejects.toMatchObject({ field: 'task.name' });
    await expect(p.check(new URL('../fixtures/colony/missing.mjs', import.meta.url).href, 'default')).rejects.toMatchObject({ field: 'task.filename' });
  });

  it('a thread that exits mid-task fails the task (maxAttempts 1) or runs it again (maxAttempts 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'colony-exit-'));
    try {
      const once = pool(undefined, { maxThreads: 1 });
      const handle = once.submit([TaskKind.CALL, math, 'exitOnce', [join(dir, 'a')]]);
      const error = await handle.result.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkerCrashedError);
      expect(await once.manager.getTask(handle.taskId)).toMatchObject({ state: 'failed', result: { code: 'CONVERGE_WORKER_CRASHED' } });
      expect(await once.call(math, 'add', [1, 1])).toBe(2);
      const twice = pool(undefined, { maxThreads: 1, maxAttempts: 2 });
      expect(await twice.call(math, 'exitOnce', [join(dir, 'b')])).toBe('second run');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('claims through a SQLite store; the claim carries the TTL of the pool', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'colony-pool-'));
    const store = new SqliteStore(join(dir, 'tasks.db'));
    try {
      const p = pool(undefined, { maxThreads: 1, claimTtlMs: 60_000 }, store);
      const handle = p.submit([TaskKind.CALL, math, 'add', [40, 2]]);
      expect(await handle.result).toBe(42);
      expect(await store.getTask(handle.taskId)).toMatchObject({ state: 'completed', result: 42, claimTtlMs: 60_000 });
      await p.destroy();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('destroy() rejects unsettled tasks with ClosedError and aborts running ones; nothing throws afterwards', async () => {
    const p = pool(undefined, { maxThreads: 1 });
    const pending = p.call(math, 'add', [1, 2]);
    await p.destroy();
    await p.destroy();
    await expect(pending).rejects.toMatchObject({ code: 'CONVERGE_CLOSED' });
    await expect(p.call(math, 'add', [1, 2])).rejects.toMatchObject({ code: 'CONVERGE_CLOSED' });
  });
});

describe('TaskPool store records', () => {
  it('renews the claim of a running task (heartbeat) so that it never expires while it runs', async () => {
    const p = pool(undefined, { maxThreads: 1, claimTtlMs: 300 });
    const worker = new URL('../fixtures/colony/worker.mjs', import.meta.url).href;
    const handle = p.submit([TaskKind.COLONY, worker, 'default', 'hang', 'w1', null, false]);
    await vi.waitFor(async () => expect((await p.manager.getTask(handle.taskId))?.state).toBe('assigned'));
    const first = (await p.manager.getTask(handle.taskId))!.claimedAt!;
    // Renewals move claimedAt forward; expiry is judged against the renewed time.
    await vi.waitFor(async () => expect((await p.manager.getTask(handle.taskId))!.claimedAt!).toBeGreaterThan(first), { timeout: 30_000 });
    const renewed = (await p.manager.getTask(handle.taskId))!;
    expect(await p.manager.releaseExpiredClaims(renewed.claimedAt! + 299)).toEqual([]);
    // Stopped (cancelled if no thread took it yet, else its signal aborts): settled in the store either way.
    handle.abort();
    await handle.result.catch(() => null);
    expect(['completed', 'failed']).toContain((await p.manager.getTask(handle.taskId))!.state);
  });

  it('a burst of tasks goes to the store in batches: one submitMany, one claimTasks, settleMany; each task keeps its own outcome', async () => {
    const store = new MemoryStore();
    const inserted = vi.spyOn(store, 'insertTasks');
    const claimed = vi.spyOn(store, 'claimTasks');
    const settled = vi.spyOn(store, 'settleTasks');
    const completed = vi.spyOn(store, 'completeTask');
    const failed = vi.spyOn(store, 'failTask');
    const p = pool(undefined, { maxThreads: 2 }, store);
    const n = 50;
    // One turn, as the dispatcher runs one frame's matches: every submit before the first await.
    const handles = Array.from({ length: n }, (_, i) => (i === 7 ? p.submit([TaskKind.CALL, math, 'invalid', ['f7']]) : p.submit([TaskKind.CALL, math, 'add', [i, 1]])));
    // Counted as queued from the moment it was accepted (quiescence), before the store has seen it.
    expect(p.stats().queued).toBe(n);
    const outcomes = await Promise.allSettled(handles.map((h) => h.result));
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(1);
    expect((outcomes[7] as PromiseRejectedResult).reason).toBeInstanceOf(ValidationError);
    expect((outcomes[8] as PromiseFulfilledResult<unknown>).value).toBe(9);
    // Without batching there is one insert per task (submit) and no insertTasks at all.
    expect(inserted).toHaveBeenCalledTimes(1);
    expect(inserted.mock.calls[0]![0]).toHaveLength(n);
    expect(claimed).toHaveBeenCalledTimes(1);
    expect(claimed.mock.calls[0]![0]).toEqual(handles.map((h) => h.taskId));
    await vi.waitFor(async () => {
      for (const h of handles) expect(['completed', 'failed']).toContain((await p.manager.getTask(h.taskId))!.state);
    });
    expect(completed).not.toHaveBeenCalled();
    expect(failed).not.toHaveBeenCalled();
    // Every outcome goes through settleTasks; how many share a call depends on how many results
    // arrive within one flush (under a loaded CI machine they may trickle in one by one).
    expect(settled.mock.calls.length).toBeLessThanOrEqual(n);
    expect(settled.mock.calls.reduce((sum, call) => sum + call[1].length, 0)).toBe(n);
    expect(await p.manager.getTask(handles[7]!.taskId)).toMatchObject({ state: 'failed', result: { name: 'ValidationError' } });
    expect(await p.manager.getTask(handles[8]!.taskId)).toMatchObject({ state: 'completed', result: 9 });
  });

  it('a result the store cannot keep as JSON still completes the task there; the caller gets the value', async () => {
    const p = pool(undefined, { maxThreads: 1 });
    const handle = p.submit([TaskKind.CALL, math, 'bytes', [3]]);
    expect(await handle.result).toEqual(new Uint8Array([0, 1, 2]));
    expect(await p.manager.getTask(handle.taskId)).toMatchObject({ state: 'completed', result: { unrecorded: expect.stringContaining('not JSON') } });
  });
});
