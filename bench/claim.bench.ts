/**
 * Claiming throughput and latency of the coordination layer against graphile-worker 0.17 and
 * pg-boss 10, on the same PostgreSQL database, with the same no-op work and the same claimer count.
 *
 * Every system runs in its batch mode:
 * - converge: `submitMany` in batches; claimers are `TaskClaimer`s with their defaults (batched
 *   `claimNext(…, { max })` into a local queue, two claims in flight, batched `settleMany`, flush
 *   delay 0, LISTEN/NOTIFY wake), `run` with the concurrency below; each claimer has its own
 *   PostgresStore (its own pool of 4; graphile-worker's runners get 10);
 * - graphile-worker: `addJobs` in batches; each claimer is one `run()` with `concurrentJobs`,
 *   `localQueue.size` and `completeJobBatchDelay: 0` (its documented high-throughput setup);
 * - pg-boss: `insert` in batches; each claimer is a loop of `fetch(batchSize)` → run → `complete(ids)`.
 * Claimers: 1 (concurrency 24, local queue / batch 500) and, in the full run, 4 (each 6 and 125).
 *
 * Rows:
 * - submit/s: adding the deep queue in batches of 5 000;
 * - deep: 100 000 tasks pending (quick: 2 000), then the claimers drain them; claims+completions/s
 *   from start to the last completion flushed to the database; and the CPU each task cost during
 *   the drain, PostgreSQL's + the bench process's in µs (on a shared, loaded machine the rates say
 *   how much CPU was left over; CPU per task says what the work costs);
 * - shallow: claimers idle, then a producer adds the same number in batches of 500 while they drain;
 *   the queue stays as shallow as the claimers can keep it;
 * - latency: one idle claimer; tasks are added one at a time, each after the previous one started;
 *   p50/p99 from the add call to the handler starting (graphile and converge wake on NOTIFY,
 *   pg-boss polls every 0.5 s, its minimum).
 * PostgreSQL rows run with the server's default durability and (full run) with
 * `synchronous_commit=off` for every system's sessions. The MemoryStore row is a best case: one
 * process, no database, no network; it says what the claiming logic itself costs.
 *
 *   npx tsx bench/claim.bench.ts            full run (a few minutes; for bench/RESULTS.md)
 *   npx tsx bench/claim.bench.ts --quick    smoke pass (small counts, default durability, 1 claimer)
 *
 * PostgreSQL parts need CONVERGE_PG_URL. `CLAIM_BENCH_SYSTEMS=converge,graphile` (any subset of
 * `converge,graphile,pgboss`) runs only those; `CLAIM_BENCH_TASKS=20000` sets the deep and shallow
 * task counts.
 */
import type { BenchRatio, BenchReport } from './run.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Logger, makeWorkerUtils, run as runGraphile, type Runner, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { MemoryStore, PostgresStore, SqliteStore, TaskClaimer, TaskManager, type TaskStore } from '../src/coordination/index.js';

/** Options every bench's `run` takes (see bench/run.ts). */
export interface BenchOptions {
  quick: boolean;
}

/** Goals of issue 11, on the project's 2-core machine. */
const GOAL = { vsGraphile: 1.5, latencyP50Ms: 5 } as const;
const CONCURRENCY = 24;
const LOCAL_QUEUE = 500;
const SUBMIT_BATCH = 5_000;
const PRODUCER_BATCH = 500;

interface Payload {
  i: number;
}

/** One system under test, on one schema. */
interface System {
  readonly name: string;
  /** Adds tasks with these payloads, in one batch. */
  submit(payloads: readonly Payload[]): Promise<void>;
  /** Adds one task (the latency row). */
  submitOne(payload: Payload): Promise<void>;
  /** Starts `claimers` workers whose no-op handler calls `onStart`. */
  start(claimers: number, onStart: (payload: Payload) => void): Promise<void>;
  /** Stops the workers after flushing their completions. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

interface Row {
  system: string;
  durability: string;
  claimers: number;
  'submit/s': number | string;
  'deep claims/s': number | string;
  'shallow claims/s': number | string;
  'p50 ms': number | string;
  'p99 ms': number | string;
  /** CPU per task of the deep drain: PostgreSQL's processes + this process, in µs (load-independent). */
  'deep cpu µs/task': string;
  note: string;
}

// ---------------------------------------------------------------------------------------------
// Systems

