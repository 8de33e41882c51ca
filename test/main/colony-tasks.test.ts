/**
 * Task subscriptions through the colony pool: dispatches become tasks in the engine's store, are
 * claimed by pool threads, and what they emit is counted before quiescence. Real threads, no sleeps.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, PostgresStore, TaskManager } from '../../src/coordination/index.js';
import { describePg, dropSchema, uniqueSchema } from '../helpers/pg.js';
import { createEngine, type Engine, type EngineOptions, PageChange, type PageChangeEvent, ValidationError } from '../../src/main/index.js';
import type { TaskContext } from '../../src/main/index.js';

const tasks = new URL('../fixtures/colony/tasks.mjs', import.meta.url);
const engines: Engine[] = [];
async function engine(options: EngineOptions = {}): Promise<Engine> {
  const e = await createEngine(options);
  engines.push(e);
  return e;
}
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

const root = (id: string, depth: number): PageChangeEvent => PageChange.added(id, { dataType: 'chain', sourceId: 'test', extra: { level: 0, depth } });

/** Subscribes the task export `name` and returns once its first dispatch is running (it emits a `running` page). */
async function runningTask(e: Engine, name: string): Promise<void> {
  await e.subscribe({ predicate: { dataType: 'chain' }, task: { filename: tasks, name } });
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  await e.subscribe({ predicate: { dataType: 'running' }, handler: () => started() });
  await e.dispatchChange(root(name, 0));
  await running;
}

describe('task subscriptions on the colony pool', () => {
  it('quiescence is exact while pool tasks emit further changes, several hops deep', async () => {
    const store = new MemoryStore();
    const e = await engine({ pool: { maxThreads: 2 }, store });
    const seen: PageChangeEvent[] = [];
    await e.subscribe({ predicate: { dataType: 'chain' }, task: { filename: tasks } });
    await e.subscribe({ predicate: { dataType: 'chain' }, handler: (ev) => void seen.push(ev) });
    const roots = Array.from({ length: 10 }, (_, i) => root(`r${i}`, 3));
    await e.dispatchChange(roots);
    const report = await e.waitForQuiescence({ timeoutMs: 30_000 });
    expect(report).not.toBeNull();
    // Every link of every chain was seen by the time quiescence was announced: 10 × (1 + 3).
    expect(seen).toHaveLength(40);
    expect(seen.filter((ev) => ev.extra?.['level'] === 3)).toHaveLength(10);
    const status = await e.getStatus();
    // One pool task per chain event; each recorded and settled in the engine's store.
    expect(status.pool).toMatchObject({ completed: 40, failed: 0, running: 0, queued: 0 });
    expect(store.listPendingTasks({ sortByPriority: false })).toHaveLength(0);
  });

  it('one dispatch frame with many matches is submitted with submitMany and claimed with claimTasks, not task by task', async () => {
    const store = new MemoryStore();
    const inserted = vi.spyOn(store, 'insertTasks');
    const claimed = vi.spyOn(store, 'claimTasks');
    const e = await engine({ pool: { maxThreads: 2 }, store });
    await e.subscribe({ predicate: { dataType: 'chain' }, task: { filename: tasks } });
    const n = 40;
    await e.dispatchChange(Array.from({ length: n }, (_, i) => root(`b${i}`, 0)));
    expect(await e.waitForQuiescence({ timeoutMs: 30_000 })).not.toBeNull();
    expect((await e.getStatus()).pool).toMatchObject({ completed: n, failed: 0, running: 0, queued: 0 });
    // Every task went through insertTasks (the memory store's single submit path is another
    // method), in fewer calls than tasks: the frame's matches travel together.
    expect(inserted.mock.calls.reduce((sum, call) => sum + call[0].length, 0)).toBe(n);
    expect(inserted.mock.calls.length).toBeLessThanOrEqual(n / 4);
    expect(claimed.mock.calls.reduce((sum, call) => sum + call[0].length, 0)).toBe(n);
  });

  it('task errors keep their class and code through dispatch-error', async () => {
    const e = await engine({ pool: { maxThreads: 1 } });
    const errors: unknown[] = [];
    e.on('dispatch-error', (info) => errors.push(info.error));
    await e.subscribe({ task: { filename: tasks, name: 'invalid' } });
    await e.dispatchChange(root('x', 0));
    const report = await e.waitForQuiescence({ timeoutMs: 30_000 });
    expect(report!.counters.dispatchesFailed).toBe(1);
    expect(errors[0]).toBeInstanceOf(ValidationError);
    expect(errors[0]).toMatchObject({ code: 'CONVERGE_VALIDATION', field: 'payload.size' });
  });

  it("a task's event arrives unchanged in its pool thread: -0, BigInt, undefined, NaN, Uint8Array, nested", async () => {
    const e = await engine({ pool: { maxThreads: 1 } });
    await e.subscribe({ predicate: { dataType: 'doc' }, task: { filename: tasks, name: 'echo' } });
    const echoed: PageChangeEvent[] = [];
    await e.subscribe({ predicate: { dataType: 'echo' }, handler: (event) => void echoed.push(event) });
    const extra = { z: -0, big: 2n ** 64n - 1n, nothing: undefined, nan: NaN, bytes: new Uint8Array([1, 2, 255]), nested: { list: [1, -0, null, { deep: -0 }] } };
    await e.dispatchChange(PageChange.added('doc:1', { dataType: 'doc', sourceId: 'test', extra }));
    await e.waitForQuiescence({ timeoutMs: 30_000 });
    expect(echoed).toHaveLength(1);
    const echo = echoed[0]!.extra!['echo'] as typeof extra;
    expect(echo).toStrictEqual(extra);
    // toStrictEqual does not tell -0 from 0 inside arrays on every version: check each one.
    expect(Object.is(echo.z, -0)).toBe(true);
    expect(Object.is(echo.nested.list[1], -0)).toBe(true);
    expect(Object.is((echo.nested.list[3] as { deep: number }).deep, -0)).toBe(true);
  });

  it('subscribe checks the module and the export, naming task.filename / task.name', async () => {
    const e = await engine({ pool: { maxThreads: 1 } });
    const missingExport = await e.subscribe({ task: { filename: tasks, name: 'nope' } }).catch((err: unknown) => err);
    expect(missingExport).toBeInstanceOf(ValidationError);
    expect((missingExport as ValidationError).field).toBe('subscription.task.name');
    const notFunction = await e.subscribe({ task: { filename: tasks, name: 'notAFunction' } }).catch((err: unknown) => err);
    expect((notFunction as ValidationError).field).toBe('subscription.task.name');
    const missingFile = await e.subscribe({ task: { filename: new URL('../fixtures/colony/absent.mjs', import.meta.url) } }).catch((err: unknown) => err);
    expect((missingFile as ValidationError).field).toBe('subscription.task.filename');
    expect((await e.getStatus()).subscriptions).toBe(0);
  });

  it('ctx.signal aborts on close; a task running at close neither crashes the host nor holds close', async () => {
    // Far longer than the test's timeout: close returns only because the task saw its signal.
    const e = await engine({ pool: { maxThreads: 1 }, closeTimeoutMs: 600_000 });
    await runningTask(e, 'untilClose');
    // An uncaught error here (a late settle after close) would fail the run as an unhandled error.
    await e.close();
    expect((await e.getStatus().catch((err: unknown) => err)) as Error).toMatchObject({ code: 'CONVERGE_CLOSED' });
  });

  it('a task that ignores ctx.signal and outlives closeTimeoutMs is abandoned without a late settle crashing the host', async () => {
    const e = await engine({ pool: { maxThreads: 1 }, closeTimeoutMs: 100 });
    await runningTask(e, 'stubborn');
    await e.close();
    // Let any late settle run its course: a throw would surface as an unhandled error of this run.
    await new Promise((resolve) => setImmediate(resolve));
    expect((await e.getStatus().catch((err: unknown) => err)) as Error).toMatchObject({ code: 'CONVERGE_CLOSED' });
  });

  it('TaskContext types a task function', () => {
    const fn = (event: PageChangeEvent, ctx: TaskContext): void => {
      if (!ctx.signal.aborted) ctx.dispatchChange({ ...event, pageId: `${event.pageId}:x` });
    };
    expect(typeof fn).toBe('function');
  });
});

