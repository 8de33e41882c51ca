/**
 * Ingest benchmark (issue 3): dispatchChange batches → convergence worker (match, limit, damp) →
 * main-thread handlers, at 10 / 1k / 10k / 100k subscriptions, against a single-threaded
 * EventEmitter with a linear predicate scan measured in the same run. Also: latency under an
 * offered load of 100k events/s, and how long after the last handler settles quiescence is
 * announced.
 *
 *   npx tsx bench/ingest.bench.ts [--quick]
 */
import { EventEmitter } from 'node:events';
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import { createEngine, type Engine, matchesPredicate, type PageChangeEvent, type PagePredicate } from '../src/main/index.js';
import type { BenchRatio, BenchReport } from './run.js';

const BATCH = 1000;
/**
 * The space of data types and sources interests are spread over, for `count` subscriptions: it
 * grows with the number of subscribers (more subscribers watch more kinds of pages, not all the same
 * ones), so an event matches about as many subscriptions at 100 k as at 1 k. Every event is a new page.
 */
function space(count: number): { types: number; sources: number } {
  return { types: Math.max(500, Math.floor(count / 2)), sources: Math.max(200, Math.floor(count / 20)) };
}

/**
 * A realistic mix: mostly data-type subscriptions, many source-prefix ones (narrowed by data
 * type), some exact page lists, a few unindexed. Interests are spread over a space that grows with
 * the number of subscribers (more subscribers watch more kinds of pages, not all the same ones), so
 * an event matches a handful of subscriptions whatever their number; what grows is the number of
 * subscriptions that do NOT match, which is what the index must not pay for.
 */
export function predicates(count: number): PagePredicate[] {
  const { types: DATA_TYPES, sources: SOURCES } = space(count);
  const out: PagePredicate[] = [];
  for (let i = 0; i < count; i++) {
    const r = i % 20;
    if (i < 8) out.push({ anyOf: [{ kinds: ['page_invalidated'] }, { scopeId: `scope-${i}` }] }); // unindexed, few
    else if (r < 12) out.push({ dataType: `type-${i % DATA_TYPES}`, kinds: ['page_added', 'page_replaced'] });
    else if (r < 18) out.push({ sourcePrefix: `file:/repo-${i % SOURCES}/`, dataType: `type-${(i * 7) % DATA_TYPES}` });
    else out.push({ pageIdIn: [`file:src/m${i % 1000}/f${i}.ts`] });
  }
  return out;
}

export function events(count: number, offset = 0, subscriptions = 1000): PageChangeEvent[] {
  const { types: DATA_TYPES, sources: SOURCES } = space(subscriptions);
  const out: PageChangeEvent[] = [];
  for (let k = 0; k < count; k++) {
    const i = k + offset;
    const page = i;
    out.push({
      kind: i % 10 === 0 ? 'page_replaced' : 'page_added',
      pageId: `file:src/m${page % 1000}/f${page}.ts`,
      sourceId: `file:/repo-${i % SOURCES}/`,
      dataType: `type-${i % DATA_TYPES}`,
      ...(i % 10 === 0 ? { related: [`file:src/m${page % 1000}/old${page}.ts`] } : {}),
      extra: { relativePath: `src/m${page % 1000}/f${page}.ts`, value: i % 7 },
      ts: 1_795_312_028_434 + i,
    });
  }
  return out;
}

/** The baseline: what a Node user writes first — one emitter, every predicate checked per event. */
class LinearEmitter extends EventEmitter {
  readonly subs: { predicate: PagePredicate; handler: (e: PageChangeEvent) => void }[] = [];
  publish(batch: readonly PageChangeEvent[]): void {
    for (const event of batch) {
      for (const sub of this.subs) if (matchesPredicate(sub.predicate, event)) sub.handler(event);
    }
  }
}

async function engineWith(subscriptions: number, handler: (e: PageChangeEvent) => void): Promise<Engine> {
  // The budget is a per-episode safety net; the bench measures raw ingest, so it is out of the way.
  // The rate limiter runs with its defaults (burst 4 per page per second): every event is a new
  // page, so it limits nothing but is paid for on every event.
  const engine = await createEngine({ episodeBudget: 1e9, changeFeedSize: 1024 });
  const preds = predicates(subscriptions);
  for (let i = 0; i < preds.length; i += 1) await engine.subscribe({ predicate: preds[i]!, handler });
  return engine;
}

interface Row {
  subscriptions: number;
  'engine events/s': string;
  'baseline events/s': string;
  ratio: string;
  'dispatches/event': string;
}

/** A task's statistics; a benchmark whose task failed must not print a figure. */
function completed<R extends { state: string }>(result: R): Extract<R, { state: 'completed' }> {
  if (result.state !== 'completed') throw new Error(`benchmark task ended ${result.state}: ${JSON.stringify((result as { error?: unknown }).error ?? '')}`);
  return result as Extract<R, { state: 'completed' }>;
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0);
}