function convergeSystem(name: string, open: () => TaskStore, settings: { idlePollMs: number }): System {
  const main = open();
  const tm = new TaskManager({ store: main });
  let claimers: { claimer: TaskClaimer; running: Promise<void>; store: TaskStore }[] = [];
  return {
    name,
    submit: async (payloads) => void (await tm.submitMany(payloads.map((payload) => ({ payload })))),
    submitOne: async (payload) => void (await tm.submit({ payload })),
    start: async (count, onStart) => {
      claimers = Array.from({ length: count }, (_, k) => {
        const store = open();
        const claimer = new TaskClaimer(new TaskManager({ store }), {
          agentId: `claimer-${k}`,
          batchSize: Math.max(1, Math.floor(LOCAL_QUEUE / count)),
          idlePollMs: settings.idlePollMs,
          onError: (error) => console.error(`${name}:`, error),
        });
        const running = claimer.run((task) => onStart(task.payload as Payload), { concurrency: Math.max(1, Math.floor(CONCURRENCY / count)) });
        return { claimer, running, store };
      });
      await Promise.resolve();
    },
    stop: async () => {
      await Promise.all(claimers.map(({ claimer }) => claimer.close()));
      await Promise.all(claimers.map(({ running }) => running));
      await Promise.all(claimers.map(({ store }) => (store === main ? undefined : store.close())));
      claimers = [];
    },
    close: () => main.close(),
  };
}

async function graphileSystem(connectionString: string, schema: string): Promise<System> {
  const logger = new Logger(() => () => undefined);
  const utils: WorkerUtils = await makeWorkerUtils({ connectionString, schema, logger });
  await utils.migrate();
  let runners: Runner[] = [];
  return {
    name: 'graphile-worker 0.17',
    submit: async (payloads) => void (await utils.addJobs(payloads.map((payload) => ({ identifier: 'noop', payload })))),
    submitOne: async (payload) => void (await utils.addJob('noop', payload)),
    start: async (count, onStart) => {
      runners = await Promise.all(
        Array.from({ length: count }, () =>
          runGraphile({
            noHandleSignals: true,
            logger,
            taskList: { noop: async (payload) => onStart(payload as Payload) },
            preset: {
              worker: {
                connectionString,
                schema,
                concurrentJobs: Math.max(1, Math.floor(CONCURRENCY / count)),
                maxPoolSize: 10,
                pollInterval: 1_000,
                localQueue: { size: Math.max(2, Math.floor(LOCAL_QUEUE / count)) },
                completeJobBatchDelay: 0,
                failJobBatchDelay: 0,
              },
            },
          }),
        ),
      );
    },
    stop: async () => {
      await Promise.all(runners.map((runner) => runner.stop()));
      runners = [];
    },
    close: async () => void (await utils.release()),
  };
}

async function pgBossSystem(connectionString: string, schema: string): Promise<System> {
  const boss = new PgBoss({ connectionString, schema, max: 10, supervise: false, schedule: false, migrate: true });
  boss.on('error', (error: unknown) => console.error('pg-boss:', error));
  await boss.start();
  const queue = 'noop';
  await boss.createQueue(queue);
  let stopping = false;
  let loops: Promise<void>[] = [];
  let workId: string | undefined;
  return {
    name: 'pg-boss 10 (batch)',
    submit: async (payloads) => boss.insert(payloads.map((data) => ({ name: queue, data }))),
    submitOne: async (payload) => void (await boss.send(queue, payload)),
    start: async (count, onStart) => {
      stopping = false;
      const batchSize = Math.max(1, Math.floor(LOCAL_QUEUE / count));
      loops = Array.from({ length: count }, async () => {
        while (!stopping) {
          const jobs = await boss.fetch<Payload>(queue, { batchSize });
          if (jobs.length === 0) {
            await new Promise((resolve) => setTimeout(resolve, 5));
            continue;
          }
          for (const job of jobs) onStart(job.data);
          await boss.complete(
            queue,
            jobs.map((job) => job.id),
          );
        }
      });
      await Promise.resolve();
    },
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
      if (workId !== undefined) await boss.offWork(queue);
      workId = undefined;
    },
    close: () => boss.stop({ graceful: false, wait: true }),
  };
}