describePg('task subscriptions run by another process (PostgreSQL)', (url) => {
  it('quiescence stays exact while a runTaskWorker process runs the tasks and their emits come back', async () => {
    const schema = uniqueSchema('cv_colony');
    const store = new PostgresStore({ connectionString: url, schema, max: 4 });
    const child = spawn(process.execPath, [...(process.env.CONVERGE_TEST_TARGET === 'dist' ? [] : ['--import', 'tsx']), fileURLToPath(new URL('../fixtures/colony/task-worker.mjs', import.meta.url))], {
      cwd: fileURLToPath(new URL('../../', import.meta.url)),
      env: { ...process.env, CONVERGE_CHILD_CONFIG: JSON.stringify({ url, schema }) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! });
    const messages: Record<string, unknown>[] = [];
    const next = (key: string): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const found = messages.find((m) => key in m);
        if (found !== undefined) return resolve(found);
        const onLine = (line: string): void => {
          const message = JSON.parse(line) as Record<string, unknown>;
          messages.push(message);
          if (key in message) {
            lines.off('line', onLine);
            resolve(message);
          }
        };
        lines.on('line', onLine);
        child.once('exit', (code) => reject(new Error(`task worker exited with ${String(code)} before "${key}"`)));
      });
    try {
      // Another system's task in the same store, without a topic: the worker must leave it alone.
      const foreign = new TaskManager({ store });
      await foreign.submit({ id: 'not-a-dispatch', payload: { kind: 'other' } });
      const ready = await next('ready');
      const e = await engine({ store, pool: { runLocally: false, claimTtlMs: 30_000 } });
      const seen: PageChangeEvent[] = [];
      await e.subscribe({ predicate: { dataType: 'chain' }, task: { filename: tasks } });
      await e.subscribe({ predicate: { dataType: 'chain' }, handler: (ev) => void seen.push(ev) });
      await e.dispatchChange([root('p0', 2), root('p1', 2), root('p2', 2)]);
      const report = await e.waitForQuiescence({ timeoutMs: 60_000 });
      expect(report).not.toBeNull();
      expect(seen).toHaveLength(9);
      // Every derived link was emitted in the worker process.
      expect(seen.filter((ev) => ev.extra?.['level'] !== 0).every((ev) => ev.extra?.['pid'] === ready['pid'])).toBe(true);
      child.stdin!.end();
      const stopped = (await next('stopped'))['stopped'] as { completed: number; failed: number };
      expect(stopped).toMatchObject({ completed: 9, failed: 0 });
      expect(await foreign.getTask('not-a-dispatch')).toMatchObject({ state: 'pending', attempts: 0 });
    } finally {
      child.kill();
      await store.close();
      await dropSchema(url, schema);
    }
  });
});
