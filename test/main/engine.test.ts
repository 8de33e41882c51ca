import { describe, expect, it } from 'vitest';
import {
  ClosedError,
  ConvergeError,
  createEngine,
  PageChange,
  type PageChangeEvent,
  type QuiescenceReport,
  RingFullError,
  SubscriptionRegistryFullError,
  ValidationError,
  type Engine,
} from '../../src/main/index.js';
import { useEngines } from '../helpers/engines.js';
import { gate } from '../helpers/gate.js';

const engine = useEngines();

async function settled(e: Engine): Promise<QuiescenceReport> {
  const report = await e.waitForQuiescence({ timeoutMs: 20_000 });
  expect(report, 'engine did not reach quiescence').not.toBeNull();
  return report!;
}

const doc = (id: string, extra?: Record<string, unknown>): PageChangeEvent =>
  PageChange.added(id, { dataType: 'doc', sourceId: 'file:/repo', ...(extra === undefined ? {} : { extra }) });

describe('subscribe and dispatch', () => {
  it('returns sub_<12 hex> ids with their dispatch key and delivers only matching events', async () => {
    const e = await engine();
    const seen: string[] = [];
    const sub = await e.subscribe({ predicate: { dataType: 'doc' }, handler: (event) => void seen.push(event.pageId) });
    expect(sub.id).toMatch(/^sub_[0-9a-f]{12}$/);
    expect(sub.dispatchKey).toBe(`convergence:dispatch:${sub.id}`);
    await e.dispatchChange([doc('a'), PageChange.added('b', { dataType: 'other' }), doc('c')]);
    const report = await settled(e);
    expect(seen).toEqual(['a', 'c']);
    expect(report.counters.eventsReceived).toBe(3);
    expect(report.counters.dispatchesEmitted).toBe(2);
    expect(report.key).toBe(`convergence:quiescence:${report.episodeId}`);
    expect(report.episodeId).toMatch(/^ep_[0-9a-f]{12}$/);
  });

  it('passes the dispatch context and fills ts and a default sourceId', async () => {
    const e = await engine();
    const got: { event: PageChangeEvent; dispatch: { subscriptionId: string; key: string; episodeId: string } }[] = [];
    const sub = await e.subscribe({ handler: (event, dispatch) => void got.push({ event, dispatch }) });
    await e.dispatchChange({ kind: 'page_added', pageId: 'p' } as PageChangeEvent, { sourceId: 'webhook:github' });
    const report = await settled(e);
    expect(got).toHaveLength(1);
    expect(got[0]!.event.sourceId).toBe('webhook:github');
    expect(typeof got[0]!.event.ts).toBe('number');
    expect(got[0]!.dispatch).toMatchObject({ subscriptionId: sub.id, key: sub.dispatchKey, episodeId: report.episodeId });
  });

  it('unsubscribe returns whether it existed, and the handler is not called afterwards', async () => {
    const e = await engine();
    let calls = 0;
    const sub = await e.subscribe({ handler: () => void calls++ });
    await e.dispatchChange(doc('a'));
    await settled(e);
    expect(await sub.unsubscribe()).toBe(true);
    expect(await e.unsubscribe(sub.id)).toBe(false);
    await e.dispatchChange(doc('b'));
    await settled(e);
    expect(calls).toBe(1);
    expect((await e.getStatus()).subscriptions).toBe(0);
  });

  it('a full subscription registry rejects with CONVERGE_REGISTRY_FULL and keeps the others', async () => {
    const e = await engine({ subscriptionCapacity: 2 });
    await e.subscribe({});
    await e.subscribe({});
    const error = await e.subscribe({}).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SubscriptionRegistryFullError);
    expect((error as ConvergeError).code).toBe('CONVERGE_REGISTRY_FULL');
    expect((await e.getStatus()).subscriptions).toBe(2);
  });

  it('resolves edgeReach predicates against the page graph built from edge events', async () => {
    const e = await engine();
    const seen: string[] = [];
    await e.subscribe({ predicate: { edgeReach: { root: 'root', maxHops: 2 }, kinds: ['page_replaced'] }, handler: (ev) => void seen.push(ev.pageId) });
    await e.dispatchChange([PageChange.edgeAdded('root', 'child'), PageChange.edgeAdded('child', 'grandchild'), PageChange.edgeAdded('grandchild', 'far')]);
    await e.dispatchChange([
      PageChange.replaced('child', 'child'),
      PageChange.replaced('grandchild', 'grandchild'),
      PageChange.replaced('far', 'far'),
      PageChange.replaced('elsewhere', 'elsewhere'),
    ]);
    await settled(e);
    expect(seen).toEqual(['child', 'grandchild']);
    expect((await e.getStatus()).counters.eventsReceived).toBe(7);
  });
});

