/**
 * Derivation marking, backpressure and read-your-writes on the main thread (issue 7 §2, §4, §5),
 * with real threads.
 */
import { describe, expect, it } from 'vitest';
import {
  type BudgetExhaustedInfo,
  PageChange,
  type PageChangeEvent,
  type Engine,
  type QuiescenceReport,
} from '../../src/main/index.js';
import { useEngines } from '../helpers/engines.js';
import { gate } from '../helpers/gate.js';

const engine = useEngines();

async function settled(e: Engine): Promise<QuiescenceReport> {
  const report = await e.waitForQuiescence({ timeoutMs: 30_000 });
  expect(report, 'engine did not reach quiescence').not.toBeNull();
  return report!;
}

const loop = (id: string): PageChangeEvent => PageChange.added(id, { dataType: 'loop', sourceId: 'test' });

describe('derived events', () => {
  for (const how of ['dispatch.dispatchChange', 'causedBy: dispatch', 'synchronously inside the handler'] as const) {
    it(`events emitted via ${how} are derived: a runaway chain stops at maxDerivationDepth`, async () => {
      const e = await engine({ maxDerivationDepth: 3, episodeBudget: 1_000_000 });
      const trips: BudgetExhaustedInfo[] = [];
      e.on('budget-exhausted', (info) => trips.push(info));
      const seen: string[] = [];
      let n = 0;
      const sub = await e.subscribe({
        predicate: { dataType: 'loop' },
        handler: async (event, dispatch) => {
          seen.push(event.pageId);
          const next = loop(`x${++n}`);
          if (how === 'synchronously inside the handler') {
            void e.dispatchChange(next);
            return;
          }
          await new Promise((resolve) => setImmediate(resolve));
          if (how === 'dispatch.dispatchChange') await dispatch.dispatchChange(next);
          else await e.dispatchChange(next, { causedBy: dispatch });
        },
      });
      await e.dispatchChange(loop('x0'));
      const report = await settled(e);
      expect(seen).toEqual(['x0', 'x1', 'x2', 'x3']);
      expect(report.counters.dispatchesDepthExceeded).toBe(1);
      expect(report.counters.budgetExhausted).toBe(1);
      expect(trips).toEqual([{ episodeId: report.episodeId, reason: 'depth', subscriptions: [sub.id] }]);
    });
  }

  it('events dispatched from outside a handler are external and always delivered', async () => {
    const e = await engine({ episodeBudget: 10 });
    let calls = 0;
    await e.subscribe({ predicate: { dataType: 'loop' }, handler: () => void calls++ });
    await e.dispatchChange(Array.from({ length: 100 }, (_, i) => loop(`e${i}`)));
    const report = await settled(e);
    expect(calls).toBe(100);
    expect(report.budgetExhausted).toBe(false);
  });

  it('refuses a causedBy that is neither a subscription id nor a dispatch, naming the field', async () => {
    const e = await engine();
    await expect(e.dispatchChange(loop('a'), { causedBy: { id: 'x' } as never })).rejects.toMatchObject({ field: 'options.causedBy' });
  });
});

describe('backpressure', () => {
  it('bounds main-thread dispatches in flight; the ring fills and dispatchChange waits; nothing is lost', async () => {
    const maxInFlight = 16;
    const e = await engine({ maxInFlight, ringBytes: 64 * 1024, rateLimit: { minIntervalMs: 1, burst: 1_000_000 } });
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    await e.subscribe({
      handler: async () => {
        calls++;
        maxRunning = Math.max(maxRunning, ++running);
        await new Promise((resolve) => setTimeout(resolve, 1));
        running--;
      },
    });
    const total = 20_000;
    for (let i = 0; i < total; i += 1000) {
      await e.dispatchChange(Array.from({ length: 1000 }, (_, j) => PageChange.added(`p${i + j}`, { sourceId: 'test' })));
    }
    const midway = await e.getStatus();
    expect(midway.inFlight).toBeLessThanOrEqual(maxInFlight + 1000);
    const report = await settled(e);
    expect(calls).toBe(total);
    expect(report.counters.dispatchesEmitted).toBe(total);
    // One frame can overshoot the bound by its own dispatches; 20,000 at once is what the old engine did.
    expect(maxRunning).toBeLessThanOrEqual(maxInFlight + 512);
    const status = await e.getStatus();
    expect(status.inFlight).toBe(0);
    expect(status.ring.fullWaits).toBeGreaterThan(0);
  });
});

describe('read your writes', () => {
  it('queries after an awaited dispatchChange observe those events', async () => {
    const e = await engine();
    await e.subscribe({ predicate: { dataType: 'none' } });
    let written = 0;
    for (let round = 0; round < 5; round++) {
      for (let b = 0; b < 10; b++) {
        await e.dispatchChange(Array.from({ length: 500 }, (_, i) => PageChange.added(`r${round}-${b}-${i}`, { sourceId: 'test' })));
        written += 500;
      }
      const status = await e.getStatus();
      expect(status.counters.eventsReceived).toBe(written);
      const [last] = await e.getChangeFeed({ limit: 1 });
      expect(last?.pageId).toBe(`r${round}-9-499`);
    }
  });

  it('detectCycle sees the causality of changes emitted just before it', async () => {
    const e = await engine();
    const a = await e.subscribe({ predicate: { dataType: 'a' } });
    const b = await e.subscribe({ predicate: { dataType: 'b' } });
    await e.dispatchChange(PageChange.added('1', { dataType: 'b', sourceId: 's' }), { causedBy: a.id });
    await e.dispatchChange(PageChange.added('2', { dataType: 'a', sourceId: 's' }), { causedBy: b.id });
    const cycles = await e.detectCycle();
    expect(cycles.map((c) => [...c].sort())).toEqual([[a.id, b.id].sort()]);
  });
});

describe('quiescence waits that time out', () => {
  it('are cancelled in the worker too: only the waits still open are kept', async () => {
    const e = await engine();
    const held = gate();
    await e.subscribe({ predicate: { dataType: 'held' }, handler: () => held.promise });
    await e.dispatchChange(PageChange.added('held-page', { dataType: 'held', sourceId: 'test' }));
    // One wait stays open; twenty give up while the handler holds the episode.
    const open = e.waitForQuiescence({ timeoutMs: 60_000 });
    const gaveUp = await Promise.all(Array.from({ length: 20 }, () => e.waitForQuiescence({ timeoutMs: 1 })));
    expect(gaveUp).toEqual(gaveUp.map(() => null));
    // The cancels travel in ring order before this query, so the worker has dropped all twenty.
    expect((await e.getStatus()).quiescenceWaiters).toBe(1);
    held.open();
    expect(await open).not.toBeNull();
    expect((await e.getStatus()).quiescenceWaiters).toBe(0);
  });
});
