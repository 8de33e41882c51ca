/** The colony's EventBus: filters, bounded handler concurrency, timeouts, isolation, history, waitFor. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClosedError, EventBus, ValidationError } from '../../src/main/index.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('EventBus', () => {
  it('subscriptions get sub_1, sub_2, … and see only what their type, colony and stream filters select', async () => {
    const bus = new EventBus<{ 'a': number; 'b': string }>();
    const seen: string[] = [];
    const s1 = bus.subscribe({ types: 'a', handler: (e) => void seen.push(`s1:${e.type}:${String(e.data)}`) });
    const s2 = bus.subscribe({ types: ['a', 'b'], colonyId: 'c1', handler: (e) => void seen.push(`s2:${e.type}`) });
    const s3 = bus.subscribe({ streamId: 'worker:w1', handler: (e) => void seen.push(`s3:${e.type}`) });
    expect([s1, s2, s3]).toEqual(['sub_1', 'sub_2', 'sub_3']);
    await bus.publish({ type: 'a', data: 1 });
    await bus.publish({ type: 'b', data: 'x', colonyId: 'c1' });
    await bus.publish({ type: 'a', data: 2, colonyId: 'c2', streamId: 'worker:w1' });
    expect(seen).toEqual(['s1:a:1', 's2:b', 's1:a:2', 's3:a']);
    expect(bus.unsubscribe(s1)).toBe(true);
    expect(bus.unsubscribe(s1)).toBe(false);
    await bus.publish({ type: 'a', data: 3 });
    expect(seen).toHaveLength(4);
  });

  it('runs at most maxConcurrentHandlers at once; the rest wait FIFO', async () => {
    const bus = new EventBus({ maxConcurrentHandlers: 2 });
    let running = 0;
    let peak = 0;
    const gates: (() => void)[] = [];
    const order: number[] = [];
    bus.subscribe({
      handler: async (e) => {
        running++;
        peak = Math.max(peak, running);
        order.push(e.data as number);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
      },
    });
    const published = [1, 2, 3, 4, 5].map((n) => bus.publish({ type: 't', data: n }));
    await vi.waitFor(() => expect(gates).toHaveLength(2));
    expect(bus.getStats()).toMatchObject({ running: 2, waiting: 3 });
    while (order.length < 5 || gates.length > 0) {
      await vi.waitFor(() => expect(gates.length).toBeGreaterThan(0));
      gates.shift()!();
    }
    await Promise.all(published);
    expect(peak).toBe(2);
    expect(order).toEqual([1, 2, 3, 4, 5]);
  });

  it('a failing handler is isolated and counted; a hanging one times out and frees its slot', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const errors: string[] = [];
    const bus = new EventBus({ maxConcurrentHandlers: 1, handlerTimeoutMs: 15_000, onHandlerError: (error, info) => errors.push(`${info.subscriptionId}:${(error as Error).message}`) });
    const seen: string[] = [];
    bus.subscribe({ types: 'boom', handler: () => Promise.reject(new Error('nope')) });
    bus.subscribe({ types: 'hang', handler: () => new Promise(() => undefined) });
    bus.subscribe({ handler: (e) => void seen.push(e.type) });
    await bus.publish({ type: 'boom' });
    expect(seen).toEqual(['boom']);
    const hanging = bus.publish({ type: 'hang' });
    await vi.advanceTimersByTimeAsync(15_000);
    await hanging;
    expect(seen).toEqual(['boom', 'hang']);
    expect(errors).toEqual(['sub_1:nope', expect.stringMatching(/^sub_2:event handler sub_2 did not settle within 15000 ms/)]);
    expect(bus.getStats()).toMatchObject({ handlerErrors: 1, handlerTimeouts: 1, running: 0, waiting: 0, published: 2 });
  });

  it('without onHandlerError a failure is a process warning, once per subscription', async () => {
    const bus = new EventBus();
    bus.subscribe({ handler: () => {
      throw new Error('bad handler');
    } });
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      await bus.publish({ type: 'x' });
      await bus.publish({ type: 'x' });
      await vi.waitFor(() => expect(warnings.filter((w) => (w as { code?: string }).code === 'CONVERGE_EVENT_HANDLER')).toHaveLength(1));
    } finally {
      process.off('warning', onWarning);
    }
    expect(bus.getStats().handlerErrors).toBe(2);
  });

  it('keeps maxHistory events, newest first, filtered and limited', async () => {
    let now = 1000;
    const bus = new EventBus({ maxHistory: 3, now: () => now++ });
    for (const [type, colonyId] of [['a', 'c1'], ['b', 'c1'], ['a', 'c2'], ['a', 'c1']] as const) await bus.publish({ type, colonyId });
    expect(bus.getHistory().map((e) => `${e.id}:${e.type}`)).toEqual(['4:a', '3:a', '2:b']);
    expect(bus.getHistory({ types: 'a', colonyId: 'c1' }).map((e) => e.id)).toEqual([4]);
    expect(bus.getHistory({ limit: 2 }).map((e) => e.id)).toEqual([4, 3]);
    expect(bus.getHistory()[0]!.timestamp).toBe(1003);
  });

  it('waitFor resolves with the next matching event, or null at its timeout', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const bus = new EventBus();
    const waiting = bus.waitFor({ types: 'done', filter: (e) => e.data === 2, timeoutMs: 1000 });
    await bus.publish({ type: 'done', data: 1 });
    await bus.publish({ type: 'done', data: 2 });
    expect((await waiting)?.data).toBe(2);
    const none = bus.waitFor({ types: 'never', timeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(await none).toBeNull();
    expect(bus.getStats().subscriptions).toBe(0);
  });

  it('validates input; after close, publish rejects and waiters resolve null', async () => {
    const bus = new EventBus();
    expect(() => bus.subscribe({ types: '', handler: () => undefined })).toThrow(ValidationError);
    await expect(bus.publish({ type: '' })).rejects.toMatchObject({ field: 'event.type' });
    expect(() => new EventBus({ maxConcurrentHandlers: 0 })).toThrow(ValidationError);
    const waiting = bus.waitFor({ types: 'x', timeoutMs: 60_000 });
    bus.close();
    bus.close();
    expect(await waiting).toBeNull();
    await expect(bus.publish({ type: 'x' })).rejects.toBeInstanceOf(ClosedError);
  });
});
