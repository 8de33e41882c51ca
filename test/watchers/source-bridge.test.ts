import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, type Engine, type PageChangeEvent, StaticSourceError } from '../../src/main/index.js';
import type { ContextPageSource, WatchContext } from '../../src/watchers/source.js';
import { Collector, waitFor } from './helpers.js';
import { gate } from '../helpers/gate.js';

const engines: Engine[] = [];
async function engine(): Promise<Engine> {
  // Source events are external: a budget must not cut them (until the engine exempts them itself).
  const e = await createEngine({ episodeBudget: 1_000_000 });
  engines.push(e);
  return e;
}
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

const added = (i: number): PageChangeEvent => ({ kind: 'page_added', pageId: `p:${i}`, sourceId: 'test:source' });

/** A source whose watch() yields `events` at once, then waits for abort; records its lifecycle. */
class ArraySource implements ContextPageSource {
  readonly static = false;
  readonly sourceId = 'test:source';
  watchCalls = 0;
  finished = false;
  constructor(readonly events: PageChangeEvent[]) {}
  async *watch(signal: AbortSignal): AsyncGenerator<PageChangeEvent> {
    this.watchCalls++;
    try {
      yield* this.events;
      if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    } finally {
      this.finished = true;
    }
  }
}

describe('engine.mapSource', () => {
  it('refuses a static source with StaticSourceError (CONVERGE_STATIC_SOURCE)', async () => {
    const e = await engine();
    const error = await e.mapSource({ static: true }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StaticSourceError);
    expect((error as StaticSourceError).code).toBe('CONVERGE_STATIC_SOURCE');
  });

  it('refuses a non-static source without watch() with a ValidationError naming it', async () => {
    const e = await engine();
    await expect(e.mapSource({ static: false })).rejects.toMatchObject({ code: 'CONVERGE_VALIDATION', message: expect.stringContaining('source.watch') });
  });

  it('polls a non-static source that has only snapshot() and bridges the diff (DESIGN §4: any non-static source)', async () => {
    const e = await engine();
    const seen = new Collector();
    await e.subscribe({ handler: (event) => seen.push(event) });
    let version = 1;
    let snapshots = 0;
    const source: ContextPageSource = {
      static: false,
      snapshot: async () => {
        snapshots++;
        return [{ pageId: 'api:a', version: String(version) }];
      },
    };
    const mapped = await e.mapSource(source);
    await waitFor(() => snapshots >= 1, 'the baseline snapshot');
    version = 2;
    await waitFor(() => seen.has('api:a', 'page_replaced'), 'the replaced page from the next snapshot', 20_000);
    expect(await e.unmapSource(source)).toBe(true);
    expect(mapped.sourceId).toMatch(/^poll:/);
  });

  it('gives a source exactly one bridge however often it is mapped', async () => {
    const e = await engine();
    const seen = new Collector();
    await e.subscribe({ handler: seen.push });
    const source = new ArraySource([added(1), added(2)]);
    await Promise.all([e.mapSource(source), e.mapSource(source), e.mapSource(source)]);
    await waitFor(() => seen.events.length >= 2, 'both events');
    await e.waitForQuiescence();
    expect(source.watchCalls).toBe(1);
    expect(seen.events.map((x) => x.pageId)).toEqual(['p:1', 'p:2']);
  });

  it('writes events that are ready together as a few frames, not one awaited write each', async () => {
    const e = await engine();
    let count = 0;
    await e.subscribe({ handler: () => void count++ });
    const before = (await e.getStatus()).ring.framesWritten;
    const source = new ArraySource(Array.from({ length: 5_000 }, (_, i) => added(i)));
    await e.mapSource(source);
    await waitFor(() => count === 5_000, 'all 5000 events');
    const frames = (await e.getStatus()).ring.framesWritten - before;
    // One frame per event would be 5000; batching gives a handful (plus acknowledgement frames).
    expect(frames).toBeLessThan(200);
  });

  it('unmapping aborts the source and waits for it to finish', async () => {
    const e = await engine();
    const source = new ArraySource([added(1)]);
    const mapped = await e.mapSource(source);
    expect(mapped.sourceId).toBe('test:source');
    expect(await e.unmapSource(source)).toBe(true);
    expect(source.finished).toBe(true);
    expect(await e.unmapSource(source)).toBe(false);
  });

  it('engine.close() stops every bridge', async () => {
    const e = await engine();
    const source = new ArraySource([]);
    await e.mapSource(source);
    await waitFor(() => source.watchCalls === 1, 'watch() to start');
    await e.close();
    expect(source.finished).toBe(true);
  });

  it('reports a failing source as source-error and keeps the engine running', async () => {
    const e = await engine();
    const errors: { sourceId: string; error: unknown }[] = [];
    e.on('source-error', (info) => errors.push(info));
    const failing: ContextPageSource & { sourceId: string } = {
      static: false,
      sourceId: 'test:failing',
      async *watch() {
        throw new Error('upstream broke');
      },
    };
    await e.mapSource(failing);
    await waitFor(() => errors.length === 1, 'the source error');
    expect(errors[0]!.sourceId).toBe('test:failing');
    expect((errors[0]!.error as Error).message).toBe('upstream broke');
    // A failed bridge is forgotten: the source can be mapped again.
    await e.mapSource(failing);
    await waitFor(() => errors.length === 2, 'the second source error');
  });

  it('a malformed event is reported without losing the valid ones around it', async () => {
    const e = await engine();
    const errors: unknown[] = [];
    e.on('source-error', ({ error }) => errors.push(error));
    const seen = new Collector();
    await e.subscribe({ handler: seen.push });
    await e.mapSource(new ArraySource([added(1), { kind: 'nope' } as unknown as PageChangeEvent, added(3)]));
    await waitFor(() => seen.events.length === 2 && errors.length === 1, 'two events and one error');
    expect(seen.events.map((x) => x.pageId)).toEqual(['p:1', 'p:3']);
    expect(errors[0]).toMatchObject({ code: 'CONVERGE_VALIDATION' });
  });
});

