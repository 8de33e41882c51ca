/**
 * Claims per second through the coordination layer: one claim is a full cycle `submit → claimNext →
 * report` (with the fencing token), on MemoryStore, SqliteStore and PostgresStore, with 1 and 4
 * claimers. Baseline in the same run: pg-boss 10 (`send → fetch → complete`) on the same PostgreSQL
 * database, with the same claimer counts.
 *
 * Claimers:
 * - memory, postgres, pg-boss: 4 claimers are 4 async loops in this process. For PostgreSQL that is
 *   real database concurrency (each store and pg-boss have a pool of 10 connections), and it is how
 *   pg-boss itself runs concurrent workers.
 * - sqlite: better-sqlite3 is synchronous, so async loops in one process never overlap; 4 claimers
 *   are 4 child processes (this file, `--sqlite-child`) on one database file, contending for SQLite's
 *   write lock as separate services would.
 * Every loop submits one task, then claims one (any loop's), then reports it: claimNext never finds
 * the queue empty, so each iteration is exactly `batch` claims.
 *
 * PostgreSQL rows run twice: with the server's default durability (every commit waits for its WAL
 * flush, so the disk's fsync latency bounds both systems), and with `synchronous_commit=off` for both
 * systems' sessions, which takes the disk out and shows each system's own cost per claim.
 *
 *   npx tsx bench/claim.bench.ts [--quick]      (PostgreSQL parts need CONVERGE_PG_URL)
 *
 * `CLAIM_BENCH_STORES=memory` (or any comma-separated subset of `memory,sqlite,postgres`) runs only
 * those parts; the default runs all of them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { Bench } from 'tinybench';
import { MemoryStore, PostgresStore, SqliteStore, TaskManager, type TaskStore } from '../src/coordination/index.js';

/** Options every bench's `run` takes (see bench/run.ts). */
export interface BenchOptions {
  quick: boolean;
}

/** Goals from issue 4, on the project's 2-core machines. */
const GOAL = { memoryClaimsPerSec: 1_000_000, vsPgBoss: 2 } as const;
const SQLITE_CHILD_FLAG = '--sqlite-child';
const CLAIMERS = [1, 4] as const;

interface Row {
  store: string;
  claimers: number;
  'claims/s': number;
  'vs pg-boss': string;
  note: string;
}

/** A cycle source: runs `cycles` claims split over `claimers` loops. */
type Cycles = (cycles: number, claimers: number) => Promise<void>;

interface Settings {
  readonly time: number;
  readonly warmupTime: number;
  readonly iterations: number;
}

/** Times `fn` (one call = `batch` claims) with tinybench and returns claims per second. */
async function claimsPerSecond(name: string, batch: number, fn: () => Promise<void>, settings: Settings): Promise<number> {
  const bench = new Bench({ name, time: settings.time, warmupTime: settings.warmupTime, iterations: settings.iterations, warmupIterations: 2 });
  bench.add(name, fn);
  await bench.run();
  const result = bench.tasks[0]?.result;
  if (result === undefined || result.state !== 'completed') throw new Error(`${name}: benchmark did not complete (${String(result?.state)})`);
  return Math.round((batch * 1000) / result.latency.mean);
}

/** `claimers` loops of submit → claimNext → report over one TaskManager, `cycles` in all. */
function taskManagerCycles(tm: TaskManager): Cycles {
  return async (cycles, claimers) => {
    const share = Math.floor(cycles / claimers);
    await Promise.all(
      Array.from({ length: claimers }, async (_, k) => {
        const agent = `claimer-${k}`;
        for (let i = 0; i < share; i++) {
          await tm.submit({ payload: i });
          let task = await tm.claimNext(agent);
          // Cannot happen (each loop submits before it claims); kept so the count stays exact.
          while (task === null) task = await tm.claimNext(agent);
          await tm.report(agent, task.id, i, { fencingToken: task.fencingToken });
        }
      }),
    );
  };
}

/** The same work on pg-boss: send → fetch → complete. */
function pgBossCycles(boss: PgBoss, queue: string): Cycles {
  return async (cycles, claimers) => {
    const share = Math.floor(cycles / claimers);
    await Promise.all(
      Array.from({ length: claimers }, async () => {
        for (let i = 0; i < share; i++) {
          await boss.send(queue, { i });
          let jobs = await boss.fetch(queue);
          while (jobs.length === 0) jobs = await boss.fetch(queue);
          await boss.complete(queue, jobs[0]!.id, { i });
        }
      }),
    );
  };
}

