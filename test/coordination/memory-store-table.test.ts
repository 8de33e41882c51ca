/**
 * The memory store's id index: generated ids are found through a direct-mapped table keyed by
 * their numeric suffix (the per-process counter), which grows at half full and shrinks at one-eighth
 * full; other ids, and keyed ids whose slot is taken, live in a fallback map; records of forgotten
 * finished tasks are reused. None of that is visible in the API, so these tests hold it to the
 * observable contract: every task stays findable under its own id whatever it clashes with, lists
 * and claim order stay right across resizes, and a reused record never leaks its past.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryStore, StaleClaimError, TaskManager, type Task } from '../../src/coordination/index.js';
import { DuplicateIdError, InvalidStateError, NotAuthorizedError } from '../../src/shared/errors.js';

/** A clock for the managers (claimedAt and the time part of generated ids); only moves forward. */
let clockMs = Date.now() + 60_000;
const clock = (): number => clockMs;

const GENERATED = /^task_[0-9a-z]{13}1[0-9]{9}$/;
const pad9 = (n: number): string => String(n).padStart(9, '0');
/** The counter of a generated id (what the store keys it by). */
const suffixOf = (id: string): number => Number(id.slice(-9));
/** `id` with another 4-character process tag: the generated shape and suffix, another id. */
const otherTag = (id: string): string => `${id.slice(0, 14)}${id.slice(14, 18) === 'zzzz' ? 'yyyy' : 'zzzz'}${id.slice(18)}`;
const claimOrder = (a: { priority: number; id: string }, b: { priority: number; id: string }): number =>
  b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const errorName = (error: unknown): string => (error instanceof Error ? error.name : String(error));

/** What a just-submitted task must look like, whatever record the store recycled for it. */
function fresh(id: string, payload: unknown, extra: Partial<Task> = {}): Task {
  return {
    id,
    state: 'pending',
    payload,
    result: null,
    poolId: null,
    topic: null,
    requiredCapabilities: [],
    priority: 0,
    assignedTo: null,
    claimedAt: null,
    claimTtlMs: null,
    attempts: 0,
    fencingToken: 0,
    ...extra,
  };
}