describe('quiescence', () => {
  it('waits for async handlers and for the changes they emit, at every depth', async () => {
    const e = await engine();
    const delivered: string[] = [];
    let running = 0;
    const release = gate();
    await e.subscribe({
      predicate: { dataType: 'doc' },
      handler: async (event) => {
        running++;
        delivered.push(event.pageId);
        if (event.pageId === 'a') await release.promise;
        const depth = event.pageId.length;
        if (depth < 4) await e.dispatchChange(doc(`${event.pageId}${depth}`));
        running--;
      },
    });
    await e.dispatchChange(doc('a'));
    // The first handler is blocked on the gate: the engine must not claim quiescence.
    expect(await e.waitForQuiescence({ timeoutMs: 50 })).toBeNull();
    expect((await e.getStatus()).state).toBe('converging');
    release.open();
    const report = await settled(e);
    expect(delivered).toEqual(['a', 'a1', 'a12', 'a123']);
    expect(running).toBe(0);
    expect(report.counters.dispatchesEmitted).toBe(4);
  });

  it('answers at once when idle and announces each episode exactly once', async () => {
    const e = await engine();
    const announced: QuiescenceReport[] = [];
    e.on('quiescence', (report) => announced.push(report));
    const idle = await e.waitForQuiescence({ timeoutMs: 1000 });
    expect(idle).not.toBeNull();
    expect((await e.getStatus()).state).toBe('idle');
    await e.subscribe({ handler: async () => undefined });
    await e.dispatchChange(doc('a'));
    const first = await settled(e);
    expect(await e.waitForQuiescence({ timeoutMs: 1000 })).toEqual(first);
    await e.dispatchChange(doc('b'));
    const second = await settled(e);
    expect(second.episodeId).not.toBe(first.episodeId);
    expect(announced.map((r) => r.episodeId)).toEqual([first.episodeId, second.episodeId]);
    expect((await e.getStatus()).state).toBe('converged');
  });

  it('settleMs holds the announcement until the engine has been idle that long', async () => {
    const e = await engine({ settleMs: 150 });
    await e.subscribe({});
    const start = performance.now();
    await e.dispatchChange(doc('a'));
    const report = await settled(e);
    expect(performance.now() - start).toBeGreaterThanOrEqual(150);
    expect(report.durationMs).toBeGreaterThanOrEqual(150);
  });
});

