/**
 * Jobs per second for a 3-agent, 3-round ConvergeJob whose agents each call a no-op tool once per
 * round (test/fixtures/jobs/chain.mjs: a → b → c, then a round that changes nothing: 4 rounds, 12
 * agent runs and 12 tool calls per job).
 *
 * Rows:
 * - baseline: `ConvergeJob.run` straight in this process, 4 jobs at a time (no queue).
 * - queue, MemoryStore, 1 process: submit → runJobs (concurrency 4) → results.
 * - queue, PostgreSQL, 1 process and 2 processes (each concurrency 4; the second case forks this file
 *   as `--jobs-child`): what scale around the runtime buys on one 2-core machine.
 * Children are warmed up (threads started, one job run) before the clock starts; jobs are submitted
 * before they are released, so `runJobs({ untilIdle })` drains and returns.
 *
 *   npx tsx bench/jobs.bench.ts [--quick]      (PostgreSQL rows need CONVERGE_PG_URL)
 */
import type { BenchRatio, BenchReport } from './run.js';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { MemoryStore, PostgresStore, type TaskStore } from '../src/coordination/index.js';
import { ConvergeJob, JobQueue, PiscinaJobPool, type JobSpec } from '../src/main/index.js';

/** Options every bench's `run` takes (see bench/run.ts). */
export interface BenchOptions {
  quick: boolean;
}

const CHILD_FLAG = '--jobs-child';
const CONCURRENCY = 4;
const CHAIN = fileURLToPath(new URL('../test/fixtures/jobs/chain.mjs', import.meta.url));
const TOOLS = fileURLToPath(new URL('../test/fixtures/jobs/tools.mjs', import.meta.url));

function spec(n: number): JobSpec {
  return {
    agents: ['first', 'second', 'third'].map((name) => ({ name, module: CHAIN, export: name })),
    tools: { ping: { module: TOOLS, export: 'ping' } },
    context: { n, ping: true },
  };
}

interface Row {
  case: string;
  jobs: number;
  'jobs/s': number;
  'vs baseline': string;
}

async function baseline(jobs: number, pool: PiscinaJobPool): Promise<number> {
  const job = new ConvergeJob({ agents: spec(0).agents, tools: { ping: () => 'pong' }, pool });
  await job.run(spec(-1).context);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < jobs) {
        const result = await job.run(spec(next++).context);
        if (result.status !== 'converged' || result.rounds !== 4) throw new Error(`unexpected ${result.status} in ${result.rounds} rounds`);
      }
    }),
  );
  return jobs / ((performance.now() - t0) / 1000);
}

async function inProcess(store: TaskStore, jobs: number, pool: PiscinaJobPool): Promise<number> {
  const queue = new JobQueue({ store });
  await queue.submitJob(spec(-1));
  await queue.runJobs({ untilIdle: true, concurrency: CONCURRENCY, pool });
  await queue.submitJobs(Array.from({ length: jobs }, (_, i) => spec(i)));
  const t0 = performance.now();
  const summary = await queue.runJobs({ untilIdle: true, concurrency: CONCURRENCY, pool, pollMs: 5 });
  const rate = jobs / ((performance.now() - t0) / 1000);
  if (summary.completed !== jobs) throw new Error(`completed ${summary.completed} of ${jobs}`);
  return rate;
}

/** One line of JSON from a child. */
function message(child: ChildProcess, key: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>): void => {
      if (key in m) {
        child.off('message', onMessage);
        resolve(m);
      }
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`bench child exited (${String(code)}) before "${key}"`)));
  });
}

async function twoProcesses(url: string, schema: string, jobs: number): Promise<number> {
  const file = fileURLToPath(import.meta.url);
  const children = [0, 1].map(() => fork(file, [CHILD_FLAG, url, schema], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  try {
    await Promise.all(children.map((child) => message(child, 'ready')));
    const store = new PostgresStore({ connectionString: url, schema, max: 4 });
    const queue = new JobQueue({ store });
    await queue.submitJobs(Array.from({ length: jobs }, (_, i) => spec(i)));
    const t0 = performance.now();
    for (const child of children) child.send({ go: true });
    const done = await Promise.all(children.map((child) => message(child, 'done')));
    const rate = jobs / ((performance.now() - t0) / 1000);
    const completed = done.reduce((sum, m) => sum + (m.done as number), 0);
    await store.close();
    if (completed !== jobs) throw new Error(`completed ${completed} of ${jobs}`);
    return rate;
  } finally {
    for (const child of children) child.kill();
  }
}

/** A child of {@link twoProcesses}: warm up on a private in-memory queue, then drain the shared one when told. */
async function child(url: string, schema: string): Promise<void> {
  const pool = new PiscinaJobPool();
  const warm = new JobQueue();
  await warm.submitJobs([spec(-1), spec(-2)]);
  await warm.runJobs({ untilIdle: true, concurrency: CONCURRENCY, pool });
  const store = new PostgresStore({ connectionString: url, schema, max: 4 });
  const queue = new JobQueue({ store });
  await queue.getJob('warm-up');
  process.send!({ ready: true });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  const summary = await queue.runJobs({ untilIdle: true, concurrency: CONCURRENCY, pool, pollMs: 5 });
  process.send!({ done: summary.completed });
  await store.close();
  await pool.destroy();
  process.disconnect();
}

export async function run(options: BenchOptions): Promise<BenchReport> {
  const jobs = options.quick ? 20 : 400;
  const pool = new PiscinaJobPool();
  const rows: Row[] = [];
  const add = (name: string, rate: number): void => {
    rows.push({ case: name, jobs, 'jobs/s': Math.round(rate), 'vs baseline': rows.length === 0 ? '1.00×' : `${(rate / rows[0]!['jobs/s']).toFixed(2)}×` });
  };
  try {
    add(`baseline: ConvergeJob.run, ${CONCURRENCY} at a time`, await baseline(jobs, pool));
    add('queue, MemoryStore, 1 process', await inProcess(new MemoryStore(), jobs, pool));
    const url = process.env.CONVERGE_PG_URL;
    if (url === undefined || url === '') {
      console.log('  PostgreSQL rows skipped: set CONVERGE_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test)');
    } else {
      const schema = `cv_bench_jobs_${randomBytes(4).toString('hex')}`;
      try {
        const store = new PostgresStore({ connectionString: url, schema, max: 4 });
        add('queue, PostgreSQL, 1 process', await inProcess(store, jobs, pool));
        await store.close();
        add('queue, PostgreSQL, 2 processes', await twoProcesses(url, schema, jobs));
      } finally {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await client.end();
      }
    }
  } finally {
    await pool.destroy();
  }
  console.table(rows);
  const [base, ...others] = rows;
  const ratios: BenchRatio[] = others.map((row) => ({ measure: `jobs (3 agents × 3 rounds), ${row.case}`, value: row['jobs/s'], unit: 'jobs/s', baseline: base!.case, baselineValue: base!['jobs/s'] }));
  return { ratios };
}

if (process.argv[2] === CHILD_FLAG) {
  await child(process.argv[3]!, process.argv[4]!);
} else if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes('--quick') });
}
