import { describe, expect, it } from 'vitest';
import { MemoryStore, TaskManager } from '../../src/coordination/index.js';
import { defineStoreSuite } from './store-suite.js';

// A MemoryStore cannot be shared between instances, so every open() returns the test's one store.
defineStoreSuite('MemoryStore', () => {
  const store = new MemoryStore();
  return { open: () => store, dispose: () => store.close() };
});

describe('MemoryStore specifics', () => {
  it('forgets the oldest finished tasks beyond maxFinishedTasks, never live ones', async () => {
    const tm = new TaskManager({ store: new MemoryStore({ maxFinishedTasks: 2 }) });
    await tm.submitMany(['a', 'b', 'c', 'live'].map((id) => ({ id, payload: id })));
    for (const id of ['a', 'b', 'c']) {
      await tm.claim('w', id);
      await tm.report('w', id, id.toUpperCase());
    }
    expect(await tm.getTask('a')).toBeNull();
    expect(await tm.getTask('b')).toMatchObject({ state: 'completed', result: 'B' });
    expect(await tm.getTask('c')).toMatchObject({ state: 'completed', result: 'C' });
    expect(await tm.getTask('live')).toMatchObject({ state: 'pending' });
    // A forgotten id may be used again.
    await tm.submit({ id: 'a', payload: 'again' });
    expect((await tm.getTask('a'))?.payload).toBe('again');
    expect(() => new MemoryStore({ maxFinishedTasks: -1 })).toThrow(expect.objectContaining({ field: 'options.maxFinishedTasks' }));
    expect(new MemoryStore({ maxFinishedTasks: Number.POSITIVE_INFINITY })).toBeInstanceOf(MemoryStore);
  });

  it('hands out copies: mutating a returned task does not change the store', async () => {
    const tm = new TaskManager();
    const submitted = await tm.submit({ id: 'x', payload: 1 });
    (submitted as { state: string }).state = 'completed';
    const claimed = await tm.claimNext('w');
    expect(claimed?.id).toBe('x');
    (claimed as { assignedTo: string }).assignedTo = 'mallory';
    await expect(tm.report('mallory', 'x', 1)).rejects.toMatchObject({ code: 'CONVERGE_NOT_AUTHORIZED' });
    expect((await tm.getTask('x'))?.assignedTo).toBe('w');
  });

  it('keeps up with many routing partitions', async () => {
    const tm = new TaskManager();
    for (let i = 0; i < 200; i++) await tm.submit({ id: `t${String(i).padStart(3, '0')}`, payload: i, topic: `topic-${i % 50}`, priority: i % 7 });
    const seen: string[] = [];
    for (let task = await tm.claimNext('w', { topics: ['topic-3', 'topic-4'] }); task !== null; task = await tm.claimNext('w', { topics: ['topic-3', 'topic-4'] })) seen.push(task.id);
    expect(seen).toHaveLength(8);
    const expected = [...Array(200).keys()].filter((i) => i % 50 === 3 || i % 50 === 4).sort((a, b) => (b % 7) - (a % 7) || a - b);
    expect(seen).toEqual(expected.map((i) => `t${String(i).padStart(3, '0')}`));
    expect(await tm.listPendingTasks()).toHaveLength(192);
  });

  it('rejects waiters when the store closes', async () => {
    const store = new MemoryStore();
    const tm = new TaskManager({ store });
    const { id } = await tm.submit({ payload: 1 });
    const waiting = tm.waitUntilDone(id, { timeoutMs: 60_000 });
    await store.close();
    await expect(waiting).rejects.toMatchObject({ code: 'CONVERGE_CLOSED' });
  });

  it('a manager closes the store it created, not one it was given', async () => {
    const own = new TaskManager();
    await own.close();
    await own.close();
    await expect(own.submit({ payload: 1 })).rejects.toMatchObject({ code: 'CONVERGE_CLOSED' });
    const store = new MemoryStore();
    const given = new TaskManager({ store });
    await given.close();
    await expect(new TaskManager({ store }).submit({ payload: 1 })).resolves.toMatchObject({ state: 'pending' });
  });

  it('validates its options', () => {
    expect(() => new TaskManager({ defaultClaimTtlMs: 0 })).toThrow(expect.objectContaining({ field: 'options.defaultClaimTtlMs' }));
    expect(() => new TaskManager({ store: {} as never })).toThrow(expect.objectContaining({ field: 'options.store' }));
  });
});