/** pg-boss's own idle worker (it has no wake-up; it polls), for the latency row. */
async function pgBossLatency(connectionString: string, schema: string, samples: number): Promise<number[]> {
  const boss = new PgBoss({ connectionString, schema, max: 4, supervise: false, schedule: false, migrate: true });
  boss.on('error', () => undefined);
  await boss.start();
  await boss.createQueue('latency');
  const started = new Map<number, () => void>();
  await boss.work<Payload>('latency', { pollingIntervalSeconds: 0.5, batchSize: 1 }, async ([job]) => started.get(job!.data.i)?.());
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const done = new Promise<void>((resolve) => started.set(i, resolve));
    const t0 = performance.now();
    await boss.send('latency', { i });
    await done;
    out.push(performance.now() - t0);
  }
  await boss.stop({ graceful: false, wait: true });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Measurements

/** Submits `total` tasks in batches; returns submits per second. */
async function fill(system: System, total: number, batch: number, offset = 0): Promise<number> {
  const t0 = performance.now();
  for (let from = 0; from < total; from += batch) {
    await system.submit(Array.from({ length: Math.min(batch, total - from) }, (_, k) => ({ i: offset + from + k })));
  }
  return Math.round((total * 1000) / (performance.now() - t0));
}

/** Resolves when `count()` reaches `total`; rejects after `timeoutMs`. */
function reached(count: () => number, total: number, timeoutMs: number): { promise: Promise<void>; check: () => void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const timer = setTimeout(() => reject(new Error(`only ${count()} of ${total} tasks ran within ${timeoutMs} ms`)), timeoutMs);
  const check = (): void => {
    if (count() >= total) {
      clearTimeout(timer);
      resolve();
    }
  };
  return { promise, check };
}

/**
 * CPU time so far, in ms: of this process, and of every local process named postgres (all of the
 * server: backends, WAL writer, autovacuum; NaN when the server is not local). On a loaded machine
 * these say what a task costs where wall-clock rates say how much CPU was left over.
 */
function cpuNow(): { node: number; pg: number } {
  const usage = process.cpuUsage();
  let ticks = 0;
  let found = false;
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (!stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).startsWith('postgres')) continue;
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]); // utime + stime
        found = true;
      } catch {
        // exited meanwhile
      }
    }
  } catch {
    // no /proc
  }
  return { node: (usage.user + usage.system) / 1000, pg: found ? ticks * 10 : Number.NaN }; // USER_HZ = 100
}

/** `pg+node` µs per task between two {@link cpuNow} readings. */
function cpuPerTask(from: { node: number; pg: number }, to: { node: number; pg: number }, tasks: number): string {
  const us = (ms: number): string => (Number.isNaN(ms) ? '?' : ((ms * 1000) / tasks).toFixed(0));
  return `${us(to.pg - from.pg)}+${us(to.node - from.node)}`;
}

/** Deep queue: `total` pending, then drain. Returns [submits/s, claims+completions/s, CPU µs/task of the drain]. */
async function deepRun(system: System, claimers: number, total: number): Promise<[number, number, string]> {
  const submitRate = await fill(system, total, SUBMIT_BATCH);
  let ran = 0;
  const all = reached(() => ran, total, 600_000);
  const cpu0 = cpuNow();
  const t0 = performance.now();
  await system.start(claimers, () => {
    ran += 1;
    all.check();
  });
  await all.promise;
  // Read before stop: stopping ends the claimers' connections, and an exited backend's CPU time
  // leaves the sum (this misses only the last completion flush).
  const cpu1 = cpuNow();
  await system.stop(); // the last completions are flushed before the clock stops
  const rate = Math.round((total * 1000) / (performance.now() - t0));
  return [submitRate, rate, cpuPerTask(cpu0, cpu1, total)];
}

/** Shallow queue: idle claimers, a producer adds `total` in small batches while they drain. */
async function shallowRun(system: System, claimers: number, total: number): Promise<number> {
  let ran = 0;
  const all = reached(() => ran, total, 600_000);
  await system.start(claimers, () => {
    ran += 1;
    all.check();
  });
  const t0 = performance.now();
  await fill(system, total, PRODUCER_BATCH, 1_000_000);
  await all.promise;
  await system.stop();
  return Math.round((total * 1000) / (performance.now() - t0));
}

/** One idle claimer; each task is added after the previous one started. Latencies in ms. */
async function latencyRun(system: System, samples: number): Promise<number[]> {
  const started = new Map<number, () => void>();
  await system.start(1, (payload) => started.get(payload.i)?.());
  // Let the claimer find the queue empty and go idle.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const done = new Promise<void>((resolve) => started.set(2_000_000 + i, resolve));
    const t0 = performance.now();
    await system.submitOne({ i: 2_000_000 + i });
    await done;
    out.push(performance.now() - t0);
    // A gap, so that the claimer is idle again (not still busy from the last task) when the next comes.
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await system.stop();
  return out;
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 100) / 100;
}