async function throughput(quick: boolean, ratios: BenchRatio[]): Promise<Row[]> {
  const rows: Row[] = [];
  const sizes = quick ? [10, 1000] : [10, 1000, 10_000, 100_000];
  const eventsPerIteration = quick ? 5_000 : 50_000;
  for (const subscriptions of sizes) {
    let dispatched = 0;
    const engine = await engineWith(subscriptions, () => void dispatched++);
    // Each iteration sends pages never seen before (the limiter would otherwise defer repeats).
    const iterations = (quick ? 2 : 5) + 2;
    const rounds: PageChangeEvent[][][] = [];
    for (let r = 0; r < iterations; r++) {
      const all = events(eventsPerIteration, r * eventsPerIteration, subscriptions);
      const batches: PageChangeEvent[][] = [];
      for (let i = 0; i < all.length; i += BATCH) batches.push(all.slice(i, i + BATCH));
      rounds.push(batches);
    }
    const all = rounds[0]!.flat();
    let round = 0;
    const baseline = new LinearEmitter();
    for (const predicate of predicates(subscriptions)) baseline.subs.push({ predicate, handler: () => undefined });
    const baselineEvents = Math.max(200, Math.min(eventsPerIteration, Math.floor(2e8 / subscriptions / 50)));
    const baselineBatch = all.slice(0, baselineEvents);

    const bench = new Bench({ iterations: quick ? 2 : 5, warmup: true, warmupIterations: 1, time: 0 });
    bench.add('engine', async () => {
      for (const batch of rounds[round++ % rounds.length]!) void engine.dispatchChange(batch);
      await engine.waitForQuiescence({ timeoutMs: 120_000 });
    });
    bench.add('baseline', () => baseline.publish(baselineBatch));
    dispatched = 0;
    await bench.run();
    const [engineResult, baselineResult] = bench.tasks.map((task) => completed(task.result));
    const engineMs = engineResult!.latency.mean;
    const baseMs = baselineResult!.latency.mean;
    const engineRate = eventsPerIteration / (engineMs / 1000);
    const baseRate = baselineEvents / (baseMs / 1000);
    const runs = engineResult!.latency.samplesCount ?? 1;
    ratios.push({ measure: `engine, ${subscriptions.toLocaleString('en-US')} subscriptions`, value: engineRate, unit: 'events/s', baseline: 'linear emitter, same predicates', baselineValue: baseRate });
    rows.push({
      subscriptions,
      'engine events/s': fmt(engineRate),
      'baseline events/s': fmt(baseRate),
      ratio: `${(engineRate / baseRate).toFixed(1)}×`,
      'dispatches/event': (dispatched / (eventsPerIteration * (runs + 1))).toFixed(2),
    });
    await engine.close();
  }
  return rows;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Latency from dispatchChange to handler at an offered load of `rate` events/s, paced per ms. */
async function latency(quick: boolean, rate = 100_000): Promise<Record<string, string>> {
  const latencies: number[] = [];
  const engine = await engineWith(10_000, (event) => {
    latencies.push(performance.now() - (event.extra?.['sentAt'] as number));
  });
  const seconds = quick ? 0.5 : 3;
  const perTick = rate / 1000;
  const total = rate * seconds;
  const source = events(total, 0, 10_000);
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor((performance.now() - start) * perTick) + perTick);
    if (due > sent) {
      const now = performance.now();
      const batch = source.slice(sent, due).map((e) => ({ ...e, extra: { ...e.extra, sentAt: now } }));
      void engine.dispatchChange(batch);
      sent = due;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await engine.waitForQuiescence({ timeoutMs: 120_000 });
  const elapsed = (performance.now() - start) / 1000;
  await engine.close();
  latencies.sort((a, b) => a - b);
  return {
    'offered events/s': fmt(rate),
    'achieved events/s': fmt(total / elapsed),
    'handler calls': String(latencies.length),
    'p50 ms': percentile(latencies, 50).toFixed(2),
    'p99 ms': percentile(latencies, 99).toFixed(2),
  };
}

/** Time from the last handler settling to the quiescence announcement. */
async function quiescenceLatency(quick: boolean): Promise<Record<string, string>> {
  let lastSettled = 0;
  const engine = await engineWith(100, () => undefined);
  await engine.subscribe({
    predicate: {},
    handler: async () => {
      await new Promise((resolve) => setImmediate(resolve));
      lastSettled = performance.now();
    },
  });
  const gaps: number[] = [];
  for (let i = 0; i < (quick ? 20 : 200); i++) {
    const announced = new Promise<number>((resolve) => engine.once('quiescence', () => resolve(performance.now())));
    await engine.dispatchChange(events(20, i * 20, 100));
    gaps.push((await announced) - lastSettled);
  }
  await engine.close();
  gaps.sort((a, b) => a - b);
  return { episodes: String(gaps.length), 'p50 ms': percentile(gaps, 50).toFixed(3), 'p99 ms': percentile(gaps, 99).toFixed(3) };
}

export async function run(options: { quick: boolean }): Promise<BenchReport> {
  const ratios: BenchRatio[] = [];
  console.log('\n## ingest: dispatchChange → convergence worker → main-thread handler');
  console.table(await throughput(options.quick, ratios));
  console.log('latency at an offered load (10k subscriptions)');
  console.table([await latency(options.quick)]);
  console.log('quiescence announced after the last handler settled');
  console.table([await quiescenceLatency(options.quick)]);
  return { ratios };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes('--quick') });
}