describe('rate limiting, damping and the budget', () => {
  it('limits per page with burst 4 and delivers the latest limited event when the bucket refills', async () => {
    const e = await engine({ rateLimit: { minIntervalMs: 200 } });
    const seen: number[] = [];
    await e.subscribe({ handler: (event) => void seen.push(event.extra?.['n'] as number) });
    await e.dispatchChange(Array.from({ length: 10 }, (_, n) => PageChange.replaced('p', 'p', { extra: { n } })));
    await e.dispatchChange(PageChange.added('other'));
    const report = await settled(e);
    expect(seen.slice(0, 4)).toEqual([0, 1, 2, 3]);
    expect(seen).toContain(9); // the page's final state always arrives
    expect(seen.filter((n) => n !== undefined).at(-1)).toBe(9);
    expect(seen).not.toContain(5);
    expect(report.counters.dispatchesRateLimited).toBe(5); // 4..8 superseded
    const feed = await e.getChangeFeed({ limit: 100 });
    expect(feed.filter((f) => f.skippedReason === 'rate_limited')).toHaveLength(5);
    expect(feed.filter((f) => f.subscriptionId !== null && f.pageId === 'p')).toHaveLength(5);
  });

  it('without trailing delivery the limited events are recorded and dropped', async () => {
    const e = await engine({ rateLimit: { minIntervalMs: 60_000, burst: 1, trailing: false } });
    const seen: number[] = [];
    await e.subscribe({ handler: (event) => void seen.push(event.extra?.['n'] as number) });
    await e.dispatchChange([0, 1, 2].map((n) => PageChange.invalidated('p', 'gone', { extra: { n } })));
    const report = await settled(e);
    expect(seen).toEqual([0]);
    expect(report.counters.dispatchesRateLimited).toBe(2);
  });

  it('edge events are not rate limited', async () => {
    const e = await engine({ rateLimit: { minIntervalMs: 60_000, burst: 1 } });
    let calls = 0;
    await e.subscribe({ predicate: { kinds: ['page_graph_edge_added'] }, handler: () => void calls++ });
    await e.dispatchChange(['x', 'y', 'z'].map((to) => PageChange.edgeAdded('p', to)));
    await settled(e);
    expect(calls).toBe(3);
  });

  it('damps against the last value actually dispatched, so slow drift cannot hide', async () => {
    const e = await engine();
    const seen: number[] = [];
    const sub = await e.subscribe({ tolerance: { mode: 'absolute', value: 0.5 }, handler: (ev) => void seen.push(ev.extra?.['value'] as number) });
    await e.dispatchChange([1.0, 1.4, 1.8, 2.2].map((value) => PageChange.replaced('p', 'p', { extra: { value } })));
    const report = await settled(e);
    expect(seen).toEqual([1.0, 1.8]);
    expect(report.counters.dispatchesDamped).toBe(2);
    const damped = (await e.getChangeFeed()).filter((f) => f.skippedReason === 'damped');
    expect(damped.map((f) => f.subscriptionId)).toEqual([sub.id, sub.id]);
  });

  it('ends a runaway loop by the episode budget and says so', async () => {
    const e = await engine({ episodeBudget: 25, rateLimit: { minIntervalMs: 1 } });
    let calls = 0;
    await e.subscribe({
      predicate: { dataType: 'loop' },
      handler: async (event, dispatch) => {
        calls++;
        await e.dispatchChange(PageChange.added(`${event.pageId}+`, { dataType: 'loop' }), { causedBy: dispatch.subscriptionId });
      },
    });
    await e.dispatchChange(PageChange.added('x', { dataType: 'loop' }));
    const report = await settled(e);
    expect(report.budgetExhausted).toBe(true);
    // The external event is not counted: it and 25 derived dispatches ran.
    expect(calls).toBe(26);
    expect(report.counters.dispatchesEmitted).toBe(26);
    expect(report.counters.dispatchesBudgetExhausted).toBeGreaterThanOrEqual(1);
    // DESIGN §3 names the counter budgetExhausted: refusals by the budget or the depth limit.
    expect(report.counters.budgetExhausted).toBe(report.counters.dispatchesBudgetExhausted + report.counters.dispatchesDepthExceeded);
    expect((await e.getStatus()).counters.budgetExhausted).toBeGreaterThanOrEqual(1);
    expect((await e.getStatus()).state).toBe('exhausted');
    const feed = await e.getChangeFeed({ limit: 5 });
    expect(feed.at(-1)?.skippedReason).toBe('budget_exhausted');
    // A new episode starts with a fresh budget.
    await e.dispatchChange(PageChange.added('y', { dataType: 'other' }));
    const next = await settled(e);
    expect(next.budgetExhausted).toBe(false);
  });
});

