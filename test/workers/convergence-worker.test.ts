/**
 * The convergence worker's decisions seen through a real engine (real threads and rings): the
 * budget never drops external work, and decisions are reproducible from event time.
 */
import { describe, expect, it } from 'vitest';
import { type BudgetExhaustedInfo, type Engine, PageChange, type PageChangeEvent } from '../../src/main/index.js';
import { useEngines } from '../helpers/engines.js';

const engine = useEngines();

describe('the episode budget', () => {
  it('never drops external events: 50,000 directly dispatched events with the default budget are all delivered', async () => {
    const e = await engine();
    let delivered = 0;
    await e.subscribe({ predicate: { dataType: 'bulk' }, handler: () => void delivered++ });
    const events = Array.from({ length: 50_000 }, (_, i) => PageChange.added(`bulk/${i}`, { dataType: 'bulk' }));
    for (let i = 0; i < events.length; i += 5_000) await e.dispatchChange(events.slice(i, i + 5_000));
    const report = await e.waitForQuiescence({ timeoutMs: 60_000 });
    expect(report).not.toBeNull();
    expect(delivered).toBe(50_000);
    expect(report!.budgetExhausted).toBe(false);
    expect(report!.counters.dispatchesBudgetExhausted).toBe(0);
    expect((await e.getStatus()).state).toBe('converged');
  });
});

describe('backpressure and derived writes', () => {
  it('handlers awaiting their derived writes do not deadlock a worker at maxInFlight behind a full ingest ring', async () => {
    // A 4 KiB ingest ring holds a handful of these events; the worker stops at 4 unacknowledged
    // dispatches; every handler awaits a derived write. Were derived events queued behind the
    // external ones, no handler would settle, no ack would come, and nothing would ever move.
    const e = await engine({ maxInFlight: 4, ringBytes: 4096, rateLimit: { minIntervalMs: 1, burst: 1_000_000 } });
    let calls = 0;
    let children = 0;
    await e.subscribe({
      predicate: { dataType: 'ext' },
      handler: async (event, dispatch) => {
        calls++;
        await dispatch.dispatchChange(PageChange.added(`${event.pageId}/child`, { dataType: 'child', extra: { pad: 'x'.repeat(300) } }));
      },
    });
    await e.subscribe({ predicate: { dataType: 'child' }, handler: () => void children++ });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) writes.push(e.dispatchChange(PageChange.added(`p${i}`, { dataType: 'ext', extra: { pad: 'y'.repeat(300) } })));
    await Promise.all(writes);
    const report = await e.waitForQuiescence({ timeoutMs: 30_000 });
    expect(report).not.toBeNull();
    expect(calls).toBe(200);
    expect(children).toBe(200);
    expect((await e.getStatus()).ring.fullWaits).toBeGreaterThan(0);
  });
});

describe('backpressure and derived writes from pool tasks', () => {
  it('tasks emitting from pool threads do not deadlock a worker at maxInFlight behind a full ingest ring', async () => {
    const fixture = new URL('../fixtures/tasks/derive.mjs', import.meta.url);
    const e = await engine({ maxInFlight: 2, ringBytes: 4096, pool: { maxThreads: 2 }, rateLimit: { minIntervalMs: 1, burst: 1_000_000 } });
    let derived = 0;
    await e.subscribe({ predicate: { dataType: 'ext' }, task: { filename: fixture } });
    await e.subscribe({ predicate: { dataType: 'derived' }, handler: () => void derived++ });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) writes.push(e.dispatchChange(PageChange.added(`p${i}`, { dataType: 'ext', extra: { pad: 'y'.repeat(300) } })));
    await Promise.all(writes);
    const report = await e.waitForQuiescence({ timeoutMs: 30_000 });
    expect(report).not.toBeNull();
    expect(derived).toBe(100);
    expect((await e.getStatus()).ring.fullWaits).toBeGreaterThan(0);
  });
});

