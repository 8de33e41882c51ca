/**
 * Colony (DESIGN §6) with real Piscina threads running a real worker module
 * (test/fixtures/colony/worker.mjs). No sleeps: tests wait on reports, inbox messages and events.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createHmac } from 'node:crypto';
import { Colony, createEngine, DuplicateIdError, InvalidStateError, NotFoundError, ValidationError, WebhookReceiver } from '../../src/main/index.js';
import type { ColonyOptions } from '../../src/main/index.js';

const workerModule = new URL('../fixtures/colony/worker.mjs', import.meta.url);
const colonies: Colony[] = [];

async function started(options: Partial<ColonyOptions> = {}): Promise<Colony> {
  const colony = new Colony({ workerModule, pool: { maxThreads: 2 }, ...options });
  colonies.push(colony);
  await colony.start();
  return colony;
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(colonies.splice(0).map((c) => c.stop()));
});

describe('Colony', () => {
  it('a 3-way batch with one failing worker reports in input order with batch ids', async () => {
    const colony = await started();
    const ids = await colony.spawnBatch([
      { task: 'echo', data: { n: 1 } },
      { task: 'fail' },
      { task: 'partial' },
    ]);
    expect(ids).toHaveLength(3);
    const reports = await colony.waitForWorkerReports([ids[2]!, ids[0]!, ids[1]!]);
    expect(reports.map((r) => r.workerId)).toEqual([ids[2], ids[0], ids[1]]);
    expect(reports.map((r) => r.status)).toEqual(['partial', 'success', 'failed']);
    expect(reports[1]!.data).toMatchObject({ input: { n: 1 } });
    expect(reports[2]!.error).toContain('failed on purpose');
    const batchIds = new Set(reports.map((r) => r.batchId));
    expect(batchIds.size).toBe(1);
    expect(reports.map((r) => r.batchIndex)).toEqual([3, 1, 2]);
    // Pool threads, not the main thread, ran them.
    expect((reports[1]!.data as { threadId: number }).threadId).not.toBe(0);
  });

  it('waitForWorkerReports: [] for [], no_such_worker for an unknown id', async () => {
    const colony = await started();
    expect(await colony.waitForWorkerReports([])).toEqual([]);
    const [id] = await colony.spawn('echo', { input: 'x' });
    const reports = await colony.waitForWorkerReports(['nope', id!]);
    expect(reports[0]).toMatchObject({ workerId: 'nope', status: 'failed', error: 'no_such_worker' });
    expect(reports[1]).toMatchObject({ workerId: id, status: 'success' });
  });

  it("a worker's input and its report's data arrive unchanged: -0, BigInt, undefined, Uint8Array", async () => {
    const colony = await started();
    const input = { z: -0, big: -(2n ** 63n), nothing: undefined, bytes: new Uint8Array([7, 0, 255]), list: [-0, 0, { deep: -0 }] };
    const [id] = await colony.spawn('echo', { input });
    const [report] = await colony.waitForWorkerReports([id!], { timeoutMs: 30_000 });
    expect(report).toMatchObject({ status: 'success' });
    const echoed = (report!.data as { input: typeof input }).input;
    expect(echoed).toStrictEqual(input);
    expect(Object.is(echoed.z, -0)).toBe(true);
    expect(Object.is(echoed.list[0], -0)).toBe(true);
    expect(Object.is(echoed.list[1], 0)).toBe(true);
    expect(Object.is((echoed.list[2] as { deep: number }).deep, -0)).toBe(true);
  });

  it('synthesises a timeout report and stops the worker; its late settle is ignored', async () => {
    const colony = await started();
    const [hang] = await colony.spawn('hang');
    const [quick] = await colony.spawn('echo');
    await colony.waitForWorkerReports([quick!]);
    const reports = await colony.waitForWorkerReports([hang!, quick!], { timeoutMs: 100 });
    expect(reports[0]).toMatchObject({ workerId: hang, status: 'timeout', error: 'timeout' });
    expect(reports[1]!.status).toBe('success');
    // The hang worker saw its signal abort and returned; the report stays `timeout`.
    await vi.waitFor(() => expect(colony.getStats().activeWorkers).toBe(0));
    expect((await colony.waitForWorkerReports([hang!]))[0]!.status).toBe('timeout');
  });

  it('queues spawns FIFO over maxConcurrentWorkers and starts them as others finish', async () => {
    const colony = await started({ maxConcurrentWorkers: 2 });
    const ids = await colony.spawn('gate', { count: 4 });
    const status = () => colony.listWorkers().map((w) => w.status);
    expect(status()).toEqual(['running', 'running', 'queued', 'queued']);
    expect(colony.getStats()).toMatchObject({ activeWorkers: 2, queued: 2, totalWorkers: 4 });
    // A message to a queued worker is kept for it.
    expect(colony.sendToWorker(ids[3]!, 'release')).toBe(true);
    expect(colony.sendToWorker(ids[1]!, 'release')).toBe(true);
    await colony.waitForWorkerReports([ids[1]!]);
    expect(status()).toEqual(['running', 'success', 'running', 'queued']);
    colony.sendToWorker(ids[0]!, 'release');
    await colony.waitForWorkerReports([ids[0]!, ids[3]!]);
    colony.sendToWorker(ids[2]!, 'release');
    const reports = await colony.waitForWorkerReports(ids);
    expect(reports.map((r) => r.status)).toEqual(['success', 'success', 'success', 'success']);
    const starts = colony.events.getHistory({ types: 'worker.started' }).reverse().map((e) => e.workerId);
    expect(starts).toEqual(ids);
    expect(colony.sendToWorker(ids[0]!, 'late')).toBe(false);
  });

  it('stopWorker stops a running and a queued worker; stopAllWorkers the rest', async () => {
    const colony = await started({ maxConcurrentWorkers: 1 });
    const [a, b, c] = await colony.spawn('hang', { count: 3 });
    expect(await colony.stopWorker(b!)).toBe(true);
    expect(await colony.stopWorker(a!)).toBe(true);
    expect(await colony.stopWorker(a!)).toBe(false);
    expect(await colony.stopWorker('unknown')).toBe(false);
    await colony.stopAllWorkers();
    const reports = await colony.waitForWorkerReports([a!, b!, c!]);
    expect(reports.map((r) => r.status)).toEqual(['stopped', 'stopped', 'stopped']);
  });

  it('startOverseer is idempotent and its inbox receives sendToWorker messages', async () => {
    const colony = await started({ maxConcurrentWorkers: 1 });
    const overseer = colony.startOverseer();
    expect(colony.startOverseer()).toBe(overseer);
    // The overseer does not take a worker slot.
    const [echo] = await colony.spawn('echo');
    expect((await colony.waitForWorkerReports([echo!]))[0]!.status).toBe('success');
    const seen = colony.events.waitFor({ types: 'overseer.message', timeoutMs: 30_000 });
    expect(overseer.send({ hello: 'queen' })).toBe(true);
    const event = await seen;
    expect(event).toMatchObject({ type: 'overseer.message', data: { hello: 'queen' }, workerId: overseer.workerId, colonyId: 'primary' });
    await colony.stop();
    expect((await overseer.report).status).toBe('stopped');
    expect(colony.startOverseer()).toBe(overseer);
  });

  it('ctx.emit publishes on the EventBus before the worker report', async () => {
    const colony = await started();
    const [id] = await colony.spawn('emit');
    await colony.waitForWorkerReports([id!]);
    const history = colony.events.getHistory({ workerId: id! });
    expect(history.map((e) => e.type)).toEqual(['worker.report', 'progress', 'progress', 'worker.started', 'worker.spawned']);
    expect(history[1]!.data).toEqual({ step: 2 });
    expect(history[1]!.streamId).toBe(`worker:${id}`);
  });

  it.each([
    ['crash', 'an uncaught exception'],
    ['exit', 'process.exit'],
    ['oom', 'running out of memory under resourceLimits'],
  ])('a worker thread that dies mid-task (%s: %s) yields a failed report; the colony goes on', async (task) => {
    const colony = await started({ pool: { maxThreads: 2, resourceLimits: { maxOldGenerationSizeMb: 24, maxYoungGenerationSizeMb: 8 } } });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const [dead] = await colony.spawn(task);
      const [report] = await colony.waitForWorkerReports([dead!], { timeoutMs: 60_000 });
      expect(report).toMatchObject({ workerId: dead, status: 'failed' });
      expect(report!.error).toMatch(/colony pool thread died/);
      const [after] = await colony.spawn('echo');
      expect((await colony.waitForWorkerReports([after!]))[0]!.status).toBe('success');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('triggers: idempotency keys return the same worker; keys expire by TTL then by max', async () => {
    let now = 1_000_000;
    const colony = new Colony({ workerModule, pool: { maxThreads: 1 }, idempotency: { ttlMs: 1000, maxKeys: 2 }, now: () => now });
    colonies.push(colony);
    colony.registerTrigger({ id: 'hook', type: 'api', config: { task: 'echo' } });
    expect(() => colony.registerTrigger({ id: 'hook', type: 'manual' })).toThrow(DuplicateIdError);
    expect(() => colony.registerTrigger({ id: 't', type: 'timer', config: {} })).toThrow(ValidationError);
    await colony.start();
    expect(() => colony.registerTrigger({ id: 'late', type: 'manual' })).toThrow(InvalidStateError);
    await expect(colony.trigger('missing', {})).rejects.toBeInstanceOf(NotFoundError);
    const a = await colony.trigger('hook', { n: 1 }, { idempotencyKey: 'k1' });
    expect(await colony.trigger('hook', { n: 2 }, { idempotencyKey: 'k1' })).toBe(a);
    const b = await colony.trigger('hook', { n: 3 }, { idempotencyKey: 'k2' });
    expect(b).not.toBe(a);
    // A third key pushes out the oldest (k1) beyond maxKeys = 2.
    await colony.trigger('hook', {}, { idempotencyKey: 'k3' });
    expect(await colony.trigger('hook', {}, { idempotencyKey: 'k1' })).not.toBe(a);
    // TTL: k2 is older than 1 s now.
    now += 1001;
    expect(await colony.trigger('hook', {}, { idempotencyKey: 'k2' })).not.toBe(b);
    const report = await colony.triggerAndWait('hook', { n: 9 });
    expect(report.status).toBe('success');
    expect(report.data).toMatchObject({ input: { n: 9 } });
  });

  it('timer triggers fire on their interval (unref timers), pause and resume', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const colony = new Colony({ workerModule, pool: { maxThreads: 1 } });
    colonies.push(colony);
    colony.registerTrigger({ id: 'tick', type: 'timer', config: { intervalMs: 1000, runImmediately: true, task: 'echo' } });
    await colony.start();
    const fired = () => colony.events.getHistory({ types: 'trigger.fired' }).length;
    expect(fired()).toBe(1);
    vi.advanceTimersByTime(2000);
    expect(fired()).toBe(3);
    colony.pauseTimers();
    vi.advanceTimersByTime(5000);
    expect(fired()).toBe(3);
    colony.resumeTimers();
    vi.advanceTimersByTime(1000);
    expect(fired()).toBe(4);
    const ids = colony.events.getHistory({ types: 'trigger.fired' }).map((e) => (e.data as { workerId: string }).workerId);
    const reports = await colony.waitForWorkerReports(ids);
    expect(reports.every((r) => r.status === 'success')).toBe(true);
    await colony.stop();
    vi.advanceTimersByTime(5000);
    expect(fired()).toBe(4);
  });

  it('event triggers spawn on matching EventBus events', async () => {
    const colony = new Colony({ workerModule, pool: { maxThreads: 1 } });
    colonies.push(colony);
    colony.registerTrigger({ id: 'on-doc', type: 'event', config: { eventType: 'doc.changed', task: 'echo' } });
    await colony.start();
    const report = colony.events.waitFor({ types: 'worker.report', timeoutMs: 30_000 });
    await colony.events.publish({ type: 'other', data: 1 });
    await colony.events.publish({ type: 'doc.changed', data: { path: 'a.md' } });
    const event = await report;
    expect((event!.data as { status: string }).status).toBe('success');
    expect(colony.events.getHistory({ types: 'trigger.fired' })).toHaveLength(1);
  });

  it('webhook triggers spawn a worker per change a signed push yields, on the colony WebhookReceiver', async () => {
    const receiver = new WebhookReceiver();
    try {
      expect(() => new Colony({ workerModule }).registerTrigger({ id: 'w', type: 'webhook', config: { path: '/h', provider: 'gitea' } })).toThrow(/webhooks/);
      const colony = new Colony({ workerModule, pool: { maxThreads: 1 }, webhooks: receiver });
      colonies.push(colony);
      colony.registerTrigger({ id: 'push', type: 'webhook', config: { path: '/hooks/colony', provider: 'gitea', secret: 'tea', task: 'echo' } });
      await colony.start();
      const base = await receiver.listen();
      const body = JSON.stringify({ after: 'abc', repository: { clone_url: 'https://git.example/repo.git' }, commits: [{ added: ['a.txt', 'b.txt'] }] });
      const bad = await fetch(`${base}/hooks/colony`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-gitea-signature': 'wrong' } });
      expect(bad.status).toBe(401);
      const ok = await fetch(`${base}/hooks/colony`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-gitea-signature': createHmac('sha256', 'tea').update(body).digest('hex') } });
      expect(ok.status).toBe(202);
      await vi.waitFor(() => expect(colony.events.getHistory({ types: 'trigger.fired' }).length).toBeGreaterThanOrEqual(2), { timeout: 30_000 });
      const ids = colony.events.getHistory({ types: 'trigger.fired' }).map((e) => (e.data as { workerId: string }).workerId);
      const reports = await colony.waitForWorkerReports(ids);
      const pages = reports.map((r) => ((r.data as { input: { event: { pageId: string } } }).input.event.pageId));
      expect(pages).toEqual(expect.arrayContaining(['file:a.txt', 'file:b.txt']));
      expect(reports.every((r) => r.status === 'success')).toBe(true);
    } finally {
      await receiver.close();
    }
  });

  it('stop() is idempotent; afterwards calls fail with coded errors and nothing throws', async () => {
    const colony = await started();
    const [id] = await colony.spawn('hang');
    await Promise.all([colony.stop(), colony.stop()]);
    await colony.stop();
    expect((await colony.waitForWorkerReports([id!]))[0]!.status).toBe('stopped');
    await expect(colony.spawn('echo')).rejects.toMatchObject({ code: 'CONVERGE_CLOSED' });
    expect(colony.getStats()).toMatchObject({ running: false, activeWorkers: 0 });
    expect(colony.sendToWorker(id!, 'x')).toBe(false);
  });

  it('ctx.dispatchChange hands changes to the colony engine; without one the worker fails', async () => {
    const engine = await createEngine();
    try {
      const seen = new Promise<string>((resolve) => void engine.subscribe({ predicate: { dataType: 'from-colony' }, handler: (event) => resolve(event.pageId) }));
      const colony = await started({ engine });
      const [id] = await colony.spawn('derive');
      expect((await colony.waitForWorkerReports([id!]))[0]!.status).toBe('success');
      expect(await seen).toBe(`from:${id}`);
      const bare = await started();
      const [lonely] = await bare.spawn('derive');
      const [report] = await bare.waitForWorkerReports([lonely!]);
      expect(report).toMatchObject({ status: 'failed', error: expect.stringContaining('needs an engine') });
    } finally {
      await engine.close();
    }
  });

  it('keeps finished workers within resultRetention (max, then TTL); forgotten ids are no_such_worker', async () => {
    let now = 5_000;
    const colony = await started({ resultRetention: { max: 2, ttlMs: 1000 }, now: () => now });
    const ids = await colony.spawn('echo', { count: 3 });
    await colony.waitForWorkerReports(ids);
    expect(colony.listWorkers().map((w) => w.workerId)).toEqual([ids[1], ids[2]]);
    expect((await colony.waitForWorkerReports([ids[0]!]))[0]!.error).toBe('no_such_worker');
    now += 1001;
    expect(colony.listWorkers()).toEqual([]);
    expect((await colony.waitForWorkerReports([ids[2]!]))[0]!.error).toBe('no_such_worker');
  });

  it('validates its options and arguments', async () => {
    expect(() => new Colony({ workerModule, maxConcurrentWorkers: 0 })).toThrow(ValidationError);
    expect(() => new Colony({ workerModule, bogus: 1 } as unknown as ColonyOptions)).toThrow(/options.bogus/);
    // Pool options are checked up front (Piscina would throw on the first spawn, out of reach).
    expect(() => new Colony({ workerModule, pool: { minThreads: 3, maxThreads: 1 } })).toThrow(/options\.pool\.minThreads/);
    expect(() => new Colony({ workerModule, pool: { maxThreads: 'two' } as unknown as ColonyOptions['pool'] })).toThrow(/options\.pool\.maxThreads/);
    expect(() => new Colony({ workerModule, pool: { maxThread: 2 } as unknown as ColonyOptions['pool'] })).toThrow(/options\.pool\.maxThread/);
    const colony = new Colony({ workerModule });
    colonies.push(colony);
    await expect(colony.spawn('echo')).rejects.toBeInstanceOf(InvalidStateError);
    await colony.start();
    await expect(colony.spawn('echo', { count: 0 })).rejects.toMatchObject({ field: 'options.count' });
    // Input the pool cannot carry unchanged is refused up front, naming where it is.
    await expect(colony.spawn('echo', { input: { nested: [1, () => 2] } })).rejects.toMatchObject({ code: 'CONVERGE_VALIDATION', field: 'options.input.nested[1]' });
    await expect(colony.spawn('echo', { input: new Map([['a', 1]]) })).rejects.toMatchObject({ field: 'options.input' });
    await expect(colony.spawnBatch([{ task: 'echo' }, { task: 'echo', data: { s: Symbol('x') } }])).rejects.toMatchObject({ field: 'tasks[1].data.s' });
    expect(colony.listWorkers()).toHaveLength(0);
    // A result it cannot carry is a failed report naming the field, not a success with the field gone.
    const [id] = await colony.spawn('unsendable');
    const [report] = await colony.waitForWorkerReports([id!], { timeoutMs: 30_000 });
    expect(report).toMatchObject({ status: 'failed' });
    expect(report!.error).toContain('callback');
  });
});
