/**
 * A job per matching event on a real engine: each event runs a ConvergeJob, its decision is fed
 * back as a derived change that another subscription sees, and quiescence waits for all of it. With
 * a queue, the handler only submits and a runtime runs the jobs.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  ConvergeJob,
  createEngine,
  type Engine,
  jobSubscription,
  JobQueue,
  PageChange,
  type PageChangeEvent,
  PiscinaJobPool,
  type JobResult,
} from '../../src/main/index.js';

const CHAIN = fileURLToPath(new URL('../fixtures/jobs/chain.mjs', import.meta.url));
const agents = ['first', 'second', 'third'].map((name) => ({ name, module: CHAIN, export: name }));

const pool = new PiscinaJobPool({ maxThreads: 2 });
afterAll(() => pool.destroy());
const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

describe('jobSubscription', () => {
  it('runs a job per matching event, feeds its decision back, and quiescence waits for it', async () => {
    const engine = await createEngine();
    engines.push(engine);
    const results: [string, JobResult][] = [];
    const decisions: PageChangeEvent[] = [];
    await engine.subscribe({ predicate: { dataType: 'decision' }, handler: (event) => void decisions.push(event) });
    await jobSubscription(engine, {
      predicate: { dataType: 'order' },
      outputs: [{ dataType: 'decision' }],
      job: new ConvergeJob({ agents, pool }),
      context: (event) => ({ n: event.extra!.n as number }),
      onResult: (result, event) => void results.push([event.pageId, result]),
      emit: (result, event) => PageChange.added(`${event.pageId}:decision`, { dataType: 'decision', sourceId: 'job', extra: { c: result.context.c, status: result.status } }),
    });
    await engine.dispatchChange([
      PageChange.added('order-1', { dataType: 'order', sourceId: 'test', extra: { n: 1 } }),
      PageChange.added('note', { dataType: 'note', sourceId: 'test' }),
      PageChange.added('order-2', { dataType: 'order', sourceId: 'test', extra: { n: 5 } }),
    ]);
    const report = await engine.waitForQuiescence({ timeoutMs: 60_000 });
    expect(report).not.toBeNull();
    expect(results.map(([page, result]) => [page, result.status, result.context.c]).sort()).toEqual([
      ['order-1', 'converged', 4],
      ['order-2', 'converged', 12],
    ]);
    expect(decisions.map((d) => [d.pageId, d.extra]).sort()).toEqual([
      ['order-1:decision', { c: 4, status: 'converged' }],
      ['order-2:decision', { c: 12, status: 'converged' }],
    ]);
  });

  it('with a queue, submits a job per event for a runtime to run', async () => {
    const engine = await createEngine();
    engines.push(engine);
    const queue = new JobQueue();
    const submitted: string[] = [];
    await jobSubscription(engine, {
      predicate: { dataType: 'order' },
      queue,
      spec: (event) => ({ agents, context: { n: event.extra!.n as number } }),
      onSubmitted: (id) => void submitted.push(id),
    });
    await engine.dispatchChange(PageChange.added('order-7', { dataType: 'order', sourceId: 'test', extra: { n: 7 } }));
    expect(await engine.waitForQuiescence({ timeoutMs: 60_000 })).not.toBeNull();
    expect(submitted).toHaveLength(1);
    expect(await queue.runJobs({ untilIdle: true, pool })).toEqual({ completed: 1, failed: 0, lost: 0 });
    expect((await queue.getJob(submitted[0]!))!.result!.context).toEqual({ n: 7, a: 7, b: 8, c: 16 });
    await queue.close();
  });

  it('refuses options without exactly one of job and queue', async () => {
    const engine = await createEngine();
    engines.push(engine);
    await expect(jobSubscription(engine, { predicate: { dataType: 'x' } })).rejects.toThrow(/job/);
  });
});
