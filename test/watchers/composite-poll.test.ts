import { afterEach, describe, expect, it } from 'vitest';
import { CompositeWatcher, createEngine, type Engine, type PageChangeEvent, SourcePollWatcher } from '../../src/main/index.js';
import type { ContextPageSource, PageRecord, WatchContext } from '../../src/watchers/source.js';
import { Collector, waitFor } from './helpers.js';

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

const ev = (id: string): PageChangeEvent => ({ kind: 'page_added', pageId: id, sourceId: 'test' });

/** A child that yields `count` events as fast as it is asked, then waits for abort. */
class Counter implements ContextPageSource {
  readonly static = false;
  stopped = false;
  constructor(readonly name: string, readonly count: number) {}
  async *watch(signal: AbortSignal): AsyncGenerator<PageChangeEvent> {
    try {
      for (let i = 0; i < this.count; i++) yield ev(`${this.name}:${i}`);
      if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    } finally {
      this.stopped = true;
    }
  }
}

describe('CompositeWatcher', () => {
  it('needs at least one child', () => {
    expect(() => new CompositeWatcher([])).toThrow(expect.objectContaining({ code: 'CONVERGE_VALIDATION' }));
  });

  it('merges children with backpressure (a tiny queue, nothing dropped) and stops them all when left', async () => {
    const a = new Counter('a', 500);
    const b = new Counter('b', 500);
    const composite = new CompositeWatcher([a, b], { capacity: 4 });
    const got: string[] = [];
    for await (const event of composite.watch()) {
      got.push(event.pageId);
      if (got.length === 1000) break;
    }
    expect(new Set(got).size).toBe(1000);
    expect(a.stopped && b.stopped).toBe(true);
  });

  it('isolates and reports a crashing child; stop() is idempotent and ends the iteration', async () => {
    const errors: unknown[] = [];
    const crashing: ContextPageSource = {
      static: false,
      async *watch() {
        yield ev('crash:0');
        throw new Error('child broke');
      },
    };
    const steady = new Counter('ok', 3);
    const composite = new CompositeWatcher([crashing, steady], { onError: (e) => errors.push(e) });
    const got: string[] = [];
    const iteration = (async () => {
      for await (const event of composite.watch()) got.push(event.pageId);
    })();
    await waitFor(() => got.length === 4 && errors.length === 1, 'events of both and the crash report');
    expect(errors[0]).toMatchObject({ code: 'CONVERGE_SOURCE', cause: expect.objectContaining({ message: 'child broke' }) });
    composite.stop();
    composite.stop();
    await iteration;
    expect(steady.stopped).toBe(true);
  });
});

describe('SourcePollWatcher', () => {
  it('diffs snapshots: baseline first, then added, invalidated, replaced (with record changes); a failed snapshot is reported and skipped', async () => {
    const snapshots: (PageRecord[] | Error)[] = [
      [{ pageId: 'p:a', version: '1' }, { pageId: 'p:b', version: '1', records: ['r1', 'r2'] }],
      new Error('api down'),
      [{ pageId: 'p:b', version: '2', records: ['r2', 'r3'] }, { pageId: 'p:c', version: '1' }],
    ];
    let calls = 0;
    const source = {
      static: true,
      sourceId: 'api:catalogue',
      async snapshot(): Promise<PageRecord[]> {
        const next = snapshots[Math.min(calls++, snapshots.length - 1)]!;
        if (next instanceof Error) throw next;
        return next;
      },
    };
    const e = await createEngine();
    engines.push(e);
    const errors: unknown[] = [];
    e.on('source-error', ({ error }) => errors.push(error));
    const seen = new Collector();
    await e.subscribe({ handler: seen.push });
    await e.mapSource(new SourcePollWatcher(source, { pollMs: 20 }));
    await waitFor(() => seen.events.length === 3, 'the diff');
    expect(seen.events.map((x) => `${x.kind} ${x.pageId}`)).toEqual(['page_added p:c', 'page_invalidated p:a', 'page_replaced p:b']);
    expect(seen.events[2]!.extra).toMatchObject({ addedRecords: ['r3'], removedRecords: ['r1'], version: '2', previousVersion: '1' });
    expect(seen.events[0]!.sourceId).toBe('api:catalogue');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'CONVERGE_SOURCE' });
  });

  it('holds quiescence while a poll has changes not yet handed over', async () => {
    const holds: number[] = [];
    let live = 0;
    const context: WatchContext = {
      hold: () => {
        live++;
        holds.push(live);
        return () => void live--;
      },
    };
    let version = 0;
    const watcher = new SourcePollWatcher({ static: true, snapshot: async () => [{ pageId: 'x', version: String(version++) }] }, { pollMs: 5 });
    const controller = new AbortController();
    const iterator = watcher.watch(controller.signal, context);
    const first = await iterator.next();
    expect(first.value).toMatchObject({ kind: 'page_replaced', pageId: 'x' });
    expect(live).toBe(1); // handed out, not yet known to be stored by the consumer
    controller.abort();
    await iterator.return(undefined);
    expect(live).toBe(0);
  });
});