describe('MemoryStore id index: ids that clash on the numeric suffix', () => {
  it('keeps a generated task and custom ids with its suffix (or its slot) apart: get, claim, report, fail, cancel', async () => {
    const store = new MemoryStore();
    const tm = new TaskManager({ store, now: clock });
    const g1 = await tm.submit({ payload: 'g1' });
    expect(g1.id).toMatch(GENERATED);
    const s1 = suffixOf(g1.id);
    // Custom ids that land on g1's slot: same suffix (plain and in the generated shape), and the
    // same suffix modulo the initial table length (1024) and a larger power of two.
    const clashing = [`user-${pad9(s1)}`, otherTag(g1.id), `ring-${pad9(s1 + 1024)}`, `ring-${pad9(s1 + 4096)}`];
    // A custom id that takes the slot of the next generated id before it exists.
    const pre = `pre-${pad9(s1 + 1)}`;
    for (const id of [...clashing, pre]) expect(await tm.submit({ id, payload: `p:${id}` })).toEqual(fresh(id, `p:${id}`));
    const g2 = await tm.submit({ payload: 'g2' });
    expect(suffixOf(g2.id)).toBe(s1 + 1); // the clash really happened
    const all = [g1.id, ...clashing, pre, g2.id];
    const payloadOf = (id: string): string => (id === g1.id ? 'g1' : id === g2.id ? 'g2' : `p:${id}`);

    for (const id of all) expect(await tm.getTask(id)).toEqual(fresh(id, payloadOf(id)));
    expect((await tm.listPendingTasks()).map((t) => t.id)).toEqual(all);
    // Ids that share the suffix but were never submitted are unknown.
    for (const id of [`nobody-${pad9(s1)}`, `nobody-${pad9(s1 + 1)}`, `${g1.id.slice(0, -9)}${pad9(s1 + 2048)}`]) {
      expect(await tm.getTask(id)).toBeNull();
      expect(await tm.claim('w', id)).toBe(false);
      expect(await tm.cancelTask(id)).toBe(false);
    }
    // Every one of them is a taken id, through both insert paths.
    for (const id of all) {
      await expect(tm.submit({ id, payload: 'again' })).rejects.toBeInstanceOf(DuplicateIdError);
      expect(() => store.insertTask({ id, payload: 'again', poolId: null, topic: null, requiredCapabilities: [], priority: 0, claimTtlMs: null })).toThrow(DuplicateIdError);
    }

    // Claims by id go to the right task only.
    for (const [index, id] of all.entries()) {
      const claimed = await tm.claimTask(`agent-${index}`, id);
      expect(claimed).toMatchObject({ id, state: 'assigned', assignedTo: `agent-${index}`, attempts: 1, fencingToken: 1, payload: payloadOf(id) });
      for (const other of all.slice(index + 1)) expect((await tm.getTask(other))?.state).toBe('pending');
    }
    // A holder of one cannot report another with the same suffix.
    await expect(tm.report('agent-0', clashing[0]!, 'x')).rejects.toBeInstanceOf(NotAuthorizedError);
    await expect(tm.report('agent-1', g1.id, 'x')).rejects.toBeInstanceOf(NotAuthorizedError);

    // Settle each a different way; the others are untouched each time.
    const expected = new Map<string, Partial<Task>>(all.map((id, index) => [id, { state: 'assigned', assignedTo: `agent-${index}`, result: null }]));
    const check = async (): Promise<void> => {
      for (const id of all) expect(await tm.getTask(id), id).toMatchObject({ id, payload: payloadOf(id), ...expected.get(id) });
    };
    await tm.report('agent-0', g1.id, 'r:g1', { fencingToken: 1 });
    expected.set(g1.id, { state: 'completed', assignedTo: 'agent-0', result: 'r:g1' });
    await check();
    await tm.report('agent-1', clashing[0]!, 'r:user');
    expected.set(clashing[0]!, { state: 'completed', assignedTo: 'agent-1', result: 'r:user' });
    await check();
    expect(await tm.failTask(clashing[1]!, 'boom', { agentId: 'agent-2', fencingToken: 1 })).toBe(true);
    expected.set(clashing[1]!, { state: 'failed', assignedTo: 'agent-2', result: 'boom' });
    await check();
    expect(await tm.cancelTask(clashing[2]!)).toBe(true);
    expected.set(clashing[2]!, { state: 'cancelled', assignedTo: 'agent-3', result: null });
    await check();
    expect(await tm.cancelTask(clashing[2]!)).toBe(false);
    await tm.report('agent-4', clashing[3]!, 'r:ring2');
    await tm.report('agent-5', pre, 'r:pre');
    await tm.report('agent-6', g2.id, 'r:g2');
    expected.set(clashing[3]!, { state: 'completed', result: 'r:ring2' });
    expected.set(pre, { state: 'completed', result: 'r:pre' });
    expected.set(g2.id, { state: 'completed', result: 'r:g2' });
    await check();
    await expect(tm.report('agent-6', g2.id, 'twice')).rejects.toBeInstanceOf(InvalidStateError);
    expect(await tm.listPendingTasks()).toEqual([]);
  });

  it('claims clashing tasks in (priority desc, id) order, and finds each again after claimNext', async () => {
    const tm = new TaskManager({ store: new MemoryStore(), now: clock });
    const g1 = await tm.submit({ payload: 0, priority: 1 });
    const s1 = suffixOf(g1.id);
    const customs = [
      { id: `a-${pad9(s1)}`, priority: 1 },
      { id: `z-${pad9(s1)}`, priority: 1 },
      { id: otherTag(g1.id), priority: 1 },
      { id: `${g1.id.slice(0, -9)}${pad9(s1 + 500_000)}`, priority: 1 }, // same head, a far counter
      { id: `m-${pad9(s1 + 1)}`, priority: 2 },
      { id: `m-${pad9(s1 + 1025)}`, priority: 0 },
    ];
    for (const { id, priority } of customs) await tm.submit({ id, payload: id, priority });
    const g2 = await tm.submit({ payload: 0, priority: 1 }); // its slot is taken by m-…(s1+1)
    const g3 = await tm.submit({ payload: 0, priority: 2 });
    const tasks = [{ id: g1.id, priority: 1 }, ...customs, { id: g2.id, priority: 1 }, { id: g3.id, priority: 2 }];
    const order = [...tasks].sort(claimOrder).map((t) => t.id);
    const claimed: string[] = [];
    for (let task = await tm.claimNext('w'); task !== null; task = await tm.claimNext('w')) {
      claimed.push(task.id);
      expect(await tm.getTask(task.id)).toMatchObject({ id: task.id, state: 'assigned', fencingToken: 1 });
    }
    expect(claimed).toEqual(order);
    expect(new Set(claimed).size).toBe(tasks.length);
  });

  it('finds a clashing task after the one holding its slot is forgotten, and reuses both ids only once forgotten', async () => {
    const store = new MemoryStore({ maxFinishedTasks: 0 });
    const tm = new TaskManager({ store, now: clock });
    const g1 = await tm.submit({ payload: 'g1' });
    const s1 = suffixOf(g1.id);
    const side = `side-${pad9(s1)}`; // goes to the fallback map: g1 holds the slot
    await tm.submit({ id: side, payload: 'side' });
    await tm.claim('w', g1.id);
    await tm.report('w', g1.id, 'done'); // forgotten at once: the slot is free again
    expect(await tm.getTask(g1.id)).toBeNull();
    expect(await tm.getTask(side)).toEqual(fresh(side, 'side'));
    await expect(tm.submit({ id: side, payload: 'dup' })).rejects.toBeInstanceOf(DuplicateIdError);
    // A new id with the same suffix takes the free slot; both are found.
    const next = `next-${pad9(s1)}`;
    await tm.submit({ id: next, payload: 'next' });
    expect(await tm.getTask(side)).toEqual(fresh(side, 'side'));
    expect(await tm.getTask(next)).toEqual(fresh(next, 'next'));
    // The forgotten generated id may be submitted again, as a custom id.
    await tm.submit({ id: g1.id, payload: 'g1 again' });
    expect(await tm.getTask(g1.id)).toEqual(fresh(g1.id, 'g1 again'));
    // Forget the one in the fallback map; the others stay.
    expect(await tm.cancelTask(side)).toBe(true);
    expect(await tm.getTask(side)).toBeNull();
    expect(await tm.getTask(next)).toEqual(fresh(next, 'next'));
    expect(await tm.getTask(g1.id)).toEqual(fresh(g1.id, 'g1 again'));
    await tm.submit({ id: side, payload: 'side again' });
    expect(await tm.getTask(side)).toEqual(fresh(side, 'side again'));
    expect((await tm.listPendingTasks()).map((t) => t.id)).toEqual([next, g1.id, side]);
    const order: string[] = [];
    for (let task = await tm.claimNext('w'); task !== null; task = await tm.claimNext('w')) order.push(task.id);
    expect(order).toEqual([next, g1.id, side].sort());
  });

  it('insertTasks (submitMany) with clashing suffixes is all or none', async () => {
    const store = new MemoryStore();
    const tm = new TaskManager({ store, now: clock });
    const g = await tm.submit({ payload: 'g' });
    const s = suffixOf(g.id);
    const batch = [`b1-${pad9(s)}`, `b2-${pad9(s)}`, `b3-${pad9(s + 1024)}`];
    await expect(tm.submitMany([...batch, batch[0]!].map((id) => ({ id, payload: id })))).rejects.toBeInstanceOf(DuplicateIdError);
    await expect(tm.submitMany([...batch, g.id].map((id) => ({ id, payload: id })))).rejects.toBeInstanceOf(DuplicateIdError);
    for (const id of batch) expect(await tm.getTask(id)).toBeNull();
    expect((await tm.submitMany(batch.map((id) => ({ id, payload: id })))).map((t) => t.id)).toEqual(batch);
    for (const id of batch) expect(await tm.getTask(id)).toEqual(fresh(id, id));
    expect(await tm.getTask(g.id)).toEqual(fresh(g.id, 'g'));
    expect((await tm.listPendingTasks()).map((t) => t.id)).toEqual([g.id, ...batch]);
  });
});

