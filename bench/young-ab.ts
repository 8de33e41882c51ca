/**
 * A/B of the convergence worker's young-generation cap (`resourceLimits.convergence.maxYoungGenerationSizeMb`) on the
 * ingest workload (bench/ingest-mix.ts): CPU time per event of the convergence worker's thread and of
 * the main thread, read from /proc/self/task (CPU time, not wall clock: steadier on a shared machine),
 * plus the process's peak RSS. Runs the built package.
 *
 *   npx tsc -p tsconfig.build.json && npx tsx bench/young-ab.ts <young MB, 0 = V8 default> [subscriptions] [events] [rounds]
 *
 * `OLD_MB=n` sets its `maxOldGenerationSizeMb` too (0: V8's default; else the engine's default applies).
 */
import { readdirSync, readFileSync } from 'node:fs';
import type * as Converge from '../src/main/index.js';
import { events, predicates } from './ingest-mix.js';

const youngMb = Number(process.argv[2] ?? 8);
const oldMb = process.env.OLD_MB === undefined ? undefined : Number(process.env.OLD_MB);
const subscriptions = Number(process.argv[3] ?? 1_000);
const total = Number(process.argv[4] ?? 200_000);
const ROUNDS = Number(process.argv[5] ?? 4);
const BATCH = 1024;
const api = (await import(new URL('../dist/main/index.js', import.meta.url).href)) as typeof Converge;

const TICK_US = 1e6 / 100; // USER_HZ
const tids = (): Set<string> => new Set(readdirSync('/proc/self/task'));
/** user + system CPU of one thread, µs. */
const cpuOf = (tid: string): number => {
  const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
};

const before = tids();
const engine = await api.createEngine({ episodeBudget: 1e9, resourceLimits: { convergence: { maxYoungGenerationSizeMb: youngMb, ...(oldMb === undefined ? {} : { maxOldGenerationSizeMb: oldMb }) } } });
const workerTids = [...tids()].filter((t) => !before.has(t));
let calls = 0;
for (const predicate of predicates(subscriptions)) await engine.subscribe({ predicate, handler: () => void calls++ });
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
const rows: string[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const all = events(total, round * total, subscriptions);
  const batches: Converge.PageChangeEvent[][] = [];
  for (let i = 0; i < all.length; i += BATCH) batches.push(all.slice(i, i + BATCH));
  const w0 = workerTids.reduce((s, t) => s + cpuOf(t), 0);
  const m0 = cpuOf(String(process.pid));
  for (const batch of batches) void engine.dispatchChange(batch);
  await engine.waitForQuiescence({ timeoutMs: 300_000 });
  const w = (workerTids.reduce((s, t) => s + cpuOf(t), 0) - w0) / total;
  const m = (cpuOf(String(process.pid)) - m0) / total;
  if (round > 0) rows.push(`worker ${w.toFixed(2)} main ${m.toFixed(2)}`);
}
clearInterval(sampler);
const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
console.log(`young ${youngMb} MB, old ${oldMb ?? 'default'} MB, ${subscriptions} subs: CPU µs/event ${rows.join(' | ')}; peak RSS ${Math.round(peak / 1e6)} MB; load ${load}; calls ${calls}`);
await engine.close();