describe('errors and bad input', () => {
  it('a throwing handler is counted and reported and does not stop other dispatches', async () => {
    const e = await engine();
    const errors: unknown[] = [];
    e.on('dispatch-error', (info) => errors.push(info));
    const seen: string[] = [];
    const bad = await e.subscribe({
      handler: (event) => {
        if (event.pageId === 'boom') throw new Error('sync boom');
      },
    });
    await e.subscribe({ handler: async (event) => {
      seen.push(event.pageId);
      if (event.pageId === 'b') throw new Error('async boom');
    } });
    await e.dispatchChange([doc('boom'), doc('b'), doc('c')]);
    const report = await settled(e);
    expect(seen).toEqual(['boom', 'b', 'c']);
    expect(report.counters.dispatchesFailed).toBe(2);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatchObject({ subscriptionId: bad.id, event: { pageId: 'boom' } });
  });

  it('rejects invalid events naming the field and accepts none of the batch', async () => {
    const e = await engine();
    await e.subscribe({});
    const error = await e.dispatchChange([doc('ok'), { kind: 'page_exploded', pageId: 'x', sourceId: 's' } as never]).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe('events[1].kind');
    expect((error as ValidationError).code).toBe('CONVERGE_VALIDATION');
    const single = await e.dispatchChange({ kind: 'page_added', pageId: '', sourceId: 's' }).catch((err: unknown) => err);
    expect((single as ValidationError).field).toBe('event.pageId');
    await e.dispatchChange(doc('after'));
    const report = await settled(e);
    expect(report.counters.eventsReceived).toBe(1);
    expect((await e.getChangeFeed()).map((f) => f.pageId)).toEqual(['after']);
  });

  it('rejects invalid predicates, tolerances and options naming the field', async () => {
    const e = await engine();
    const noRoot = await e.subscribe({ predicate: { edgeReach: { maxHops: 2 } } }).catch((err: unknown) => err);
    expect(noRoot).toBeInstanceOf(ValidationError);
    expect((noRoot as ValidationError).field).toMatch(/^subscription\.predicate\.edgeReach/);
    const tolerance = await e.subscribe({ tolerance: { mode: 'absolute', value: 0 } }).catch((err: unknown) => err);
    expect((tolerance as ValidationError).field).toMatch(/^subscription\.tolerance/);
    const handler = await e.subscribe({ handler: 'nope' as never }).catch((err: unknown) => err);
    expect((handler as ValidationError).field).toBe('subscription.handler');
    const options = await createEngine({ rateLimit: { burst: 0 } }).catch((err: unknown) => err);
    expect((options as ValidationError).field).toBe('options.rateLimit.burst');
    const unknown = await createEngine({ ringbytes: 5 } as never).catch((err: unknown) => err);
    expect(unknown).toBeInstanceOf(ValidationError);
    expect((unknown as ValidationError).field).toBe('options.ringbytes');
    const unknownEventKey = await e.dispatchChange({ ...doc('k'), colour: 'red' } as never).catch((err: unknown) => err);
    expect((unknownEventKey as ValidationError).field).toBe('event.colour');
    expect((await e.getStatus()).subscriptions).toBe(0);
  });

  it('subscribe takes one argument: no public way to pick an id or owner, and validator errors pass through as they are', async () => {
    const e = await engine();
    expect(e.subscribe.length).toBe(1);
    // A second argument (formerly `internal: { id, ownerId }`) must not be honoured.
    const sub = await (e.subscribe as (o: object, x: object) => Promise<{ id: string }>)({}, { id: 'sub_000000000000', ownerId: 'o' });
    expect(sub.id).not.toBe('sub_000000000000');
    expect(e.scope('o').subscriptionIds).toEqual([]);
    expect('describeSubscription' in e).toBe(false);
    // The predicate validator's own error, path and all (no zod issue round trip that loses the index).
    const output = await e.subscribe({ outputs: [{}, { kinds: ['nope'] }] } as never).catch((err: unknown) => err);
    expect(output).toBeInstanceOf(ValidationError);
    expect((output as ValidationError).field).toMatch(/^subscription\.outputs\[1\]\.kinds/);
  });

  it('does not mutate the caller options object', async () => {
    const options = { rateLimit: { burst: 2 } };
    const e = await engine(options);
    expect(options).toEqual({ rateLimit: { burst: 2 } });
    expect(e.options.rateLimit).toEqual({ minIntervalMs: 1000, burst: 2, trailing: true });
    expect(Object.isFrozen(e.options)).toBe(true);
  });

  it("with onFull 'throw' a full ingest ring rejects with RingFullError", async () => {
    const e = await engine({ ringBytes: 4096, onFull: 'throw' });
    const release = gate();
    // Hold the worker's consumer busy is not possible from outside, so flood faster than it drains.
    await e.subscribe({ handler: () => release.promise });
    const big = Array.from({ length: 40 }, (_, i) => doc(`p${i}`, { blob: 'x'.repeat(40) }));
    let error: unknown;
    for (let i = 0; i < 2000 && error === undefined; i++) {
      try {
        await e.dispatchChange(big);
      } catch (err) {
        error = err;
      }
    }
    release.open();
    expect(error).toBeInstanceOf(RingFullError);
    expect((error as RingFullError).code).toBe('CONVERGE_RING_FULL');
  });

  it('close is idempotent and every later call rejects with CONVERGE_CLOSED', async () => {
    const e = await createEngine();
    await e.subscribe({});
    await Promise.all([e.close(), e.close()]);
    await e.close();
    for (const call of [() => e.dispatchChange(doc('a')), () => e.getStatus(), () => e.subscribe({}), () => e.waitForQuiescence()]) {
      const error = await call().catch((err: unknown) => err);
      expect(error).toBeInstanceOf(ClosedError);
      expect((error as ClosedError).code).toBe('CONVERGE_CLOSED');
    }
  });

  it('close waits for running handlers before stopping', async () => {
    const e = await createEngine();
    let finished = false;
    const release = gate();
    await e.subscribe({
      handler: async () => {
        await release.promise;
        finished = true;
      },
    });
    await e.dispatchChange(doc('a'));
    const closing = e.close();
    release.open();
    await closing;
    expect(finished).toBe(true);
  });
});