describe('in-flight holds count toward quiescence', () => {
  it('an idle engine is not quiescent while a source holds changes it has not yielded yet', async () => {
    const e = await engine();
    const seen = new Collector();
    await e.subscribe({ handler: seen.push });
    const held = gate();
    const go = gate();
    const source: ContextPageSource = {
      static: false,
      async *watch(_signal: AbortSignal, context?: WatchContext) {
        const release = context!.hold(); // a storm is being coalesced
        held.open();
        await go.promise;
        yield added(7);
        release();
      },
    };
    await e.mapSource(source);
    await held.promise;
    let settled: unknown = 'pending';
    const waiting = e.waitForQuiescence().then((report) => (settled = report));
    // The quiescence wait travels the ring behind nothing; only the hold keeps it from answering.
    expect(await e.waitForQuiescence({ timeoutMs: 300 })).toBeNull();
    expect(settled).toBe('pending');
    go.open();
    const report = await waiting;
    expect(report).not.toBeNull();
    expect(seen.has('p:7')).toBe(true);
  });

  it('an episode does not end while a hold is taken, and ends once it is released', async () => {
    const e = await engine();
    const quiescences: string[] = [];
    e.on('quiescence', (r) => quiescences.push(r.episodeId));
    const seen = new Collector();
    await e.subscribe({ handler: seen.push });
    const go = gate();
    const yielded = gate();
    const source: ContextPageSource = {
      static: false,
      async *watch(_signal: AbortSignal, context?: WatchContext) {
        const release = context!.hold();
        yield added(1);
        yielded.open();
        await go.promise;
        yield added(2);
        release();
      },
    };
    await e.mapSource(source);
    await yielded.promise;
    await waitFor(() => seen.has('p:1'), 'the first event');
    expect(await e.waitForQuiescence({ timeoutMs: 300 })).toBeNull();
    expect(quiescences).toEqual([]);
    go.open();
    const report = await e.waitForQuiescence({ timeoutMs: 30_000 });
    expect(report?.counters.eventsReceived).toBe(2);
    expect(quiescences).toHaveLength(1);
  });
});
