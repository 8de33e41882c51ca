/**
 * Ingest benchmark (issues 3 and 10): the same events and subscriptions through three paths, side by
 * side, at 10 / 10 k / 100 k subscriptions (~1.5 dispatches per event at every size):
 *   - naive: an EventEmitter whose listener checks every predicate (`matchesPredicate`) per event;
 *   - the fair baseline: this package's `SubscriptionIndex` used inline on one thread, with the same
 *     boundary validation the engine does and the handler called per match;
 *   - the engine: `dispatchChange` batches of 1,024 → convergence worker (match, limit, damp) →
 *     main-thread handler → quiescence.
 * Then the per-event costs issue 10 sets goals for, latency under an offered load of 100 k events/s,
 * and how long after the last handler settles quiescence is announced. A quiescence wait that times
 * out fails the bench.
 *
 *   npx tsx bench/ingest.bench.ts [--quick]
 */
import { EventEmitter } from 'node:events';
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import { createEngine, type Engine, matchesPredicate, PageChange, type PageChangeEvent, type PagePredicate, SubscriptionIndex } from '../src/main/index.js';
import { validateEvents } from '../src/shared/events.js';
import { events, predicates } from './ingest-mix.js';
import type { BenchRatio, BenchReport } from './run.js';

const BATCH = 1024;

/** The naive baseline: what a Node user writes first — one emitter, every predicate checked per event. */
class LinearEmitter extends EventEmitter {
  readonly subs: { predicate: PagePredicate; handler: (e: PageChangeEvent) => void }[] = [];
  constructor() {
    super();
    this.on('change', (event: PageChangeEvent) => {
      for (const sub of this.subs) if (matchesPredicate(sub.predicate, event)) sub.handler(event);
    });
  }
  publish(batch: readonly PageChangeEvent[]): void {
    for (const event of validateEvents(batch)) this.emit('change', event);
  }
}

/**
 * The fair baseline: this package's own index used inline on one thread — the same validation the
 * engine's boundary does, the compiled index, the handler called for every match.
 */