describe('change feed, cycles and scopes', () => {
  it('returns the newest entries oldest first and [] for limit <= 0', async () => {
    const e = await engine({ changeFeedSize: 4 });
    const sub = await e.subscribe({ predicate: { dataType: 'doc' } });
    await e.dispatchChange(['a', 'b', 'c', 'd', 'e'].map((id) => doc(id)));
    await e.dispatchChange(PageChange.added('z', { dataType: 'unmatched' }));
    await settled(e);
    const feed = await e.getChangeFeed({ limit: 10 });
    expect(feed.map((f) => f.pageId)).toEqual(['c', 'd', 'e', 'z']);
    expect(feed.map((f) => f.seq)).toEqual([3, 4, 5, 6]);
    expect(feed[0]).toMatchObject({ subscriptionId: sub.id, kind: 'page_added', sourceId: 'file:/repo' });
    expect(feed[3]!.subscriptionId).toBeNull();
    expect((await e.getChangeFeed({ limit: 2 })).map((f) => f.pageId)).toEqual(['e', 'z']);
    expect(await e.getChangeFeed({ limit: 0 })).toEqual([]);
    expect(await e.getChangeFeed({ limit: -3 })).toEqual([]);
  });

  it('detects cycles from declared outputs and from observed handler causality', async () => {
    const e = await engine({ episodeBudget: 10 });
    const a = await e.subscribe({ predicate: { dataType: 'a' }, outputs: [{ dataType: 'b' }] });
    const b = await e.subscribe({ predicate: { dataType: 'b' }, outputs: [{ dataType: 'a' }] });
    await e.subscribe({ predicate: { dataType: 'c' }, outputs: [{ dataType: 'd' }] });
    expect(await e.detectCycle()).toEqual([[a.id, b.id].sort()]);
    // Undeclared: x emits y, y emits x; only observation reveals it.
    const x = await e.subscribe({ predicate: { dataType: 'x' }, handler: (ev) => e.dispatchChange(PageChange.added(`${ev.pageId}y`, { dataType: 'y' })) });
    const y = await e.subscribe({ predicate: { dataType: 'y' }, handler: (ev) => e.dispatchChange(PageChange.added(`${ev.pageId}x`, { dataType: 'x' })) });
    await e.dispatchChange(PageChange.added('s', { dataType: 'x' }));
    await settled(e);
    const cycles = await e.detectCycle();
    expect(cycles).toContainEqual([a.id, b.id].sort());
    expect(cycles).toContainEqual([x.id, y.id].sort());
    expect(cycles).toHaveLength(2);
  });

  it('a scope disposes what it owns and survives suspension with the same ids', async () => {
    const e = await engine();
    const outside = await e.subscribe({});
    const scope = e.scope('agent-1');
    const s1 = await scope.subscribe({ predicate: { dataType: 'doc' }, tolerance: { mode: 'relative', value: 0.1 } });
    const s2 = await scope.subscribe({ predicate: { sourcePrefix: 'git:' } });
    const data = JSON.parse(JSON.stringify(scope.serialize()));
    expect(data.subscriptions.map((s: { id: string }) => s.id)).toEqual([s1.id, s2.id]);
    await scope.dispose();
    expect((await e.getStatus()).subscriptions).toBe(1);
    expect(await e.unsubscribe(s1.id)).toBe(false);

    const seen: string[] = [];
    const restored = await e.restoreScope(data, { handlers: { [s1.id]: (ev) => void seen.push(ev.pageId) } });
    expect(restored.subscriptionIds).toEqual([s1.id, s2.id]);
    await e.dispatchChange(doc('after-restore'));
    await settled(e);
    expect(seen).toEqual(['after-restore']);
    // Restoring again collides with the live ids and changes nothing.
    await expect(e.restoreScope(data)).rejects.toMatchObject({ code: 'CONVERGE_DUPLICATE_ID' });
    expect((await e.getStatus()).subscriptions).toBe(3);
    await restored.dispose();
    expect((await e.getStatus()).subscriptions).toBe(1);
    expect(await e.unsubscribe(outside.id)).toBe(true);
  });
});

