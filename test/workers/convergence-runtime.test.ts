/**
 * The convergence worker's decisions, tested on `ConvergenceRuntime` itself: it is pure (frames and
 * a clock in, dispatches and messages out), so no thread and no timing is involved.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PageChange, type PageChangeEvent } from '../../src/shared/events.js';
import { eventToTuple, tupleToEvent } from '../../src/shared/framing.js';
import type { PagePredicate } from '../../src/shared/predicates.js';
import {
  type ConvergenceWorkerData,
  type IngestMeta,
  IngestTag,
  type QuiescenceReport,
  type SubscriptionSpec,
  type WorkerMessage,
  type WorkerStatus,
} from '../../src/shared/protocol.js';
import { ConvergenceRuntime } from '../../src/workers/convergence-runtime.js';

interface Dispatched {
  id: number;
  handle: number;
  event: PageChangeEvent;
}

/** A runtime with an in-memory IO: what it dispatches and posts is recorded; acks are written by hand. */
class Harness {
  readonly runtime: ConvergenceRuntime;
  readonly dispatched: Dispatched[] = [];
  readonly messages: WorkerMessage[] = [];
  /** Stands in for the ingest ring's drained state. */
  drained = true;
  /** The worker's clock: any value; only settleMs and durations may depend on it. */
  now = 1_000;
  #request = 1;
  #handle = 1;

  constructor(options: Partial<ConvergenceWorkerData> = {}) {
    const data: ConvergenceWorkerData = {
      ingest: new SharedArrayBuffer(8),
      dispatch: new SharedArrayBuffer(8),
      main: new SharedArrayBuffer(8),
      episodeBudget: 1000,
      rateLimit: { minIntervalMs: 1000, burst: 4, trailing: true },
      changeFeedSize: 1024,
      settleMs: 0,
      subscriptionCapacity: 1000,
      ...options,
    };
    this.runtime = new ConvergenceRuntime(data, {
      dispatchToMain: (_episode, firstId, groups) => {
        let id = firstId;
        for (const [event, handles] of groups) {
          for (const handle of handles) this.dispatched.push({ id: id++, handle, event: tupleToEvent(event) });
        }
      },
      releaseMainFrames: () => undefined,
      post: (message) => this.messages.push(message),
      ingestDrained: () => this.drained,
    });
  }

  frame(frame: unknown[]): void {
    this.runtime.handleFrame(frame, this.now);
  }

