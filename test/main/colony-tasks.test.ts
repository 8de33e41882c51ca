/**
 * Task subscriptions through the colony pool: dispatches become tasks in the engine's store, are
 * claimed by pool threads, and what they emit is counted before quiescence. Real threads, no sleeps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/coordination/index.js';
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
    await e.subscribe({ predicate: { dataType: 'chain' }, task: { filename: tasks, name: 'untilClose' } });
    const running = new Promise<void>((resolve) => void e.subscribe({ predicate: { dataType: 'running' }, handler: () => resolve() }));
    await e.dispatchChange(root('slow', 0));
    await running;
    // An uncaught error here (a late settle after close) would fail the run as an unhandled error.
    await e.close();
    expect((await e.getStatus().catch((err: unknown) => err)) as Error).toMatchObject({ code: 'CONVERGE_CLOSED' });
  });

  it('a task that ignores ctx.signal and outlives closeTimeoutMs is abandoned without a late settle crashing the host', async () => {
    const e = await engine({ pool: { maxThreads: 1 }, closeTimeoutMs: 100 });
    await e.subscribe({ predicate: { dataType: 'chain' }, task: { filename: tasks, name: 'stubborn' } });
    const running = new Promise<void>((resolve) => void e.subscribe({ predicate: { dataType: 'running' }, handler: () => resolve() }));
    await e.dispatchChange(root('stuck', 0));
    await running;
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