// ---------------------------------------------------------------------------------------------
// SQLite child processes

interface ChildRequest {
  cycles: number;
}

/** Entry of a `--sqlite-child` process: runs the requested cycles on its own SqliteStore. */
async function sqliteChild(path: string): Promise<void> {
  const store = new SqliteStore(path);
  const tm = new TaskManager({ store });
  const cycles = taskManagerCycles(tm);
  process.on('message', (message: ChildRequest | 'exit') => {
    if (message === 'exit') {
      void store.close().then(() => process.exit(0));
      return;
    }
    cycles(message.cycles, 1).then(
      () => process.send!('done'),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
  process.send!('ready');
}

/** Four processes on one file; one call runs `cycles` claims split between them. */
async function startSqliteChildren(path: string, count: number): Promise<{ cycles: Cycles; stop: () => Promise<void> }> {
  const file = fileURLToPath(import.meta.url);
  const children: ChildProcess[] = Array.from({ length: count }, () => fork(file, [SQLITE_CHILD_FLAG, path], { execArgv: ['--import', 'tsx'], stdio: 'inherit' }));
  const next = (child: ChildProcess): Promise<void> =>
    new Promise((resolve, reject) => {
      const onMessage = (): void => {
        child.off('exit', onExit);
        resolve();
      };
      const onExit = (code: number | null): void => {
        child.off('message', onMessage);
        reject(new Error(`sqlite child exited with ${String(code)}`));
      };
      child.once('message', onMessage);
      child.once('exit', onExit);
    });
  await Promise.all(children.map(next)); // every child has opened the database
  return {
    cycles: async (cycles) => {
      const share = Math.floor(cycles / count);
      const done = children.map(next);
      for (const child of children) child.send({ cycles: share } satisfies ChildRequest);
      await Promise.all(done);
    },
    stop: async () => {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              child.once('exit', () => resolve());
              child.send('exit');
            }),
        ),
      );
    },
  };
}

// ---------------------------------------------------------------------------------------------

/** Runs the benchmark and prints one table. */
export async function run(options: BenchOptions): Promise<void> {
  const quick = options.quick;
  const settings: Settings = quick ? { time: 150, warmupTime: 30, iterations: 2 } : { time: 1500, warmupTime: 300, iterations: 5 };
  const dbSettings: Settings = quick ? { time: 150, warmupTime: 0, iterations: 1 } : { time: 4000, warmupTime: 500, iterations: 3 };
  const rows: Row[] = [];
  const only = (process.env.CLAIM_BENCH_STORES ?? '').split(',').map((part) => part.trim()).filter((part) => part !== '');
  const wanted = (store: 'memory' | 'sqlite' | 'postgres'): boolean => only.length === 0 || only.includes(store);
  const add = (store: string, claimers: number, perSec: number, note = ''): void => {
    rows.push({ store, claimers, 'claims/s': perSec, 'vs pg-boss': '', note });
    console.log(`  ${store} ×${claimers}: ${perSec.toLocaleString('en-US')} claims/s`);
  };

  // Memory: the in-process hot path.
  for (const claimers of wanted('memory') ? CLAIMERS : []) {
    const store = new MemoryStore();
    const batch = quick ? 2_000 : 20_000;
    const cycles = taskManagerCycles(new TaskManager({ store }));
    const rates: number[] = [];
    for (let round = 0; round < (quick ? 1 : 3); round++) rates.push(await claimsPerSecond(`memory ×${claimers}`, batch, () => cycles(batch, claimers), settings));
    add('memory', claimers, median(rates), `goal ≥ ${GOAL.memoryClaimsPerSec.toLocaleString('en-US')}/s; median of ${rates.length}`);
    await store.close();
  }

  if (wanted('sqlite')) await sqliteRows(quick, dbSettings, add);

  // PostgreSQL against pg-boss, same database, same run.
  const url = process.env.CONVERGE_PG_URL;
  if (!wanted('postgres')) {
    // Not asked for (CLAIM_BENCH_STORES).
  } else if (url === undefined || url === '') {
    console.log('  PostgreSQL parts skipped: set CONVERGE_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to measure PostgresStore against pg-boss');
  } else {
    const variants = quick ? [{ label: '', connectionString: url }] : [{ label: '', connectionString: url }, { label: ' (synchronous_commit=off, both)', connectionString: withOption(url, 'synchronous_commit=off') }];
    for (const variant of variants) await postgresRows(variant.connectionString, variant.label, quick, quick ? 1 : 3, quick ? dbSettings : { ...dbSettings, time: 2000 }, add, rows);
  }

  console.table(rows);
  const memoryRates = rows.filter((row) => row.store === 'memory').map((row) => row['claims/s']);
  if (memoryRates.length === 0) return;
  const memory = Math.min(...memoryRates);
  console.log(`memory: ${memory >= GOAL.memoryClaimsPerSec ? 'meets' : 'MISSES'} the goal of ${GOAL.memoryClaimsPerSec.toLocaleString('en-US')} claims/s (slowest row ${memory.toLocaleString('en-US')})`);
}