class InlineIndex {
  readonly index = new SubscriptionIndex<{ handler: (e: PageChangeEvent) => void }>({ capacity: 1_000_000 });
  publish(batch: readonly PageChangeEvent[]): void {
    for (const event of validateEvents(batch)) {
      const hits = this.index.match(event);
      for (let i = 0; i < hits.length; i++) hits[i]!.handler(event);
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

/** A task's statistics; a benchmark whose task failed must not print a figure. */
function completed<R extends { state: string }>(result: R): Extract<R, { state: 'completed' }> {
  if (result.state !== 'completed') throw new Error(`benchmark task ended ${result.state}: ${JSON.stringify((result as { error?: unknown }).error ?? '')}`);
  return result as Extract<R, { state: 'completed' }>;
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0);
}

/** Waits for quiescence; a timeout (null) fails the bench rather than printing a figure for unfinished work. */
async function quiesce(engine: Engine, what: string): Promise<void> {
  const report = await engine.waitForQuiescence({ timeoutMs: 120_000 });
  if (report === null) throw new Error(`${what}: no quiescence within 120 s`);
}

interface SizeResult {
  subscriptions: number;
  naive: number;
  index: number;
  engine: number;
  perEvent: { naive: number; index: number; engine: number };
}

async function measureSize(subscriptions: number, quick: boolean): Promise<SizeResult> {
  const eventsPerIteration = quick ? 8 * BATCH : 64 * BATCH;
  const iterations = quick ? 2 : 5;
  let engineCalls = 0;
  const engine = await engineWith(subscriptions, () => void engineCalls++);
  // Each engine iteration sends pages never seen before (the limiter would otherwise defer repeats).
  const rounds: PageChangeEvent[][][] = [];
  for (let r = 0; r < iterations + 1; r++) {
    const all = events(eventsPerIteration, r * eventsPerIteration, subscriptions);
    const batches: PageChangeEvent[][] = [];
    for (let i = 0; i < all.length; i += BATCH) batches.push(all.slice(i, i + BATCH));
    rounds.push(batches);
  }
  let round = 0;
  const preds = predicates(subscriptions);
  let naiveCalls = 0;
  const naive = new LinearEmitter();
  for (const predicate of preds) naive.subs.push({ predicate, handler: () => void naiveCalls++ });
  let indexCalls = 0;
  const inline = new InlineIndex();
  for (let i = 0; i < preds.length; i++) inline.index.add({ id: `s${i}`, predicate: preds[i]!, handler: () => void indexCalls++ });
  // The naive scan costs ~subscriptions × 0.05 µs per event: give it a slice of the same events.
  const naiveEvents = Math.max(BATCH, Math.min(eventsPerIteration, Math.floor(4e8 / subscriptions / 50)));
  const naiveBatch = rounds[0]!.flat().slice(0, naiveEvents);
  const indexBatches = rounds[0]!;

  const engineTask = async (): Promise<void> => {
    for (const batch of rounds[round++ % rounds.length]!) void engine.dispatchChange(batch);
    await quiesce(engine, `engine at ${subscriptions} subscriptions`);
  };
  const indexTask = (): void => {
    for (const batch of indexBatches) inline.publish(batch);
  };
  const naiveTask = (): void => naive.publish(naiveBatch);
  // One counted pass of each path first (also a warm-up): how many handler calls an event makes.
  await engineTask();
  indexTask();
  naiveTask();
  const perEvent = { engine: engineCalls / eventsPerIteration, index: indexCalls / eventsPerIteration, naive: naiveCalls / naiveEvents };

  const bench = new Bench({ iterations, warmup: false, time: 0 });
  bench.add('engine', engineTask);
  bench.add('index', indexTask);
  bench.add('naive', naiveTask);
  await bench.run();
  await engine.close();
  const [engineResult, indexResult, naiveResult] = bench.tasks.map((task) => completed(task.result));
  return {
    subscriptions,
    engine: eventsPerIteration / (engineResult!.latency.mean / 1000),
    index: eventsPerIteration / (indexResult!.latency.mean / 1000),
    naive: naiveEvents / (naiveResult!.latency.mean / 1000),
    perEvent,
  };
}

/**
 * The three paths side by side (issue 10's table): same events, same subscriptions, same run. A mix
 * whose paths disagree on how many handler calls an event makes is a broken bench, not a figure.
 */
async function throughput(quick: boolean, ratios: BenchRatio[]): Promise<Record<string, string>[]> {
  const sizes = quick ? [10, 10_000] : [10, 10_000, 100_000];
  const results: SizeResult[] = [];
  for (const subscriptions of sizes) {
    const r = await measureSize(subscriptions, quick);
    const { naive, index, engine } = r.perEvent;
    if (engine < 0.5 || Math.abs(engine - index) > 0.05 || Math.abs(naive - index) > 0.25) {
      throw new Error(`${subscriptions} subscriptions: dispatches per event disagree or are too few (naive ${naive.toFixed(2)}, index ${index.toFixed(2)}, engine ${engine.toFixed(2)})`);
    }
    results.push(r);
    const label = `${subscriptions.toLocaleString('en-US')} subscriptions`;
    ratios.push({ measure: `engine, ${label}`, value: r.engine, unit: 'events/s', baseline: 'SubscriptionIndex inline, one thread', baselineValue: r.index, goal: 2 });
    ratios.push({ measure: `engine, ${label}`, value: r.engine, unit: 'events/s', baseline: 'naive EventEmitter + linear scan', baselineValue: r.naive });
  }
  const col = (r: SizeResult): string => `${r.subscriptions.toLocaleString('en-US')} subs`;
  const row = (path: string, cell: (r: SizeResult) => string): Record<string, string> => {
    const out: Record<string, string> = { path };
    for (const r of results) out[col(r)] = cell(r);
    return out;
  };
  return [
    row('naive: EventEmitter + linear predicate scan, one thread (events/s)', (r) => fmt(r.naive)),
    row('SubscriptionIndex.match inline, one thread, with validation (events/s)', (r) => fmt(r.index)),
    row(`engine: dispatchChange batches of ${BATCH} → worker → handler → quiescence (events/s)`, (r) => fmt(r.engine)),
    row('engine ÷ index (goal ≥ 2×)', (r) => `${(r.engine / r.index).toFixed(2)}×`),
    row('engine ÷ naive', (r) => `${(r.engine / r.naive).toFixed(1)}×`),
    row('dispatches per event (engine / index / naive)', (r) => `${r.perEvent.engine.toFixed(2)} / ${r.perEvent.index.toFixed(2)} / ${r.perEvent.naive.toFixed(2)}`),
  ];
}

/**
 * The per-event costs issue 10 sets goals for, one thread, µs per event (p50 of tinybench runs):
 * `SubscriptionIndex.match` at 10 k subscriptions (≤ 0.5), a `PageChange` factory (≤ 0.2), and the
 * boundary's validation (part of the main thread's ≤ 0.5).
 */
async function microCosts(quick: boolean): Promise<Record<string, string>[]> {
  const N = 10_000;
  const index = new SubscriptionIndex({ capacity: N });
  predicates(N).forEach((predicate, i) => index.add({ id: `s${i}`, predicate }));
  const sample = events(BATCH, 0, N);
  const bench = new Bench({ time: quick ? 100 : 1000, warmupTime: quick ? 20 : 200 });
  let sink = 0;
  bench.add('SubscriptionIndex.match, 10k subscriptions', () => {
    for (let i = 0; i < sample.length; i++) sink += index.match(sample[i]!).length;
  });
  bench.add('PageChange.added(pageId, { sourceId, dataType, extra })', () => {
    for (let i = 0; i < sample.length; i++) {
      const e = sample[i]!;
      sink += PageChange.added(e.pageId, { sourceId: e.sourceId, dataType: e.dataType, extra: e.extra }).pageId.length;
    }
  });
  bench.add('validateEvents (the boundary check)', () => {
    sink += validateEvents(sample).length;
  });
  await bench.run();
  if (sink < 0) console.log(sink);
  const goals: Record<string, number> = { 'SubscriptionIndex.match, 10k subscriptions': 0.5, 'PageChange.added(pageId, { sourceId, dataType, extra })': 0.2 };
  return bench.tasks.map((task) => {
    const us = (completed(task.result).latency.p50 ?? Number.NaN) * 1000 / sample.length;
    const goal = goals[task.name];
    return { cost: task.name, 'µs/event (p50)': us.toFixed(3), goal: goal === undefined ? '' : `≤ ${goal}`, met: goal === undefined ? '' : us <= goal ? 'yes' : 'NO' };
  });
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
  await quiesce(engine, 'latency run');
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
  console.log('per-event costs, one thread');
  console.table(await microCosts(options.quick));
  console.log('latency at an offered load (10k subscriptions)');
  console.table([await latency(options.quick)]);
  console.log('quiescence announced after the last handler settled');
  console.table([await quiescenceLatency(options.quick)]);
  return { ratios };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes('--quick') });
}
