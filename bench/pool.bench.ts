/**
 * No-op tasks (`add(a, b)`) with 64 in flight, through three pools in the same run:
 * - colony: `TaskPool.call` — each task submitted to and claimed through a TaskManager (memory
 *   store), then pulled by pool threads from the shared task table (CAS claim, msgpack slots);
 * - piscina: raw `piscina.run({ a, b })` (one postMessage per task each way), the baseline;
 * - tinypool: `tinypool.run({ a, b })`.
 * Same thread count for all. A closed loop keeps exactly 64 tasks in flight; each row is the median
 * of the rounds (variants alternate, so load on a shared machine hits all of them alike). p99 is the
 * latency from submit to settle.
 *
 *   npx tsx bench/pool.bench.ts [--quick]
 *
 * Goal (issue 9): colony ≥ 2× raw piscina in tasks/s, p99 ≤ 3 ms.
 */
import type { BenchRatio, BenchReport } from './run.js';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import Tinypool from 'tinypool';
import { existsSync } from 'node:fs';
import type { TaskPool as TaskPoolClass } from '../src/main/task-pool.js';

/** Options every bench's `run` takes (see bench/run.ts). */
export interface BenchOptions {
  quick: boolean;
}

const GOAL = { vsPiscina: 2, p99Ms: 3 } as const;
const IN_FLIGHT = 64;
const WORKER = new URL('./workers/add.mjs', import.meta.url);

type Submit = (a: number, b: number) => Promise<unknown>;

interface Variant {
  readonly name: string;
  readonly submit: Submit;
  close(): Promise<void>;
}

interface Sample {
  readonly perSec: number;
  readonly p99Ms: number;
}

/** Runs `total` tasks with IN_FLIGHT outstanding; returns throughput and p99 latency. */
async function closedLoop(submit: Submit, total: number): Promise<Sample> {
  const latencies = new Float64Array(total);
  let started = 0;
  let done = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      if (started >= total) return;
      const i = started++;
      const begin = performance.now();
      submit(i, 1).then((value) => {
        if (value !== i + 1) throw new Error(`wrong result ${String(value)} for task ${i}`);
        latencies[i] = performance.now() - begin;
        if (++done === total) resolve();
        else next();
      }, reject);
    };
    for (let k = 0; k < IN_FLIGHT; k++) next();
  });
  const seconds = (performance.now() - t0) / 1000;
  const sorted = Array.from(latencies).sort((x, y) => x - y);
  return { perSec: total / seconds, p99Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]! };
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * The colony pool as users get it: the built `dist/` when present (`npm run build`), else the
 * source through tsx — whose transpiled output (keepNames wrappers on every closure) costs the main
 * thread noticeably per task, so the source figures understate the pool.
 */
async function loadTaskPool(): Promise<{ TaskPool: typeof TaskPoolClass; from: string }> {
  const built = new URL('../dist/main/task-pool.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return { TaskPool: ((await import(built.href)) as { TaskPool: typeof TaskPoolClass }).TaskPool, from: 'dist' };
  return { TaskPool: (await import('../src/main/task-pool.js')).TaskPool, from: 'src (tsx)' };
}

async function variants(threads: number, TaskPool: typeof TaskPoolClass): Promise<Variant[]> {
  const colony = new TaskPool(undefined, { minThreads: threads, maxThreads: threads, lingerMs: 200 });
  const module = WORKER.href;
  const piscina = new Piscina({ filename: fileURLToPath(WORKER), minThreads: threads, maxThreads: threads });
  const tinypool = new Tinypool({ filename: pathToFileURL(fileURLToPath(WORKER)).href, minThreads: threads, maxThreads: threads });
  return [
    { name: 'colony (TaskManager claim + shared table)', submit: (a, b) => colony.call(module, 'add', [a, b]), close: () => colony.destroy() },
    { name: 'piscina.run (baseline)', submit: (a, b) => piscina.run({ a, b }), close: () => piscina.destroy() },
    { name: 'tinypool.run', submit: (a, b) => tinypool.run({ a, b }), close: () => tinypool.destroy() },
  ];
}

export async function run(options: BenchOptions): Promise<BenchReport> {
  const threads = Math.max(1, availableParallelism());
  const total = options.quick ? 10_000 : 50_000;
  const rounds = options.quick ? 3 : 5;
  const { TaskPool, from } = await loadTaskPool();
  const pools = await variants(threads, TaskPool);
  const samples = new Map<string, Sample[]>(pools.map((p) => [p.name, []]));
  try {
    // Warm-up: threads started, modules loaded, JIT settled.
    for (const pool of pools) await closedLoop(pool.submit, options.quick ? 10_000 : 20_000);
    for (let round = 0; round < rounds; round++) {
      for (const pool of pools) samples.get(pool.name)!.push(await closedLoop(pool.submit, total));
    }
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  const base = median(samples.get(pools[1]!.name)!.map((s) => s.perSec));
  const rows = pools.map((pool) => {
    const s = samples.get(pool.name)!;
    const perSec = median(s.map((x) => x.perSec));
    return {
      pool: pool.name,
      'tasks/s': Math.round(perSec),
      'p99 ms': Number(median(s.map((x) => x.p99Ms)).toFixed(2)),
      'vs piscina': `${(perSec / base).toFixed(2)}×`,
    };
  });
  console.log(`${threads} threads, ${IN_FLIGHT} in flight, ${total} tasks per round, median of ${rounds} round(s); colony pool from ${from}`);
  console.table(rows);
  const colony = rows[0]!;
  const ratio = colony['tasks/s'] / base;
  console.log(
    `goal: colony ≥ ${GOAL.vsPiscina}× piscina → ${ratio.toFixed(2)}× (${ratio >= GOAL.vsPiscina ? 'met' : 'NOT met'}); ` +
      `p99 ≤ ${GOAL.p99Ms} ms → ${colony['p99 ms']} ms (${colony['p99 ms'] <= GOAL.p99Ms ? 'met' : 'NOT met'})`,
  );
  // Against each baseline pool (piscina first, which carries the goal), measured in this run.
  const ratios: BenchRatio[] = rows.slice(1).map((row, i) => ({
    measure: 'colony pool, no-op tasks, 64 in flight',
    value: colony['tasks/s'],
    unit: 'tasks/s',
    baseline: row.pool,
    baselineValue: row['tasks/s'],
    ...(i === 0 ? { goal: GOAL.vsPiscina } : {}),
  }));
  return { ratios };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes('--quick') });
  process.exit();
}
