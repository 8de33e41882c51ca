/**
 * JobQueue: jobs stored as tasks, run by whichever runtime claims them. In one process on a
 * MemoryStore, and across two real processes sharing a PostgreSQL queue, one of which is killed with
 * SIGKILL while it holds a job: the job's claim expires, the other runtime runs it from its start,
 * and every job is completed exactly once with the result a single local run gives.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, PostgresStore } from '../../src/coordination/index.js';
import { ConvergeJob, DuplicateIdError, JobQueue, PiscinaJobPool, ValidationError, type JobSpec } from '../../src/main/index.js';
import { describePg, dropSchema, uniqueSchema } from '../helpers/pg.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHAIN = fileURLToPath(new URL('../fixtures/jobs/chain.mjs', import.meta.url));
const TOOLS = fileURLToPath(new URL('../fixtures/jobs/tools.mjs', import.meta.url));
const RUNTIME = fileURLToPath(new URL('../fixtures/jobs/runtime.mjs', import.meta.url));

/** The 3-agent job on `n`; `holdFile` adds the agent that waits on the `hold` tool. */
function chainSpec(n: number, holdFile?: string): JobSpec {
  const agents: JobSpec['agents'] = [
    { name: 'first', module: CHAIN, export: 'first' },
    { name: 'second', module: CHAIN, export: 'second' },
    { name: 'third', module: CHAIN, export: 'third' },
    { name: 'held', module: CHAIN, export: 'held', optional: true },
  ];
  const context = holdFile === undefined ? { n } : { n, holdFile };
  return { agents, tools: { hold: { module: TOOLS, export: 'hold', timeoutMs: 600_000, retries: 0 } }, context };
}

const pool = new PiscinaJobPool({ maxThreads: 2 });
afterAll(() => pool.destroy());