// ---------------------------------------------------------------------------------------------

/** Runs the benchmark and prints one table. */
export async function run(options: BenchOptions): Promise<BenchReport> {
  const quick = options.quick;
  const ratios: BenchRatio[] = [];
  const sized = Number(process.env.CLAIM_BENCH_TASKS) || undefined;
  const deep = sized ?? (quick ? 2_000 : 100_000);
  const shallow = sized ?? (quick ? 2_000 : 50_000);
  const samples = quick ? 20 : 300;
  const claimerCounts = quick ? [1] : [1, 4];
  const only = (process.env.CLAIM_BENCH_SYSTEMS ?? '').split(',').map((part) => part.trim()).filter((part) => part !== '');
  const wanted = (system: 'converge' | 'graphile' | 'pgboss'): boolean => only.length === 0 || only.includes(system);
  const rows: Row[] = [];
  const row = (fields: Partial<Row> & Pick<Row, 'system' | 'durability' | 'claimers'>): Row => {
    const full: Row = { 'submit/s': '', 'deep claims/s': '', 'shallow claims/s': '', 'p50 ms': '', 'p99 ms': '', 'deep cpu µs/task': '', note: '', ...fields };
    rows.push(full);
    console.log(`  ${full.system} [${full.durability}] ×${full.claimers}: submit ${String(full['submit/s'])}/s, deep ${String(full['deep claims/s'])}/s, shallow ${String(full['shallow claims/s'])}/s, p50 ${String(full['p50 ms'])} ms, p99 ${String(full['p99 ms'])} ms, deep cpu ${full['deep cpu µs/task']} µs/task (pg+node)`);
    return full;
  };

  // Best case: no database, one process.
  if (wanted('converge')) {
    const memory = new MemoryStore({ maxFinishedTasks: 1_000 });
    const system = convergeSystem('converge MemoryStore (best case)', () => memory, { idlePollMs: 1_000 });
    const [submitRate, deepRate] = await deepRun(system, 1, deep);
    const shallowRate = await shallowRun(system, 1, shallow);
    const latencies = await latencyRun(system, samples);
    row({ system: system.name, durability: 'in process', claimers: 1, 'submit/s': submitRate, 'deep claims/s': deepRate, 'shallow claims/s': shallowRate, 'p50 ms': percentile(latencies, 50), 'p99 ms': percentile(latencies, 99), note: 'best case: no database, no network' });
    await memory.close();

    // The single-task hot path, as before batching (issue 4's goal: ≥ 1 M claims/s in process).
    const cycle = new TaskManager({ store: new MemoryStore() });
    const cycles = quick ? 20_000 : 300_000;
    const once = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        await cycle.submit({ payload: i });
        const task = (await cycle.claimNext('hot'))!;
        await cycle.report('hot', task.id, i, { fencingToken: task.fencingToken });
      }
    };
    await once(cycles / 4); // warm-up
    const c0 = performance.now();
    await once(cycles);
    row({ system: 'converge MemoryStore, one task at a time', durability: 'in process', claimers: 1, 'shallow claims/s': Math.round((cycles * 1000) / (performance.now() - c0)), note: 'submit → claimNext → report per task; goal ≥ 1 M/s (issue 4)' });
    await cycle.close();

    const dir = mkdtempSync(join(tmpdir(), 'converge-claim-bench-'));
    try {
      const path = join(dir, 'bench.sqlite');
      const sqlite = convergeSystem('converge SqliteStore', () => new SqliteStore(path), { idlePollMs: 50 });
      const [sqliteSubmit, sqliteDeep] = await deepRun(sqlite, 1, quick ? deep : deep / 5);
      row({ system: sqlite.name, durability: 'WAL, synchronous=NORMAL', claimers: 1, 'submit/s': sqliteSubmit, 'deep claims/s': sqliteDeep, note: `one process; ${quick ? deep : deep / 5} tasks` });
      await sqlite.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const url = process.env.CONVERGE_PG_URL;
  if (url === undefined || url === '') {
    console.log('  PostgreSQL parts skipped: set CONVERGE_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test)');
    console.table(rows);
    return { ratios };
  }
  const variants = quick ? [{ label: 'default', url }] : [{ label: 'default', url }, { label: 'synchronous_commit=off', url: withOption(url, 'synchronous_commit=off') }];
  const schemas: string[] = [];
  const fresh = (prefix: string): string => {
    const schema = `${prefix}_${randomBytes(4).toString('hex')}`;
    schemas.push(schema);
    return schema;
  };
  const makers: { key: 'converge' | 'graphile' | 'pgboss'; make: (connectionString: string) => Promise<System> }[] = [
    {
      key: 'converge',
      make: async (connectionString) => {
        const schema = fresh('cv_bench');
        return convergeSystem('converge PostgresStore', () => new PostgresStore({ connectionString, schema, max: 4 }), { idlePollMs: 1_000 });
      },
    },
    { key: 'graphile', make: (connectionString) => graphileSystem(connectionString, fresh('cv_bench_gw')) },
    { key: 'pgboss', make: (connectionString) => pgBossSystem(connectionString, fresh('cv_bench_boss')) },
  ];
  try {
    for (const variant of variants) {
      for (const claimers of claimerCounts) {
        const byKey = new Map<string, Row>();
        for (const maker of makers.filter((m) => wanted(m.key))) {
          // A fresh schema per row, so that no system works on another's leftovers (dead tuples).
          let system = await maker.make(variant.url);
          const [submitRate, deepRate, deepCpu] = await deepRun(system, claimers, deep);
          await system.close();
          system = await maker.make(variant.url);
          const shallowRate = await shallowRun(system, claimers, shallow);
          let latencies: number[] = [];
          if (claimers === 1 && maker.key !== 'pgboss') latencies = await latencyRun(system, samples);
          await system.close();
          if (claimers === 1 && maker.key === 'pgboss') latencies = await pgBossLatency(variant.url, fresh('cv_bench_boss_lat'), Math.min(samples, 20));
          byKey.set(
            maker.key,
            row({
              system: system.name,
              durability: variant.label,
              claimers,
              'submit/s': submitRate,
              'deep claims/s': deepRate,
              'deep cpu µs/task': deepCpu,
              'shallow claims/s': shallowRate,
              'p50 ms': latencies.length > 0 ? percentile(latencies, 50) : '',
              'p99 ms': latencies.length > 0 ? percentile(latencies, 99) : '',
              note: maker.key === 'pgboss' && claimers === 1 ? 'latency: polling every 0.5 s (its minimum)' : '',
            }),
          );
        }
        const ours = byKey.get('converge');
        const theirs = byKey.get('graphile');
        if (ours !== undefined && theirs !== undefined) {
          const ratio = (a: number | string, b: number | string): string => (typeof a === 'number' && typeof b === 'number' ? `${(a / b).toFixed(2)}×` : '?');
          ours.note = `vs graphile: submit ${ratio(ours['submit/s'], theirs['submit/s'])}, deep ${ratio(ours['deep claims/s'], theirs['deep claims/s'])}, shallow ${ratio(ours['shallow claims/s'], theirs['shallow claims/s'])} (goal ≥ ${GOAL.vsGraphile}×)`;
          if (claimers === 1 && typeof ours['p50 ms'] === 'number') ours.note += `; p50 ${ours['p50 ms'] <= GOAL.latencyP50Ms ? 'meets' : 'MISSES'} ≤ ${GOAL.latencyP50Ms} ms`;
          // For the closing table of `converge bench`: each figure against graphile-worker's.
          const columns = [
            ['submit/s', 'submits', 'tasks/s'],
            ['deep claims/s', 'claims + completions, deep queue', 'tasks/s'],
            ['shallow claims/s', 'claims + completions, shallow queue', 'tasks/s'],
          ] as const;
          for (const [column, what, unit] of columns) {
            const value = ours[column];
            const baselineValue = theirs[column];
            if (typeof value !== 'number' || typeof baselineValue !== 'number') continue;
            ratios.push({ measure: `PostgresStore ${what}, ${claimers} claimer(s), ${variant.label}`, value, unit, baseline: 'graphile-worker 0.17', baselineValue, goal: GOAL.vsGraphile });
          }
        }
      }
    }
  } finally {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
  console.table(rows);
  return { ratios };
}

/** `url` with a server setting for every session (libpq's `options=-c name=value`). */
function withOption(url: string, setting: string): string {
  const parsed = new URL(url);
  parsed.searchParams.append('options', `-c ${setting}`);
  return parsed.toString();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes('--quick') });
  process.exit();
}