describe('runaway derivation', () => {
  /** A subscription whose handler emits a change it matches itself, after an await. */
  async function loop(e: Engine): Promise<{ id: string; calls: () => number }> {
    let calls = 0;
    const sub = await e.subscribe({
      predicate: { dataType: 'loop' },
      handler: async (event, dispatch) => {
        calls++;
        await Promise.resolve();
        await e.dispatchChange(PageChange.added(`${event.pageId}+`, { dataType: 'loop' }), { causedBy: dispatch.subscriptionId });
      },
    });
    return { id: sub.id, calls: () => calls };
  }

  it("is cut by the budget and announced as 'budget-exhausted' naming the subscriptions", async () => {
    const e = await engine({ episodeBudget: 20 });
    const heard: BudgetExhaustedInfo[] = [];
    e.on('budget-exhausted', (info) => heard.push(info));
    const sub = await loop(e);
    await e.dispatchChange(PageChange.added('x', { dataType: 'loop' }));
    const report = await e.waitForQuiescence({ timeoutMs: 30_000 });
    expect(report?.budgetExhausted).toBe(true);
    expect(sub.calls()).toBe(21);
    expect(heard).toEqual([{ episodeId: report!.episodeId, reason: 'budget', subscriptions: [sub.id] }]);
    expect((await e.getStatus()).state).toBe('exhausted');
  });

  it('with nobody listening, a process warning names the limit and the subscriptions', async () => {
    const e = await engine({ episodeBudget: 5 });
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const sub = await loop(e);
      await e.dispatchChange(PageChange.added('x', { dataType: 'loop' }));
      const report = await e.waitForQuiescence({ timeoutMs: 30_000 });
      expect(report?.budgetExhausted).toBe(true);
      expect(report?.counters.dispatchesBudgetExhausted).toBe(1);
      expect(report?.counters.budgetExhausted).toBe(1);
      const feed = await e.getChangeFeed({ limit: 1 });
      expect(feed[0]?.skippedReason).toBe('budget_exhausted');
      // process.emitWarning delivers on a later tick: wait for it with a deadline.
      const deadline = Date.now() + 10_000;
      const ours = (): Error | undefined => warnings.find((w) => (w as { code?: string }).code === 'CONVERGE_BUDGET_EXHAUSTED');
      while (ours() === undefined) {
        if (Date.now() > deadline) throw new Error('no warning');
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(ours()!.message).toContain('episodeBudget (5 derived dispatches)');
      expect(ours()!.message).toContain(sub.id);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('determinism', () => {
  /** Three pages written in bursts: p0 once per 100 ms of event time, p1 and p2 in bursts sharing a ts. */
  function sequence(): PageChangeEvent[] {
    const events: PageChangeEvent[] = [];
    for (let i = 0; i < 120; i++) {
      const ts = 1_000_000 + Math.floor(i / 12) * 100;
      const page = i % 12 === 0 ? 'p0' : `p${1 + (i % 2)}`;
      events.push(PageChange.replaced(page, page, { dataType: 'doc', sourceId: 'file:/r', extra: { n: i, value: i % 5 }, ts }));
    }
    return events;
  }

  async function run(): Promise<{ delivered: string[]; feed: unknown[] }> {
    const e = await engine({ rateLimit: { minIntervalMs: 100, burst: 2, trailing: true } });
    const delivered: string[] = [];
    const names = new Map<string, string>();
    const subs = [
      await e.subscribe({ predicate: { dataType: 'doc' }, handler: (ev, d) => void delivered.push(`${names.get(d.subscriptionId)}:${ev.pageId}:${String(ev.extra?.['n'])}`) }),
      await e.subscribe({ predicate: { pageIdIn: ['p1'] }, tolerance: { mode: 'absolute', value: 1 }, handler: (ev, d) => void delivered.push(`${names.get(d.subscriptionId)}:${ev.pageId}:${String(ev.extra?.['n'])}`) }),
    ];
    subs.forEach((s, i) => names.set(s.id, `s${i}`));
    // One call: the whole sequence is in the ring before the worker can go idle in the middle of it.
    await e.dispatchChange(sequence());
    expect(await e.waitForQuiescence({ timeoutMs: 30_000 })).not.toBeNull();
    const episodes = new Map<string, string>();
    const feed = (await e.getChangeFeed({ limit: 10_000 })).map(({ episodeId, subscriptionId, ...rest }) => {
      if (episodeId !== null && !episodes.has(episodeId)) episodes.set(episodeId, `e${episodes.size}`);
      return { ...rest, episode: episodeId === null ? null : episodes.get(episodeId), sub: subscriptionId === null ? null : names.get(subscriptionId) };
    });
    return { delivered, feed };
  }

  it('the same events with fixed ts into two fresh engines, rate limiter on, give the same deliveries and change feed', async () => {
    const first = await run();
    const second = await run();
    expect(second.delivered).toEqual(first.delivered);
    expect(second.feed).toEqual(first.feed);
    // Decided on event time, not on arrival: p0's writes are 100 ms apart in event time, so every
    // one reaches s0 although they all arrived within milliseconds.
    expect(first.delivered.filter((d) => d.startsWith('s0:p0:'))).toHaveLength(10);
    // p1's bursts (5 writes per 100 ms) are limited, and the page's final state still arrives.
    const p1 = first.delivered.filter((d) => d.startsWith('s0:p1:'));
    expect(p1.length).toBeLessThan(50);
    expect(p1.at(-1)).toBe('s0:p1:118');
    expect(first.feed.some((f) => (f as { skippedReason?: string }).skippedReason === 'rate_limited')).toBe(true);
  });
});