describe('colony pool tasks', () => {
  const fixture = new URL('../fixtures/tasks/derive.mjs', import.meta.url);

  it('runs task subscriptions in pool threads; what they emit is counted before quiescence', async () => {
    const e = await engine({ pool: { maxThreads: 2 } });
    const derived: PageChangeEvent[] = [];
    const task = await e.subscribe({ predicate: { dataType: 'doc' }, task: { filename: fixture } });
    await e.subscribe({ predicate: { dataType: 'derived' }, handler: (ev) => void derived.push(ev) });
    await e.dispatchChange(['a', 'b', 'c', 'd'].map((id) => doc(id)));
    const report = await settled(e);
    expect(derived.map((ev) => ev.pageId).sort()).toEqual(['a:derived', 'b:derived', 'c:derived', 'd:derived']);
    expect(derived.every((ev) => ev.extra?.['subscriptionId'] === task.id && ev.extra?.['threadId'] !== 0)).toBe(true);
    expect(report.counters.dispatchesEmitted).toBe(8);
    const status = await e.getStatus();
    expect(status.pool.threads).toBeGreaterThan(0);
    expect(status.pool.completed).toBe(4);
    expect(await e.detectCycle()).toEqual([]);
  });

  it('a failing task is counted and reported as dispatch-error', async () => {
    const e = await engine();
    const errors: { subscriptionId: string; error: unknown }[] = [];
    e.on('dispatch-error', (info) => errors.push(info));
    const sub = await e.subscribe({ task: { filename: fixture.href, name: 'boom' } });
    await e.dispatchChange(doc('x'));
    const report = await settled(e);
    expect(report.counters.dispatchesFailed).toBe(1);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.subscriptionId).toBe(sub.id);
    expect(String((errors[0]!.error as Error).message)).toContain('task boom');
    const both = await e.subscribe({ handler: () => undefined, task: { filename: fixture } }).catch((err: unknown) => err);
    expect((both as ValidationError).field).toBe('subscription.task');
  });
});