describe('MemoryStore id index: growth and shrink', () => {
  it('keeps get, submission order and claim order right through 20 000 submits, a drain that shrinks the table, and 20 000 more', async () => {
    interface Row {
      id: string;
      priority: number;
      payload: number;
      state: 'pending' | 'completed' | 'failed' | 'cancelled';
    }
    const MAX_FINISHED = 64;
    const store = new MemoryStore({ maxFinishedTasks: MAX_FINISHED });
    const tm = new TaskManager({ store, now: clock });
    const rows: Row[] = [];
    const known = new Map<string, Row>();
    const finished: Row[] = [];
    let lastSuffix = -1;
    let serial = 0;

    const submitBatch = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const n = serial++;
        if (n % 3000 === 2999) clockMs += 1; // a new id head now and then
        const priority = ((n * 7919) % 5) - 2;
        let id: string | undefined;
        if (n % 41 === 0 && lastSuffix >= 0) id = `pre${n}-${pad9(lastSuffix + 1)}`; // takes the next generated id's slot
        else if (n % 97 === 0) id = `custom-${n}`; // not keyed at all
        else if (n % 131 === 0 && lastSuffix >= 0) id = `ring${n}-${pad9(lastSuffix + 1024)}`;
        const task = await tm.submit(id === undefined ? { payload: n, priority } : { id, payload: n, priority });
        if (id === undefined) {
          expect(task.id).toMatch(GENERATED);
          lastSuffix = suffixOf(task.id);
        }
        const row: Row = { id: task.id, priority, payload: n, state: 'pending' };
        rows.push(row);
        known.set(row.id, row);
      }
    };
    const finish = (row: Row, state: Row['state']): void => {
      row.state = state;
      finished.push(row);
      if (finished.length > MAX_FINISHED) known.delete(finished.shift()!.id);
    };
    const pendingRows = (): Row[] => rows.filter((row) => row.state === 'pending' && known.get(row.id) === row);
    /** The pending list, and what getTask says of every `every`-th task ever submitted (one comparison). */
    const checkAll = async (every = 1): Promise<void> => {
      expect((await tm.listPendingTasks()).map((t) => t.id)).toEqual(pendingRows().map((row) => row.id));
      const got: string[] = [];
      const want: string[] = [];
      for (let index = 0; index < rows.length; index += every) {
        const row = rows[index]!;
        const task = await tm.getTask(row.id);
        got.push(task === null ? `${row.id} unknown` : `${task.id} ${task.state} ${String(task.payload)} ${task.priority}`);
        want.push(known.get(row.id) !== row ? `${row.id} unknown` : `${row.id} ${row.state} ${row.payload} ${row.priority}`);
      }
      expect(got).toEqual(want);
    };
    const claimAndSettle = async (count: number): Promise<void> => {
      const expected = pendingRows().sort(claimOrder).slice(0, count);
      for (const [index, row] of expected.entries()) {
        const task = await tm.claimNext('w');
        expect(task?.id).toBe(row.id);
        if (index % 3 === 0) {
          await tm.report('w', row.id, index, { fencingToken: 1 });
          finish(row, 'completed');
        } else if (index % 3 === 1) {
          expect(await tm.failTask(row.id, index, { agentId: 'w' })).toBe(true);
          finish(row, 'failed');
        } else {
          expect(await tm.cancelTask(row.id)).toBe(true);
          finish(row, 'cancelled');
        }
      }
    };

    await submitBatch(20_000);
    await checkAll();
    // Cancel every third pending task while pending (lazy heap entries), then claim most of the rest.
    for (const [index, row] of pendingRows().entries()) {
      if (index % 3 !== 1) continue;
      expect(await tm.cancelTask(row.id)).toBe(true);
      finish(row, 'cancelled');
    }
    await checkAll();
    for (let round = 0; round < 6; round++) {
      await claimAndSettle(2_000);
      await checkAll(round === 5 ? 1 : 7);
    }
    expect(pendingRows().length).toBeLessThan(1_500);
    await submitBatch(20_000);
    await checkAll();
    await claimAndSettle(pendingRows().length);
    expect(await tm.claimNext('w')).toBeNull();
    expect(await tm.listPendingTasks()).toEqual([]);
    await checkAll();
  });
});