/** SQLite: one file; 1 claimer in this process, 4 claimers as 4 processes. */
async function sqliteRows(quick: boolean, settings: Settings, add: (store: string, claimers: number, perSec: number, note?: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'converge-claim-bench-'));
  try {
    const batch = quick ? 200 : 2_000;
    const single = new SqliteStore(join(dir, 'single.sqlite'));
    const cycles = taskManagerCycles(new TaskManager({ store: single }));
    add('sqlite', 1, await claimsPerSecond('sqlite ×1', batch, () => cycles(batch, 1), settings), 'WAL, synchronous=NORMAL');
    await single.close();

    const path = join(dir, 'shared.sqlite');
    await new SqliteStore(path).close(); // create the schema before the children race to open it
    const children = await startSqliteChildren(path, 4);
    try {
      add('sqlite', 4, await claimsPerSecond('sqlite ×4', batch, () => children.cycles(batch, 4), settings), '4 processes, one file');
    } finally {
      await children.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function postgresRows(
  connectionString: string,
  label: string,
  quick: boolean,
  rounds: number,
  settings: Settings,
  add: (store: string, claimers: number, perSec: number, note?: string) => void,
  rows: Row[],
): Promise<void> {
  const tag = randomBytes(4).toString('hex');
  const schema = `cv_bench_${tag}`;
  const bossSchema = `cv_bench_boss_${tag}`;
  const batch = quick ? 40 : 400;
  const store: TaskStore = new PostgresStore({ connectionString, schema, max: 10 });
  const boss = new PgBoss({ connectionString, schema: bossSchema, max: 10, supervise: false, schedule: false, migrate: true });
  boss.on('error', (error: unknown) => console.error('pg-boss:', error));
  try {
    await boss.start();
    await boss.createQueue('claims');
    const ours = taskManagerCycles(new TaskManager({ store }));
    const theirs = pgBossCycles(boss, 'claims');
    for (const claimers of CLAIMERS) {
      // Alternate the two systems over several rounds and keep each one's median: the disk and the
      // machine are shared, and a drift in their load must not favour whichever ran second.
      const bossRates: number[] = [];
      const ourRates: number[] = [];
      for (let round = 0; round < rounds; round++) {
        bossRates.push(await claimsPerSecond(`pg-boss ×${claimers}${label}`, batch, () => theirs(batch, claimers), settings));
        ourRates.push(await claimsPerSecond(`postgres ×${claimers}${label}`, batch, () => ours(batch, claimers), settings));
      }
      const bossRate = median(bossRates);
      const ourRate = median(ourRates);
      add(`pg-boss${label}`, claimers, bossRate, `baseline; median of ${rounds}`);
      add(`postgres${label}`, claimers, ourRate, `goal ≥ ${GOAL.vsPgBoss}× pg-boss; median of ${rounds}`);
      rows.at(-1)!['vs pg-boss'] = `${(ourRate / bossRate).toFixed(2)}×`;
    }
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => undefined);
    await store.close();
    const client = new pg.Client({ connectionString });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; DROP SCHEMA IF EXISTS ${bossSchema} CASCADE`);
    await client.end();
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
}

/** `url` with a server setting for every session (libpq's `options=-c name=value`). */
function withOption(url: string, setting: string): string {
  const parsed = new URL(url);
  parsed.searchParams.append('options', `-c ${setting}`);
  return parsed.toString();
}

if (process.argv[2] === SQLITE_CHILD_FLAG) {
  await sqliteChild(process.argv[3]!);
} else if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes('--quick') });
}