describe('sources', () => {
  it('mapSource bridges a non-static source once and refuses static ones', async () => {
    const e = await engine();
    const seen: string[] = [];
    await e.subscribe({ handler: (ev) => void seen.push(ev.pageId) });
    let starts = 0;
    const release = gate();
    const source = {
      static: false,
      async *watch(signal: AbortSignal) {
        starts++;
        yield PageChange.added('w1', { sourceId: 'poll:test' });
        yield PageChange.added('w2', { sourceId: 'poll:test' });
        await release.promise;
        if (!signal.aborted) yield PageChange.added('w3', { sourceId: 'poll:test' });
      },
    };
    await e.mapSource(source);
    await e.mapSource(source);
    const deadline = Date.now() + 10_000;
    while (seen.length < 2 && Date.now() < deadline) await e.waitForQuiescence({ timeoutMs: 100 });
    expect(seen).toEqual(['w1', 'w2']);
    release.open();
    while (seen.length < 3 && Date.now() < deadline) await e.waitForQuiescence({ timeoutMs: 100 });
    expect(seen).toEqual(['w1', 'w2', 'w3']);
    expect(starts).toBe(1);
    const error = await e.mapSource({ static: true }).catch((err: unknown) => err);
    expect((error as ConvergeError).code).toBe('CONVERGE_STATIC_SOURCE');
  });

  it('a source yielding an invalid event reports source-error and keeps going', async () => {
    const e = await engine();
    const errors: unknown[] = [];
    e.on('source-error', (info) => errors.push(info));
    const seen: string[] = [];
    await e.subscribe({ handler: (ev) => void seen.push(ev.pageId) });
    await e.mapSource({
      static: false,
      async *watch() {
        yield { kind: 'nope', pageId: 'bad', sourceId: 'poll:test' } as never;
        yield PageChange.added('good', { sourceId: 'poll:test' });
      },
    });
    const deadline = Date.now() + 10_000;
    while (seen.length < 1 && Date.now() < deadline) await e.waitForQuiescence({ timeoutMs: 100 });
    expect(seen).toEqual(['good']);
    expect(errors).toHaveLength(1);
    expect((errors[0] as { error: unknown }).error).toBeInstanceOf(ValidationError);
  });
});

describe('determinism', () => {
  it('the same input sequence gives the same change feed (ignoring timestamps and ids)', async () => {
    async function run(): Promise<unknown[]> {
      const e = await engine({ rateLimit: { minIntervalMs: 60_000, burst: 2, trailing: false }, episodeBudget: 40 });
      const subs = [
        await e.subscribe({ predicate: { dataType: 'doc' }, tolerance: { mode: 'absolute', value: 1 } }),
        await e.subscribe({ predicate: { sourcePrefix: 'file:' } }),
        await e.subscribe({ predicate: { pageIdIn: ['p1', 'p3'] } }),
        await e.subscribe({ predicate: { anyOf: [{ kinds: ['page_invalidated'] }, { scopeId: 's' }] } }),
      ];
      const events: PageChangeEvent[] = [];
      for (let i = 0; i < 60; i++) {
        const pageId = `p${i % 5}`;
        const extra = { value: (i * 7) % 4 };
        if (i % 3 === 0) events.push(PageChange.invalidated(pageId, 'r', { dataType: 'doc', sourceId: 'git:x', extra, ts: 1 }));
        else events.push(PageChange.added(pageId, { dataType: i % 2 ? 'doc' : 'img', sourceId: 'file:/r', scopeId: 's', extra, ts: 1 }));
      }
      for (let i = 0; i < events.length; i += 7) await e.dispatchChange(events.slice(i, i + 7));
      await settled(e);
      const names = new Map(subs.map((s, i) => [s.id, `s${i}`]));
      return (await e.getChangeFeed({ limit: 1000 })).map(({ ts: _ts, episodeId: _ep, subscriptionId, ...rest }) => ({
        ...rest,
        sub: subscriptionId === null ? null : names.get(subscriptionId),
      }));
    }
    const first = await run();
    const second = await run();
    expect(first.length).toBeGreaterThan(60);
    expect(second).toEqual(first);
  });
});
