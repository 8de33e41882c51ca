/**
 * Profiling harness for the engine's ingest path (issue 10): the ingest bench's workload, fired as
 * `void dispatchChange(batch of 1,024)` and then `waitForQuiescence`, a few rounds, printing events/s
 * and process CPU µs per event. Run under `node --cpu-prof` to profile both threads:
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/ingest-profile.ts [subscriptions] [events] [rounds]
 *
 * Each round prints, besides wall clock, the CPU time per event of each thread (from
 * /proc/self/task/<tid>/stat: the main thread, the busiest other thread — the convergence worker —
 * and the rest, mostly GC helpers) and how long the submitting loop itself took.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { PageChangeEvent } from '../src/main/index.js';
import { events, predicates } from './ingest-mix.js';

// DIST=1: the built package (dist/, `npm run build` first), whose profiles have real line numbers.
const { createEngine } = (process.env.DIST === '1' ? await import(`${'../dist/main/index.js'}`) : await import('../src/main/index.js')) as typeof import('../src/main/index.js');
const subscriptions = Number(process.argv[2] ?? 10_000);
const total = Number(process.argv[3] ?? 200_000);
const BATCH = 1024;
const ROUNDS = Number(process.argv[4] ?? 5);

/** CPU ticks (utime + stime) of every thread of this process, by thread id. */
function threadTicks(): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, [Number(fields[11]), Number(fields[12])]);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/**
 * µs of CPU per event (user + system, and system alone): the main thread, the busiest other thread
 * (the convergence worker), the rest.
 */
function perThread(before: Map<string, [number, number]>, after: Map<string, [number, number]>, events: number): string {
  const tick = 1e6 / 100; // USER_HZ
  const main = String(process.pid);
  let worker: [number, number] = [0, 0];
  const rest: [number, number] = [0, 0];
  let mainTicks: [number, number] = [0, 0];
  for (const [tid, [user, sys]] of after) {
    const [user0, sys0] = before.get(tid) ?? [0, 0];
    const used: [number, number] = [user - user0, sys - sys0];
    if (tid === main) mainTicks = used;
    else if (used[0] + used[1] > worker[0] + worker[1]) {
      rest[0] += worker[0];
      rest[1] += worker[1];
      worker = used;
    } else {
      rest[0] += used[0];
      rest[1] += used[1];
    }
  }
  const f = ([user, sys]: [number, number]): string => `${(((user + sys) * tick) / events).toFixed(2)} (sys ${((sys * tick) / events).toFixed(2)})`;
  return `threads µs/event: main ${f(mainTicks)}, worker ${f(worker)}, other ${f(rest)}`;
}

let calls = 0;
const maxInFlight = process.env.MAX_IN_FLIGHT === undefined ? undefined : Number(process.env.MAX_IN_FLIGHT);
const youngMb = process.env.YOUNG_MB === undefined ? undefined : Number(process.env.YOUNG_MB);
const engine = await createEngine({
  episodeBudget: 1e9,
  changeFeedSize: 1024,
  ...(maxInFlight === undefined ? {} : { maxInFlight }),
  ...(youngMb === undefined ? {} : { resourceLimits: { convergence: { maxYoungGenerationSizeMb: youngMb } } }),
});
for (const predicate of predicates(subscriptions)) await engine.subscribe({ predicate, handler: () => void calls++ });
// Generated up front, so that a profile of the main thread shows the engine, not the workload.
const rounds: PageChangeEvent[][][] = [];
for (let round = 0; round < ROUNDS; round++) {
  const all = events(total, round * total, subscriptions);
  const batches: PageChangeEvent[][] = [];
  for (let i = 0; i < all.length; i += BATCH) batches.push(all.slice(i, i + BATCH));
  rounds.push(batches);
}
// PROFILE_MAIN=file: a CPU profile of the main thread over the rounds only (no set-up, no workload).
const profileTo = process.env.PROFILE_MAIN;
const session = profileTo === undefined ? undefined : new Session();
if (session !== undefined) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
}
for (let round = 0; round < ROUNDS; round++) {
  const batches = rounds[round]!;
  rounds[round] = [];
  calls = 0;
  const ticks = threadTicks();
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  const start = performance.now();
  for (const batch of batches) void engine.dispatchChange(batch);
  const submitted = performance.now() - start;
  const report = await engine.waitForQuiescence({ timeoutMs: 120_000 });
  if (report === null) throw new Error('no quiescence');
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const loop = performance.eventLoopUtilization(elu);
  const threads = perThread(ticks, threadTicks(), total);
  console.log(`round ${round}: ${((total / ms) * 1000 / 1000).toFixed(1)} k events/s, ${(calls / total).toFixed(2)} dispatches/event, process CPU ${((used.user + used.system) / total).toFixed(2)} µs/event, wall ${(ms * 1000 / total).toFixed(2)} µs/event (submit loop ${(submitted * 1000 / total).toFixed(2)}), main thread busy ${((loop.active * 1000) / total).toFixed(2)} µs/event (${(loop.utilization * 100).toFixed(0)} %); ${threads}; load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
}
if (session !== undefined) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(profileTo!, JSON.stringify(profile));
}
await engine.close();