describe('JobQueue in one process', () => {
  it('stores jobs as tasks, runs each once, and keeps the results', async () => {
    const queue = new JobQueue();
    const ids = await queue.submitJobs([chainSpec(1), chainSpec(2), chainSpec(3)]);
    const summary = await queue.runJobs({ concurrency: 2, untilIdle: true, pool });
    expect(summary).toEqual({ completed: 3, failed: 0, lost: 0 });
    const jobs = await Promise.all(ids.map((id) => queue.getJob(id)));
    expect(jobs.map((job) => [job!.state, job!.attempts, job!.result!.status, job!.result!.context])).toEqual([
      ['completed', 1, 'converged', { n: 1, a: 1, b: 2, c: 4 }],
      ['completed', 1, 'converged', { n: 2, a: 2, b: 3, c: 6 }],
      ['completed', 1, 'converged', { n: 3, a: 3, b: 4, c: 8 }],
    ]);
    expect(jobs[0]!.result!.rounds).toBe(4);
    // A cancelled job is never run.
    const cancelled = await queue.submitJob(chainSpec(9));
    expect(await queue.cancelJob(cancelled)).toBe(true);
    expect(await queue.runJobs({ untilIdle: true, pool })).toEqual({ completed: 0, failed: 0, lost: 0 });
    expect((await queue.getJob(cancelled))!.state).toBe('cancelled');
    await queue.close();
  });

  it('submitJob calls of one turn are stored with one submitMany; a refused job fails alone', async () => {
    const store = new MemoryStore();
    const inserted = vi.spyOn(store, 'insertTasks');
    const queue = new JobQueue({ store });
    const ids = await Promise.all([1, 2, 3, 4].map((n) => queue.submitJob(chainSpec(n))));
    expect(inserted).toHaveBeenCalledTimes(1);
    expect(inserted.mock.calls[0]![0].map((task) => task.id)).toEqual(ids);
    // A taken id refuses the batch (all or none): each job is then stored alone, with its own outcome.
    const burst = await Promise.allSettled([queue.submitJob(chainSpec(5), { id: 'job-x' }), queue.submitJob(chainSpec(6), { id: ids[0]! }), queue.submitJob(chainSpec(7))]);
    expect(burst.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((burst[1] as PromiseRejectedResult).reason).toBeInstanceOf(DuplicateIdError);
    expect(await queue.manager.listPendingTasks()).toHaveLength(6);
    await queue.close();
  });

  it('refuses a bad spec at submit, and fails (does not crash on) a job whose tool module does not load', async () => {
    const queue = new JobQueue();
    await expect(queue.submitJob({ agents: [{ name: 'x', module: 'relative.mjs' }], context: {} })).rejects.toThrow(/spec\.agents\[0\]\.module/);
    await expect(queue.submitJob({ agents: [{ name: 'x', module: CHAIN }], context: [] as never })).rejects.toBeInstanceOf(ValidationError);
    const id = await queue.submitJob({ ...chainSpec(1), tools: { hold: { module: join(root, 'no-such-tool.mjs') } } });
    const summary = await queue.runJobs({ untilIdle: true, pool });
    expect(summary).toEqual({ completed: 0, failed: 1, lost: 0 });
    const job = await queue.getJob(id);
    expect(job!.state).toBe('failed');
    expect(job!.error!.message).toMatch(/no-such-tool/);
    await queue.close();
  });
});

/** A runtime process (test/fixtures/jobs/runtime.mjs) and its JSON lines. */
class Runtime {
  readonly process: ChildProcess;
  readonly messages: Record<string, unknown>[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #waiters = new Set<() => void>();
  #stderr = '';

  constructor(config: Record<string, unknown>) {
    const args = process.env.CONVERGE_TEST_TARGET === 'dist' ? [RUNTIME] : ['--import', 'tsx', RUNTIME];
    this.process = spawn(process.execPath, args, { cwd: root, env: { ...process.env, CONVERGE_CHILD_CONFIG: JSON.stringify(config) }, stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.process.stdout! }).on('line', (line) => {
      try {
        this.messages.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        this.#stderr += `[stdout] ${line}\n`;
      }
      for (const wake of this.#waiters) wake();
    });
    this.process.stderr!.on('data', (chunk: Buffer) => (this.#stderr += chunk.toString()));
    this.exited = new Promise((resolve) => this.process.on('exit', (code, signal) => (resolve({ code, signal }), this.#waiters.forEach((wake) => wake()))));
  }

  /** The first message with `key`; rejects at the deadline or when the process exits first. */
  async waitFor(key: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find((message) => key in message);
      if (found !== undefined) return found;
      if (this.process.exitCode !== null || this.process.signalCode !== null) throw new Error(`runtime exited before "${key}"\n${this.#stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${key}" within ${timeoutMs} ms\n${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const done = (): void => (clearTimeout(timer), this.#waiters.delete(done), resolve());
        const timer = setTimeout(done, left);
        this.#waiters.add(done);
      });
    }
  }

  completed(): string[] {
    return this.messages.flatMap((m) => ((m.event as { type?: string } | undefined)?.type === 'completed' ? [(m.event as { jobId: string }).jobId] : []));
  }

  stop(): void {
    this.process.stdin!.write('stop\n');
  }

  kill(): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGKILL');
  }
}

describePg('JobQueue on PostgreSQL across processes', (url) => {
  let runtimes: Runtime[] = [];
  let stores: PostgresStore[] = [];
  let schema: string | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    for (const runtime of runtimes) runtime.kill();
    await Promise.all(runtimes.map((runtime) => runtime.exited));
    await Promise.all(stores.map((store) => store.close()));
    if (schema !== undefined) await dropSchema(url, schema);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    runtimes = [];
    stores = [];
    schema = undefined;
    dir = undefined;
  });

  it('two runtimes share the queue; one killed with SIGKILL mid-job: every job done exactly once, same results', { timeout: 180_000 }, async () => {
    schema = uniqueSchema('cv_jobs');
    dir = mkdtempSync(join(tmpdir(), 'converge-jobs-'));
    const holdFile = join(dir, 'hold');
    const store = new PostgresStore({ connectionString: url, schema, max: 4 });
    stores.push(store);
    // A short claim TTL: the killed runtime's job comes back quickly.
    const queue = new JobQueue({ store, claimTtlMs: 1_500 });
    const specs = Array.from({ length: 12 }, (_, i) => chainSpec(i, i === 4 ? holdFile : undefined));
    const ids = await queue.submitJobs(specs);

    runtimes = [0, 1].map((k) => new Runtime({ url, schema, runtimeId: `runtime-${k}`, concurrency: 2 }));
    await Promise.all(runtimes.map((runtime) => runtime.waitFor('ready', 60_000)));

    // Whichever runtime takes the held job announces it from inside the job; kill it there.
    const holding = await Promise.any(runtimes.map((runtime) => runtime.waitFor('holding', 120_000).then(() => runtime)));
    const survivor = runtimes.find((runtime) => runtime !== holding)!;
    holding.kill();
    expect((await holding.exited).signal).toBe('SIGKILL');

    const done = await Promise.all(ids.map((id) => queue.waitForJob(id, { timeoutMs: 120_000 })));
    survivor.stop();
    expect((await survivor.waitFor('stopped', 60_000)).stopped).toMatchObject({ failed: 0 });

    // The same answers as one local run of each spec (the hold has been taken, so it passes).
    const expected = await Promise.all(
      specs.map(async (spec) => {
        const job = new ConvergeJob({ agents: spec.agents, tools: { hold: { handler: () => 'passed' } }, pool });
        return (await job.run(spec.context)).context;
      }),
    );
    expect(done.map((job) => job?.state)).toEqual(ids.map(() => 'completed'));
    expect(done.map((job) => job!.result!.context)).toEqual(expected);
    expect(done[4]!.result!.context.held).toBe('passed');
    expect(done[4]!.attempts).toBeGreaterThanOrEqual(2);
    const survivorId = survivor === runtimes[0] ? 'runtime-0' : 'runtime-1';
    const victimId = survivorId === 'runtime-0' ? 'runtime-1' : 'runtime-0';
    expect(done[4]!.runtime).toBe(survivorId);

    // Exactly once: no job completed twice or by both runtimes, and the store's record of who
    // completed each job agrees with what the runtimes said. (The killed runtime may have committed
    // a result and died before printing it, so its silence proves nothing; the store decides.)
    const said = [...holding.completed(), ...survivor.completed()];
    expect(new Set(said).size, `completed twice: ${said.join(' ')}`).toBe(said.length);
    done.forEach((job, i) => {
      expect([survivorId, victimId]).toContain(job!.runtime);
      if (job!.runtime === survivorId) expect(survivor.completed()).toContain(ids[i]);
      else expect(survivor.completed()).not.toContain(ids[i]);
    });
    expect(holding.completed()).not.toContain(ids[4]);
  });
});
