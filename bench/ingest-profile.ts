/**
 * Profiling harness for the engine's ingest path (issue 10): the ingest bench's workload, fired as
 * `void dispatchChange(batch of 1,024)` and then `waitForQuiescence`, a few rounds, printing events/s
 * and process CPU µs per event. Run under `node --cpu-prof` to profile both threads:
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/ingest-profile.ts [subscriptions] [events]
 *
 * `YOUNG_MB=n` sets the engine's `resourceLimits.convergence.maxYoungGenerationSizeMb` (0: V8's default).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createEngine, type PageChangeEvent } from '../src/main/index.js';
import { events, predicates } from './ingest-mix.js';

const subscriptions = Number(process.argv[2] ?? 10_000);
const total = Number(process.argv[3] ?? 200_000);
const BATCH = 1024;
const ROUNDS = Number(process.argv[4] ?? 5);

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
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  const start = performance.now();
  for (const batch of batches) void engine.dispatchChange(batch);
  const report = await engine.waitForQuiescence({ timeoutMs: 120_000 });
  if (report === null) throw new Error('no quiescence');
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const loop = performance.eventLoopUtilization(elu);
  console.log(`round ${round}: ${((total / ms) * 1000 / 1000).toFixed(1)} k events/s, ${(calls / total).toFixed(2)} dispatches/event, process CPU ${((used.user + used.system) / total).toFixed(2)} µs/event, wall ${(ms * 1000 / total).toFixed(2)} µs/event, main thread busy ${((loop.active * 1000) / total).toFixed(2)} µs/event (${(loop.utilization * 100).toFixed(0)} %)`);
}
if (session !== undefined) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(profileTo!, JSON.stringify(profile));
}
await engine.close();
