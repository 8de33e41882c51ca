/**
 * Bounded memory under a slow consumer (issue 7 §4): a 5 ms async handler fed 2,000,000 events in
 * awaited batches of 1,000. Backpressure must reach the producer (the engine holds at most
 * `maxInFlight` dispatches on the main thread, the ingest ring fills and `dispatchChange` waits), so
 * RSS stays flat whatever the backlog — the goal is under 400 MB — and nothing is lost.
 *
 *   npx tsx bench/backpressure.bench.ts            full run (2 M events)
 *   npx tsx bench/backpressure.bench.ts --quick    100 k events
 */
import { pathToFileURL } from 'node:url';
import { createEngine, PageChange, type PageChangeEvent } from '../src/main/index.js';

const MB = 1024 * 1024;

export async function run(options: { quick: boolean }): Promise<void> {
  const total = options.quick ? 100_000 : 2_000_000;
  const batch = 1000;
  const engine = await createEngine();
  let calls = 0;
  let running = 0;
  let maxRunning = 0;
  await engine.subscribe({
    handler: async () => {
      calls++;
      if (++running > maxRunning) maxRunning = running;
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
    },
  });
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > peakRss) peakRss = rss;
  }, 50);
  const started = performance.now();
  let lastReport = started;
  for (let i = 0; i < total; i += batch) {
    const events: PageChangeEvent[] = [];
    for (let j = 0; j < batch; j++) events.push(PageChange.added(`page-${(i + j) % 100_000}-${i + j}`, { sourceId: 'bench', extra: { n: i + j } }));
    await engine.dispatchChange(events);
    if (performance.now() - lastReport > 5_000) {
      lastReport = performance.now();
      console.log(`  written ${i + batch}, delivered ${calls}, running ${running}, rss ${(process.memoryUsage.rss() / MB).toFixed(0)} MB`);
    }
  }
  const report = await engine.waitForQuiescence({ timeoutMs: 3_600_000 });
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const status = await engine.getStatus();
  await engine.close();
  console.table({
    events: total,
    delivered: calls,
    'max handlers at once': maxRunning,
    'maxInFlight (default)': engine.options.maxInFlight,
    'peak RSS (MB)': Math.round(peakRss / MB),
    'seconds': Number(seconds.toFixed(1)),
    'events/s': Math.round(total / seconds),
    'ingest ring full waits': status.ring.fullWaits,
  });
  if (report === null || calls !== total) throw new Error(`lost events: delivered ${calls} of ${total}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes('--quick') });
}