describe('MemoryStore record reuse', () => {
  it('forgotten tasks are unknown, and new tasks never show a previous task’s fields', async () => {
    const store = new MemoryStore({ maxFinishedTasks: 2 });
    const tm = new TaskManager({ store, now: clock });
    const old: string[] = [];
    // Ten tasks with a history: two claims (an expired one in between), then completed, failed or
    // cancelled. Each is the best pending task when its turn comes (decreasing priorities), so the
    // second claim, through claimNext, takes its record out of the heap and makes it reusable.
    for (let i = 0; i < 10; i++) {
      const task = await tm.submit(i % 2 === 0 ? { payload: { old: i }, claimTtlMs: 5, priority: 20 - i } : { id: `old-${i}`, payload: { old: i }, claimTtlMs: 5, priority: 20 - i });
      old.push(task.id);
    }
    for (const [i, id] of old.entries()) {
      // Half are first claimed by id (the record stays in its heap), half through claimNext.
      const first = i % 2 === 0 ? await tm.claimTask(`first-${i}`, id) : await tm.claimNext(`first-${i}`);
      expect(first).toMatchObject({ id, attempts: 1, fencingToken: 1 });
      clockMs += 10;
      expect(await tm.releaseExpiredClaims()).toEqual([id]);
      const second = await tm.claimNext(`second-${i}`);
      expect(second?.id).toBe(id);
      expect(second).toMatchObject({ attempts: 2, fencingToken: 2, assignedTo: `second-${i}` });
      if (i % 3 === 0) await tm.report(`second-${i}`, id, { result: i }, { fencingToken: 2 });
      else if (i % 3 === 1) expect(await tm.failTask(id, { reason: i }, { agentId: `second-${i}`, fencingToken: 2 })).toBe(true);
      else expect(await tm.cancelTask(id)).toBe(true);
    }
    const retained = old.slice(-2);
    const forgotten = old.slice(0, -2);
    const retainedSnapshots = await Promise.all(retained.map((id) => tm.getTask(id)));
    expect(retainedSnapshots.map((t) => t?.state)).toEqual(['cancelled', 'completed']);
    for (const id of forgotten) {
      expect(await tm.getTask(id)).toBeNull();
      expect(await tm.claim('x', id)).toBe(false);
      expect(await tm.cancelTask(id)).toBe(false);
      expect(await tm.failTask(id, 'late')).toBe(false);
      await expect(tm.report(`second-${old.indexOf(id)}`, id, 'late', { fencingToken: 2 })).resolves.toBeUndefined();
      await expect(tm.waitUntilDone(id, { timeoutMs: 0 })).resolves.toBeNull();
    }

    // New tasks through every insert path, some reusing forgotten ids.
    const created: Task[] = [];
    created.push(await tm.submit({ payload: 'n0' }));
    created.push(await tm.submit({ id: forgotten[1]!, payload: 'n1', priority: 3 }));
    created.push(await tm.submit({ payload: 'n2', topic: 't', claimTtlMs: 1_000 }));
    created.push(...(await tm.submitMany([{ payload: 'n3' }, { id: forgotten[0]!, payload: 'n4', priority: -1 }])));
    created.push(store.insertTask({ id: 'direct', payload: 'n5', poolId: null, topic: null, requiredCapabilities: ['cap'], priority: 0, claimTtlMs: null }));
    for (let i = 6; i < 12; i++) created.push(await tm.submit({ payload: `n${i}` }));
    const extras: Partial<Task>[] = [{}, { priority: 3 }, { topic: 't', claimTtlMs: 1_000 }, {}, { priority: -1 }, { requiredCapabilities: ['cap'] }, {}, {}, {}, {}, {}, {}];
    for (const [i, task] of created.entries()) {
      const expected = fresh(task.id, `n${i}`, extras[i]);
      expect(task, `returned ${i}`).toEqual(expected);
      expect(await tm.getTask(task.id), `stored ${i}`).toEqual(expected);
    }
    // The remembered finished tasks were not recycled under the new ones.
    expect(await Promise.all(retained.map((id) => tm.getTask(id)))).toEqual(retainedSnapshots);

    // Their first claim is claim 1, not a continuation of a recycled record's count.
    const order = [...created].sort(claimOrder).map((t) => t.id);
    for (const id of order) {
      clockMs += 1;
      const task = await tm.claimNext('new', { topics: ['t'], capabilities: ['cap'] });
      expect(task).toMatchObject({ id, state: 'assigned', assignedTo: 'new', claimedAt: clockMs, attempts: 1, fencingToken: 1, result: null });
    }
    expect(await tm.claimNext('new', { topics: ['t'], capabilities: ['cap'] })).toBeNull();
    // A recycled record's old token (2) is stale for the new task.
    await expect(tm.report('new', created[0]!.id, 'r', { fencingToken: 2 })).rejects.toBeInstanceOf(StaleClaimError);
    await tm.report('new', created[0]!.id, 'r', { fencingToken: 1 });
    expect(await tm.getTask(created[0]!.id)).toMatchObject({ state: 'completed', result: 'r', attempts: 1, fencingToken: 1 });
  });

  it('a task cancelled while pending is forgotten without its record being handed out twice', async () => {
    const store = new MemoryStore({ maxFinishedTasks: 0 });
    const tm = new TaskManager({ store, now: clock });
    const pending: Task[] = [];
    for (let i = 0; i < 6; i++) pending.push(await tm.submit({ payload: `old${i}`, priority: i % 2 }));
    // Cancelled while pending: forgotten at once, but still in the claim heap until it surfaces.
    for (const task of pending.slice(0, 4)) expect(await tm.cancelTask(task.id)).toBe(true);
    for (const task of pending.slice(0, 4)) expect(await tm.getTask(task.id)).toBeNull();
    const added: Task[] = [];
    for (let i = 0; i < 6; i++) added.push(await tm.submit({ payload: `new${i}`, priority: 2 - (i % 3) }));
    for (const task of added) expect(await tm.getTask(task.id)).toEqual(fresh(task.id, task.payload, { priority: task.priority }));
    const live = [...pending.slice(4), ...added];
    const expected = [...live].sort(claimOrder);
    const claimed: Task[] = [];
    for (let task = await tm.claimNext('w'); task !== null; task = await tm.claimNext('w')) {
      claimed.push(task);
      await tm.report('w', task.id, `r:${task.id}`); // forgotten at once: its record may be recycled
      // A submit between claims may take a record that has just left the heap.
      if (claimed.length === 3) live.push(await tm.submit({ payload: 'late', priority: -5 }));
    }
    expect(claimed.map((t) => t.id)).toEqual([...expected.map((t) => t.id), live.at(-1)!.id]);
    for (const task of claimed) {
      const source = live.find((t) => t.id === task.id)!;
      expect(task).toMatchObject({ payload: source.payload, priority: source.priority, attempts: 1, fencingToken: 1, result: null });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Model test
// ---------------------------------------------------------------------------------------------

interface ModelTask {
  id: string;
  state: 'pending' | 'assigned' | 'completed' | 'failed' | 'cancelled';
  payload: number;
  result: unknown;
  priority: number;
  assignedTo: string | null;
  claimedAt: number | null;
  claimTtlMs: number | null;
  attempts: number;
  fencingToken: number;
}

type CustomId =
  | { how: 'fixed'; name: string }
  | { how: 'suffixOf'; index: number; prefix: string } // another id with a known task's suffix
  | { how: 'exact'; index: number } // a known (or forgotten) task's exact id
  | { how: 'ahead'; delta: number } // the suffix of a generated id still to come (or its slot)
  | { how: 'shape'; delta: number; sameHead: boolean }; // the generated shape itself

type Op =
  | { kind: 'submit'; count: number; priority: number; ttl: number | null; custom: CustomId | null }
  | { kind: 'claimNext'; agent: string }
  | { kind: 'claim'; agent: string; index: number }
  | { kind: 'report'; agent: string; index: number; token: 'current' | 'stale' | 'none' }
  | { kind: 'drain'; count: number }
  | { kind: 'cancel'; index: number }
  | { kind: 'fail'; index: number; holder: 'none' | 'current' | 'stale'; agent: string }
  | { kind: 'get'; index: number }
  | { kind: 'list' }
  | { kind: 'release' }
  | { kind: 'advance'; ms: number };

const agentArb = fc.constantFrom('x', 'y');
const indexArb = fc.nat(4_000);
const customArb: fc.Arbitrary<CustomId> = fc.oneof(
  fc.record({ how: fc.constant('fixed' as const), name: fc.constantFrom('a', 'b', 'zz', 'n123456789', 'm000000001', '000000000x') }),
  fc.record({ how: fc.constant('suffixOf' as const), index: indexArb, prefix: fc.constantFrom('u-', 'v-', '') }),
  fc.record({ how: fc.constant('exact' as const), index: indexArb }),
  fc.record({ how: fc.constant('ahead' as const), delta: fc.constantFrom(1, 2, 3, 1024, 1025, 2048, 4096) }),
  fc.record({ how: fc.constant('shape' as const), delta: fc.integer({ min: -3, max: 3 }), sameHead: fc.boolean() }),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('submit' as const), count: fc.constant(1), priority: fc.integer({ min: -1, max: 1 }), ttl: fc.constantFrom(null, null, 5), custom: fc.constant(null) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('submit' as const), count: fc.constant(1), priority: fc.integer({ min: -1, max: 1 }), ttl: fc.constantFrom(null, 5), custom: customArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('submit' as const), count: fc.integer({ min: 100, max: 1_200 }), priority: fc.integer({ min: -1, max: 1 }), ttl: fc.constant(null), custom: fc.constant(null) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('claimNext' as const), agent: agentArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('claim' as const), agent: agentArb, index: indexArb }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('report' as const), agent: agentArb, index: indexArb, token: fc.constantFrom('current' as const, 'stale' as const, 'none' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drain' as const), count: fc.integer({ min: 50, max: 1_200 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cancel' as const), index: indexArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fail' as const), index: indexArb, holder: fc.constantFrom('none' as const, 'current' as const, 'stale' as const), agent: agentArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('get' as const), index: indexArb }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'list' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'release' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 8 }) }) },
);

async function runModel(maxFinished: number, ops: readonly Op[]): Promise<void> {
  const store = new MemoryStore({ maxFinishedTasks: maxFinished });
  const tm = new TaskManager({ store, now: clock });
  /** Tasks the store must know, by id; submission order is `order` filtered to these. */
  const model = new Map<string, ModelTask>();
  const order: ModelTask[] = [];
  /** Every id ever submitted (for picking targets, forgotten ones included). */
  const everId: string[] = [];
  const finished: ModelTask[] = [];
  let lastGenerated: string | null = null;
  let payloadSerial = 0;

  const pick = (index: number): string => (everId.length === 0 ? 'none' : everId[index % everId.length]!);
  const live = (id: string): ModelTask | undefined => model.get(id);
  const settle = (task: ModelTask, state: 'completed' | 'failed' | 'cancelled', result: unknown): void => {
    task.state = state;
    task.result = result;
    finished.push(task);
    while (finished.length > maxFinished) model.delete(finished.shift()!.id);
  };
  const claimInModel = (task: ModelTask, agent: string): void => {
    Object.assign(task, { state: 'assigned', assignedTo: agent, claimedAt: clockMs, attempts: task.attempts + 1, fencingToken: task.fencingToken + 1 });
  };
  const bestPending = (): ModelTask | undefined => {
    let best: ModelTask | undefined;
    for (const task of model.values()) if (task.state === 'pending' && (best === undefined || claimOrder(task, best) < 0)) best = task;
    return best;
  };
  const view = (task: ModelTask): Task => ({
    id: task.id,
    state: task.state,
    payload: task.payload,
    result: task.result,
    poolId: null,
    topic: null,
    requiredCapabilities: [],
    priority: task.priority,
    assignedTo: task.assignedTo,
    claimedAt: task.claimedAt,
    claimTtlMs: task.claimTtlMs,
    attempts: task.attempts,
    fencingToken: task.fencingToken,
  });
  const customId = (custom: CustomId): string => {
    const base = lastGenerated ?? 'task_000000000abcd1000000000';
    const s = suffixOf(base);
    switch (custom.how) {
      case 'fixed':
        return custom.name;
      case 'suffixOf': {
        const target = pick(custom.index);
        return `${custom.prefix}${target.length > 9 && /\d{9}$/.test(target) ? target.slice(-9) : pad9(custom.index % 1000)}`;
      }
      case 'exact':
        return pick(custom.index);
      case 'ahead':
        return `ahead-${pad9(s + custom.delta)}`;
      case 'shape': {
        // With the same head only counters already used (or far ahead): the generator cannot know
        // about custom ids, so one equal to an id it has yet to make would be a test artefact.
        if (custom.sameHead) return `${base.slice(0, -9)}${pad9(custom.delta <= 0 ? Math.max(0, s + custom.delta) : s + 500_000 + custom.delta)}`;
        return otherTag(`${base.slice(0, -9)}${pad9(Math.max(0, s + custom.delta))}`);
      }
    }
  };

  for (const [step, op] of ops.entries()) {
    const where = `step ${step}: ${JSON.stringify(op)}`;
    switch (op.kind) {
      case 'submit': {
        for (let n = 0; n < op.count; n++) {
          const payload = payloadSerial++;
          const id = op.custom === null ? undefined : customId(op.custom);
          const input = { payload, priority: op.priority, claimTtlMs: op.ttl };
          if (id !== undefined && model.has(id)) {
            await expect(tm.submit({ id, ...input }), where).rejects.toBeInstanceOf(DuplicateIdError);
            continue;
          }
          let task: Task;
          try {
            task = await tm.submit(id === undefined ? input : { id, ...input });
          } catch (error) {
            // The model says the id is free, so any failure here is a bug: name the step.
            throw new Error(`${where}: submit ${id ?? '(generated)'} failed: ${errorName(error)}`, { cause: error });
          }
          if (id === undefined) {
            expect(task.id, where).toMatch(GENERATED);
            expect(model.has(task.id), where).toBe(false);
            lastGenerated = task.id;
          } else expect(task.id, where).toBe(id);
          const entry: ModelTask = { id: task.id, state: 'pending', payload, result: null, priority: op.priority, assignedTo: null, claimedAt: null, claimTtlMs: op.ttl, attempts: 0, fencingToken: 0 };
          expect(task, where).toEqual(view(entry));
          model.set(entry.id, entry);
          order.push(entry);
          everId.push(entry.id);
        }
        break;
      }
      case 'claimNext': {
        const expected = bestPending();
        const got = await tm.claimNext(op.agent);
        expect(got?.id ?? null, where).toBe(expected?.id ?? null);
        if (expected !== undefined) {
          claimInModel(expected, op.agent);
          expect(got, where).toEqual(view(expected));
        }
        break;
      }
      case 'claim': {
        const id = pick(op.index);
        const task = live(id);
        const ok = task?.state === 'pending';
        const got = await tm.claimTask(op.agent, id);
        if (ok) {
          claimInModel(task, op.agent);
          expect(got, where).toEqual(view(task));
        } else expect(got, where).toBeNull();
        break;
      }
      case 'report': {
        const id = pick(op.index);
        const task = live(id);
        const token = op.token === 'none' || task === undefined ? undefined : op.token === 'current' ? Math.max(1, task.fencingToken) : task.fencingToken + 1;
        let expected = 'ok';
        if (task !== undefined) {
          if (token !== undefined && token !== task.fencingToken) expected = 'StaleClaimError';
          else if (task.assignedTo !== op.agent) expected = 'NotAuthorizedError';
          else if (task.state !== 'assigned') expected = 'InvalidStateError';
        }
        const result = { by: op.agent, step };
        const got = await tm.report(op.agent, id, result, token === undefined ? undefined : { fencingToken: token }).then(() => 'ok', errorName);
        expect(got, where).toBe(expected);
        if (task !== undefined && expected === 'ok') settle(task, 'completed', result);
        break;
      }
      case 'drain': {
        for (let n = 0; n < op.count; n++) {
          const expected = bestPending();
          const got = await tm.claimNext('drainer');
          expect(got?.id ?? null, where).toBe(expected?.id ?? null);
          if (expected === undefined) break;
          claimInModel(expected, 'drainer');
          await tm.report('drainer', expected.id, n, { fencingToken: expected.fencingToken });
          settle(expected, 'completed', n);
        }
        break;
      }
      case 'cancel': {
        const id = pick(op.index);
        const task = live(id);
        const ok = task !== undefined && (task.state === 'pending' || task.state === 'assigned');
        expect(await tm.cancelTask(id), where).toBe(ok);
        if (ok) settle(task, 'cancelled', null);
        break;
      }
      case 'fail': {
        const id = pick(op.index);
        const task = live(id);
        const reason = { failed: step };
        let expected: string;
        let options: { agentId?: string; fencingToken?: number } = {};
        if (op.holder === 'none') {
          expected = task === undefined || !(task.state === 'pending' || task.state === 'assigned') ? 'false' : 'true';
        } else {
          const token = task === undefined ? 1 : op.holder === 'current' ? Math.max(1, task.fencingToken) : task.fencingToken + 1;
          options = { agentId: op.agent, fencingToken: token };
          if (task === undefined) expected = 'false';
          else if (token !== task.fencingToken) expected = 'StaleClaimError';
          else if (task.assignedTo !== op.agent) expected = 'NotAuthorizedError';
          else if (task.state !== 'assigned') expected = 'false';
          else expected = 'true';
        }
        const got = await tm.failTask(id, reason, options).then(String, errorName);
        expect(got, where).toBe(expected);
        if (task !== undefined && expected === 'true') settle(task, 'failed', reason);
        break;
      }
      case 'get': {
        const id = pick(op.index);
        const task = live(id);
        expect(await tm.getTask(id), where).toEqual(task === undefined ? null : view(task));
        break;
      }
      case 'list':
        expect((await tm.listPendingTasks()).map((t) => t.id), where).toEqual(order.filter((t) => t.state === 'pending' && model.get(t.id) === t).map((t) => t.id));
        break;
      case 'release': {
        const expired = [...model.values()].filter((t) => t.state === 'assigned' && t.claimTtlMs !== null && t.claimedAt! + t.claimTtlMs <= clockMs);
        expect((await tm.releaseExpiredClaims()).sort(), where).toEqual(expired.map((t) => t.id).sort());
        for (const task of expired) Object.assign(task, { state: 'pending', assignedTo: null, claimedAt: null });
        break;
      }
      case 'advance':
        clockMs += op.ms;
        break;
    }
  }

  // Final observable state: every id ever used, the pending list, and the claim order.
  for (const id of new Set(everId)) {
    const task = live(id);
    expect(await tm.getTask(id), `final get ${id}`).toEqual(task === undefined ? null : view(task));
  }
  const pending = order.filter((t) => t.state === 'pending' && model.get(t.id) === t);
  expect((await tm.listPendingTasks()).map((t) => t.id), 'final list').toEqual(pending.map((t) => t.id));
  const claimed: string[] = [];
  for (let task = await tm.claimNext('end'); task !== null; task = await tm.claimNext('end')) claimed.push(task.id);
  expect(claimed, 'final claim order').toEqual([...pending].sort(claimOrder).map((t) => t.id));
}

describe('MemoryStore id index against a model', () => {
  it('agrees with a naive model under mixed submits (generated, custom, clashing), claims, reports, cancels, failures and reads', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(0, 1, 3, 10, Number.POSITIVE_INFINITY), fc.array(opArb, { minLength: 1, maxLength: 60, size: 'max' }), async (maxFinished, ops) => {
        await runModel(maxFinished, ops);
      }),
      { numRuns: 100 },
    );
  });
});