  subscribe(predicate: PagePredicate = {}, extra: Partial<SubscriptionSpec> = {}): SubscriptionSpec {
    const handle = this.#handle++;
    const spec: SubscriptionSpec = { id: `sub_${String(handle).padStart(12, '0')}`, handle, predicate, target: 'main', ...extra };
    this.frame([IngestTag.SUBSCRIBE, this.#request++, spec]);
    return spec;
  }

  /** Writes one EVENTS frame (without `seq`, so dispatches carry tuples) and ticks, as the loop does. */
  events(events: PageChangeEvent[], meta: IngestMeta = {}): void {
    this.frame([IngestTag.EVENTS, meta, events.map(eventToTuple)]);
  }

  tick(): void {
    this.runtime.tick(this.now);
  }

  /** Acknowledges every dispatch in flight, as the main thread would once handlers settle. */
  ackAll(): void {
    const n = this.runtime.inFlight;
    if (n > 0) this.frame([IngestTag.ACKS, n, []]);
  }

  request(): number {
    return this.#request++;
  }

  replies(requestId: number): unknown[] {
    return this.messages.filter((m) => m.type === 'reply' && m.requestId === requestId).map((m) => (m as { value: unknown }).value);
  }

  quiescence(): QuiescenceReport[] {
    return this.messages.filter((m) => m.type === 'quiescence').map((m) => (m as { report: QuiescenceReport }).report);
  }

  /** Ticks and acknowledges until nothing is in flight or deferred. */
  settle(): void {
    for (let i = 0; i < 100; i++) {
      this.tick();
      if (this.runtime.inFlight === 0 && this.runtime.status().deferred === 0) {
        this.tick();
        return;
      }
      this.ackAll();
    }
    throw new Error('did not settle');
  }

  feed(): { sub: string | null; pageId: string; kind: string; reason?: string }[] {
    return this.runtime.changeFeed(10_000).map((f) => ({
      sub: f.subscriptionId,
      pageId: f.pageId,
      kind: f.kind,
      ...(f.skippedReason === undefined ? {} : { reason: f.skippedReason }),
    }));
  }
}

const at = (ts: number, event: PageChangeEvent): PageChangeEvent => ({ ...event, ts });

describe('page graph in ring order', () => {
  it('a deferred invalidation changes the graph where it stands in the ring, not when delivered', () => {
    const h = new Harness({ rateLimit: { minIntervalMs: 1000, burst: 1, trailing: true } });
    h.subscribe({ pageIdIn: ['X'], kinds: ['page_added', 'page_invalidated'] });
    h.events([
      at(0, PageChange.edgeAdded('X', 'Y')),
      at(0, PageChange.added('X')), // takes X's only token
      at(0, PageChange.invalidated('X', 'gone')), // deferred: drops X's edges now
      at(0, PageChange.edgeAdded('X', 'Z')),
    ]);
    expect(h.runtime.status().deferred).toBe(1);
    expect(h.runtime.status().pageGraph.edges).toBe(1); // X→Z; today 1 before delivery, 0 after
    h.settle();
    expect(h.runtime.status().pageGraph).toEqual({ nodes: 2, edges: 1 });
    expect(h.dispatched.map((d) => d.event.kind)).toEqual(['page_added', 'page_invalidated']);
  });

  it('a deferred dispatch keeps the reachability its event had in ring order', () => {
    const h = new Harness({ rateLimit: { minIntervalMs: 1000, burst: 1, trailing: true } });
    const reach = h.subscribe({ edgeReach: { root: 'R', maxHops: 1 }, kinds: ['page_added', 'page_invalidated'] });
    h.events([
      at(0, PageChange.edgeAdded('R', 'X')),
      at(0, PageChange.added('X')),
      at(0, PageChange.invalidated('X', 'gone')), // matched while X was reachable; deferred
      at(0, PageChange.edgeRemoved('R', 'X')),
    ]);
    h.settle();
    const toReach = h.dispatched.filter((d) => d.handle === reach.handle).map((d) => `${d.event.kind}:${d.event.pageId}`);
    expect(toReach).toEqual(['page_added:X', 'page_invalidated:X']);
  });

  it('a subscription made after a deferred event does not receive it, one removed meanwhile neither', () => {
    const h = new Harness({ rateLimit: { minIntervalMs: 1000, burst: 1, trailing: true } });
    const early = h.subscribe({ pageIdIn: ['p'] });
    const leaving = h.subscribe({ pageIdIn: ['p'] });
    h.events([at(0, PageChange.added('p')), at(0, PageChange.replaced('p', 'p'))]);
    h.subscribe({ pageIdIn: ['p'] }); // after both events in ring order
    h.frame([IngestTag.UNSUBSCRIBE, h.request(), [leaving.id]]);
    h.settle();
    expect(h.dispatched.map((d) => `${d.handle}:${d.event.kind}`)).toEqual([
      `${early.handle}:page_added`,
      `${leaving.handle}:page_added`,
      `${early.handle}:page_replaced`,
    ]);
  });
});

describe('determinism: decisions on event time', () => {
  function run(clock: () => number): { dispatched: string[]; feed: unknown[]; reports: number } {
    const h = new Harness({ rateLimit: { minIntervalMs: 100, burst: 2, trailing: true } });
    h.subscribe({ dataType: 'doc' });
    h.subscribe({ pageIdPrefix: 'p1' });
    const events: PageChangeEvent[] = [];
    for (let i = 0; i < 200; i++) {
      events.push(at(Math.floor(i / 7) * 10, PageChange.replaced(`p${i % 4}`, `p${i % 4}`, { dataType: 'doc', extra: { n: i } })));
    }
    for (let i = 0; i < events.length; i += 13) {
      h.now = clock();
      h.events(events.slice(i, i + 13));
      h.now = clock();
      h.tick();
      h.ackAll();
    }
    h.settle();
    return {
      dispatched: h.dispatched.map((d) => `${d.handle}:${d.event.pageId}:${String(d.event.extra?.['n'])}`),
      feed: h.feed(),
      reports: h.quiescence().length,
    };
  }

  it('the same frames with fixed ts give the same dispatches and feed whatever the worker clock says', () => {
    let slow = 0;
    let fast = 0;
    const first = run(() => (slow += 1));
    const second = run(() => (fast += 7_919));
    expect(first.dispatched.length).toBeGreaterThan(20);
    expect(first.feed.some((f) => (f as { reason?: string }).reason === 'rate_limited')).toBe(true);
    expect(second).toEqual(first);
  });

  it('property: frame boundaries, tick points and the worker clock never change a decision', () => {
    const eventArb = fc.record({
      page: fc.constantFrom('a', 'b', 'c'),
      kind: fc.constantFrom('added', 'replaced', 'invalidated', 'edge'),
      dt: fc.integer({ min: 0, max: 80 }),
      value: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(fc.array(eventArb, { minLength: 1, maxLength: 60 }), fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1 }), (specs, cuts) => {
        let ts = 0;
        const events = specs.map(({ page, kind, dt, value }) => {
          ts += dt;
          const init = { dataType: 'doc', extra: { value }, ts };
          if (kind === 'added') return PageChange.added(page, init);
          if (kind === 'replaced') return PageChange.replaced(page, page, init);
          if (kind === 'invalidated') return PageChange.invalidated(page, 'gone', init);
          return PageChange.edgeAdded('root', page, undefined, init);
        });
        const play = (split: (i: number) => number, clock: (i: number) => number): unknown => {
          const h = new Harness({ rateLimit: { minIntervalMs: 100, burst: 2, trailing: true } });
          h.subscribe({ dataType: 'doc' }, { tolerance: { mode: 'absolute', value: 1 } });
          h.subscribe({ edgeReach: { root: 'root', maxHops: 1 } });
          h.drained = false; // the sequence is still being written: no idle release in between
          for (let i = 0, n = 0; i < events.length; n++) {
            const size = split(n);
            h.now = clock(n);
            h.events(events.slice(i, i + size));
            h.tick();
            h.ackAll();
            i += size;
          }
          h.drained = true;
          h.settle();
          return { dispatched: h.dispatched.map((d) => `${d.handle}:${d.event.kind}:${d.event.pageId}:${String(d.event.ts)}`), feed: h.feed() };
        };
        const whole = play(() => events.length, () => 0);
        const pieces = play((n) => cuts[n % cuts.length]!, (n) => 1e12 + n * 997);
        expect(pieces).toEqual(whole);
      }),
      { numRuns: 200 },
    );
  });

  it('a trailing delivery goes out when event time passes its due time, before the later event', () => {
    const h = new Harness({ rateLimit: { minIntervalMs: 100, burst: 1, trailing: true } });
    h.subscribe({});
    h.events([at(0, PageChange.replaced('p', 'p', { extra: { n: 1 } })), at(10, PageChange.replaced('p', 'p', { extra: { n: 2 } }))]);
    h.drained = false; // more is coming: no idle release
    h.tick();
    expect(h.dispatched.map((d) => d.event.extra?.['n'])).toEqual([1]);
    h.events([at(150, PageChange.added('q'))]); // event time 150 passes p's due time 100
    expect(h.dispatched.map((d) => d.event.extra?.['n'] ?? d.event.pageId)).toEqual([1]);
    h.tick();
    expect(h.dispatched.map((d) => d.event.extra?.['n'] ?? d.event.pageId)).toEqual([1, 2, 'q']);
  });

  it('a trailing delivery is released when the engine is idle, and quiescence waits for it', () => {
    const h = new Harness({ rateLimit: { minIntervalMs: 60_000, burst: 1, trailing: true } });
    h.subscribe({});
    h.events([at(0, PageChange.replaced('p', 'p', { extra: { n: 1 } })), at(0, PageChange.replaced('p', 'p', { extra: { n: 2 } }))]);
    h.drained = false;
    h.tick();
    h.ackAll();
    h.tick();
    expect(h.quiescence()).toHaveLength(0);
    expect(h.runtime.status().deferred).toBe(1);
    h.drained = true; // the ring is empty and nothing is in flight: release now, not in 60 s
    h.tick();
    expect(h.dispatched.map((d) => d.event.extra?.['n'])).toEqual([1, 2]);
    expect(h.quiescence()).toHaveLength(0); // its dispatch is in flight
    h.ackAll();
    h.tick();
    expect(h.quiescence()).toHaveLength(1);
    expect(h.quiescence()[0]!.counters.dispatchesDeferred).toBe(1);
  });

  it('a slow handler holds a trailing delivery for at most one interval of the worker clock', () => {
    const h = new Harness({ rateLimit: { minIntervalMs: 500, burst: 1, trailing: true } });
    h.subscribe({ pageIdIn: ['slow'] });
    h.subscribe({ pageIdIn: ['p'] });
    h.events([at(0, PageChange.added('slow'))]); // its handler keeps running: never acknowledged here
    h.events([at(0, PageChange.replaced('p', 'p', { extra: { n: 1 } })), at(0, PageChange.replaced('p', 'p', { extra: { n: 2 } }))]);
    h.tick();
    expect(h.dispatched.map((d) => d.event.extra?.['n'] ?? d.event.pageId)).toEqual(['slow', 1]);
    h.frame([IngestTag.ACKS, 1, []]); // p's first dispatch settles; 'slow' is still running
    h.now += 499;
    h.tick();
    expect(h.runtime.status().deferred).toBe(1);
    expect(h.runtime.nextDeadline()).toBe(h.now + 1);
    h.now += 1;
    h.tick();
    expect(h.dispatched.map((d) => d.event.extra?.['n'] ?? d.event.pageId)).toEqual(['slow', 1, 2]);
    expect(h.quiescence()).toHaveLength(0);
  });

  it('the rate limiter counts only events that match a subscription', () => {
    const h = new Harness({ rateLimit: { minIntervalMs: 60_000, burst: 1, trailing: false } });
    h.subscribe({ dataType: 'doc' });
    h.events([at(0, PageChange.added('p', { dataType: 'other' })), at(0, PageChange.added('p', { dataType: 'other' })), at(0, PageChange.added('p', { dataType: 'doc' }))]);
    h.settle();
    expect(h.dispatched.map((d) => d.event.dataType)).toEqual(['doc']);
    expect(h.runtime.status().counters.dispatchesRateLimited).toBe(0);
  });
});

describe('budget and derivation depth', () => {
  it('external events are always dispatched, whatever the budget', () => {
    const h = new Harness({ episodeBudget: 10 });
    h.subscribe({});
    h.events(Array.from({ length: 500 }, (_, i) => at(0, PageChange.added(`p${i}`))));
    h.settle();
    expect(h.dispatched).toHaveLength(500);
    const report = h.quiescence()[0]!;
    expect(report.budgetExhausted).toBe(false);
    expect(report.counters.dispatchesBudgetExhausted).toBe(0);
    expect(h.messages.some((m) => m.type === 'budget-exhausted')).toBe(false);
  });

  it('derived dispatches count against the budget; past it they are recorded, the episode is exhausted and announced', () => {
    const h = new Harness({ episodeBudget: 3 });
    const a = h.subscribe({ dataType: 'a' });
    const b = h.subscribe({ dataType: 'b' });
    h.events([at(0, PageChange.added('root', { dataType: 'a' }))]);
    h.tick();
    const parent = h.dispatched[0]!.id;
    h.events(
      Array.from({ length: 5 }, (_, i) => at(0, PageChange.added(`d${i}`, { dataType: 'b' }))),
      { parent, cause: a.id },
    );
    h.tick();
    expect(h.dispatched.map((d) => d.event.pageId)).toEqual(['root', 'd0', 'd1', 'd2']);
    expect(h.runtime.status().state).toBe('exhausted');
    const announced = h.messages.filter((m) => m.type === 'budget-exhausted');
    expect(announced).toEqual([{ type: 'budget-exhausted', episodeId: expect.stringMatching(/^ep_/), reason: 'budget', subscriptions: [a.id, b.id].sort() }]);
    // Still external: dispatched even though the budget is spent.
    h.events([at(0, PageChange.added('outside', { dataType: 'b' }))]);
    h.settle();
    expect(h.dispatched.at(-1)!.event.pageId).toBe('outside');
    const report = h.quiescence()[0]!;
    expect(report.budgetExhausted).toBe(true);
    expect(report.counters.dispatchesBudgetExhausted).toBe(2);
    expect(h.feed().filter((f) => f.reason === 'budget_exhausted').map((f) => f.pageId)).toEqual(['d3', 'd4']);
    expect(h.messages.filter((m) => m.type === 'budget-exhausted')).toHaveLength(1); // once per episode
  });

  it('an event deeper than maxDerivationDepth is not dispatched and is recorded as depth_exceeded', () => {
    const h = new Harness({ episodeBudget: 1_000_000, maxDerivationDepth: 3 });
    const loop = h.subscribe({ dataType: 'loop' });
    h.events([at(0, PageChange.added('x0', { dataType: 'loop' }))]);
    h.tick();
    // Each dispatch "emits" one event with that dispatch as parent: a runaway chain.
    for (let depth = 1; depth <= 10; depth++) {
      const last = h.dispatched.at(-1)!;
      const before = h.dispatched.length;
      h.events([at(0, PageChange.added(`x${depth}`, { dataType: 'loop' }))], { parent: last.id, cause: loop.id });
      h.tick();
      h.ackAll();
      if (h.dispatched.length === before) break;
    }
    h.settle();
    expect(h.dispatched.map((d) => d.event.pageId)).toEqual(['x0', 'x1', 'x2', 'x3']);
    expect(h.feed().filter((f) => f.reason === 'depth_exceeded').map((f) => f.pageId)).toEqual(['x4']);
    const report = h.quiescence()[0]!;
    expect(report.budgetExhausted).toBe(true);
    expect(report.counters.dispatchesDepthExceeded).toBe(1);
    expect(h.messages.filter((m) => m.type === 'budget-exhausted')).toEqual([
      { type: 'budget-exhausted', episodeId: report.episodeId, reason: 'depth', subscriptions: [loop.id] },
    ]);
  });

  it('events with a cause but no parent are derived: budgeted, at depth 1, their children one deeper', () => {
    const h = new Harness({ episodeBudget: 2, maxDerivationDepth: 1 });
    const loop = h.subscribe({ dataType: 'loop' });
    h.drained = false; // one episode throughout
    h.events([at(0, PageChange.added('y0', { dataType: 'loop' }))]);
    h.tick();
    h.events([at(0, PageChange.added('y1', { dataType: 'loop' }))], { cause: loop.id }); // depth 1: dispatched
    h.tick();
    const y1 = h.dispatched.at(-1)!;
    h.events([at(0, PageChange.added('y2', { dataType: 'loop' }))], { parent: y1.id, cause: loop.id }); // depth 2: refused
    h.events([at(0, PageChange.added('y3', { dataType: 'loop' }))], { cause: loop.id }); // depth 1: dispatched (budget 2)
    h.events([at(0, PageChange.added('y4', { dataType: 'loop' }))], { cause: loop.id }); // budget spent
    h.drained = true;
    h.settle();
    expect(h.dispatched.map((d) => d.event.pageId)).toEqual(['y0', 'y1', 'y3']);
    expect(h.feed().filter((f) => f.reason !== undefined).map((f) => `${f.pageId}:${f.reason}`)).toEqual(['y2:depth_exceeded', 'y4:budget_exhausted']);
  });
});

describe('causes that name no subscription', () => {
  it('are labels: external events, always dispatched, no observed causality', () => {
    const h = new Harness({ episodeBudget: 1 });
    h.subscribe({});
    h.events([0, 1, 2].map((i) => at(0, PageChange.added(`c${i}`))), { cause: 'colony:worker-1' });
    h.settle();
    expect(h.dispatched).toHaveLength(3);
    expect(h.quiescence()[0]!.budgetExhausted).toBe(false);
    expect(h.runtime.observedCausalEdges).toBe(0);
  });
});

describe('bounded memory', () => {
  it('an invalidated page frees its damper references, and comes back undamped', () => {
    const h = new Harness();
    h.subscribe({}, { tolerance: { mode: 'absolute', value: 1 } });
    h.subscribe({}, { tolerance: { mode: 'absolute', value: 1 } });
    h.events([at(0, PageChange.added('p', { extra: { value: 5 } })), at(0, PageChange.added('q', { extra: { value: 5 } }))]);
    h.settle();
    expect(h.runtime.damperSize).toBe(4);
    h.events([at(0, PageChange.invalidated('p', 'gone', { extra: { value: 5 } }))]);
    h.settle();
    expect(h.runtime.damperSize).toBe(2);
    h.events([at(0, PageChange.added('p', { extra: { value: 5 } }))]);
    h.settle();
    // A new page: dispatched to both, not damped against the page that went away.
    expect(h.dispatched.filter((d) => d.event.pageId === 'p').map((d) => d.event.kind)).toEqual([
      'page_added', 'page_added', 'page_invalidated', 'page_invalidated', 'page_added', 'page_added',
    ]);
  });

  it('unsubscribing prunes the observed causality about the subscription', () => {
    const h = new Harness();
    const a = h.subscribe({ dataType: 'a' });
    const b = h.subscribe({ dataType: 'b' });
    h.events([at(0, PageChange.added('x', { dataType: 'b' }))], { cause: a.id });
    h.events([at(0, PageChange.added('y', { dataType: 'a' }))], { cause: b.id });
    h.settle();
    expect(h.runtime.detectCycle()).toEqual([[a.id, b.id]]);
    expect(h.runtime.observedCausalEdges).toBe(2);
    h.frame([IngestTag.UNSUBSCRIBE, h.request(), [b.id]]);
    expect(h.runtime.observedCausalEdges).toBe(0);
    expect(h.runtime.detectCycle()).toEqual([]);
  });

  it('a cancelled quiescence waiter is forgotten and never answered', () => {
    const h = new Harness();
    h.subscribe({});
    h.events([at(0, PageChange.added('p'))]);
    h.tick();
    const gaveUp = h.request();
    const waiting = h.request();
    h.frame([IngestTag.AWAIT_QUIESCENCE, gaveUp]);
    h.frame([IngestTag.AWAIT_QUIESCENCE, waiting]);
    h.frame([IngestTag.CANCEL_WAIT, gaveUp]);
    expect(h.runtime.quiescenceWaiters).toBe(1);
    h.settle();
    expect(h.replies(gaveUp)).toEqual([]);
    expect(h.replies(waiting)).toHaveLength(1);
    expect(h.runtime.quiescenceWaiters).toBe(0);
  });
});

describe('queries in ring order', () => {
  it('a QUERY frame observes every frame written before it', () => {
    const h = new Harness();
    h.subscribe({});
    h.events([at(0, PageChange.added('p')), at(0, PageChange.edgeAdded('p', 'q'))]);
    const status = h.request();
    const feed = h.request();
    const cycles = h.request();
    h.frame([IngestTag.QUERY, status, 'status']);
    h.frame([IngestTag.QUERY, feed, 'feed', 1]);
    h.frame([IngestTag.QUERY, cycles, 'cycles']);
    const [s] = h.replies(status) as WorkerStatus[];
    expect(s!.counters.eventsReceived).toBe(2);
    expect(s!.pageGraph.edges).toBe(1);
    expect((h.replies(feed)[0] as { pageId: string; kind: string }[]).map((f) => f.kind)).toEqual(['page_graph_edge_added']);
    expect(h.replies(cycles)).toEqual([[]]);
    const bad = h.request();
    h.frame([IngestTag.QUERY, bad, 'nonsense']);
    expect(h.messages.find((m) => m.type === 'reply' && m.requestId === bad)).toMatchObject({ error: { code: 'CONVERGE_PROTOCOL' } });
  });
});
