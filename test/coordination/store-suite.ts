/**
 * The one acceptance suite of DESIGN §5 for tasks and pools, run against every store (memory,
 * SQLite, PostgreSQL) by the `*-store.test.ts` files. A harness gives each test a fresh backing (a
 * new SQLite file, a new PostgreSQL schema) and can open several store instances on it, which for
 * the SQL stores are separate connections — the way separate processes see the data.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  NotAuthorizedError,
  InvalidStateError,
  DuplicateIdError,
  ValidationError,
  ClosedError,
  ErrorCode,
} from '../../src/shared/errors.js';
import { PoolManager, StaleClaimError, TaskClaimer, TaskManager, type Task, type TaskStore } from '../../src/coordination/index.js';

/** A fresh backing for one test. */
export interface StoreBacking {
  /** A store instance on this backing; SQL stores return a new instance (connection) per call. */
  open(): TaskStore;
  /** Closes what `open` returned and removes the backing. */
  dispose(): Promise<void>;
}

export type BackingFactory = () => StoreBacking | Promise<StoreBacking>;

const T0 = 1_700_000_000_000;

/** Every one of `count` tasks was claimed by exactly one claimer and completed on its first claim. */
async function expectEachCompletedOnce(tm: TaskManager, claimed: readonly string[], count: number): Promise<void> {
  expect(claimed).toHaveLength(count);
  expect(new Set(claimed).size).toBe(count);
  for (const id of claimed) expect(await tm.getTask(id)).toMatchObject({ state: 'completed', attempts: 1 });
}

export function defineStoreSuite(label: string, createBacking: BackingFactory): void {
  describe(`${label}: TaskManager and PoolManager (DESIGN §5)`, () => {
    let backing: StoreBacking;
    let now: number;
    const clock = (): number => now;
    /** A manager on a new store instance of this test's backing. */
    const manager = (options: { defaultClaimTtlMs?: number } = {}): TaskManager => new TaskManager({ store: backing.open(), now: clock, ...options });

    beforeEach(async () => {
      now = T0;
      backing = await createBacking();
    });
    afterEach(async () => {
      await backing.dispose();
    });

    describe('submit', () => {
      it('creates a pending task with every default filled', async () => {
        const tm = manager();
        const task = await tm.submit({ payload: { n: 1, nested: { list: [1, 'a', null] } } });
        expect(task).toEqual({
          id: expect.stringMatching(/^task_[0-9a-z]{13}1[0-9]{9}$/),
          state: 'pending',
          payload: { n: 1, nested: { list: [1, 'a', null] } },
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
        });
        expect(await tm.getTask(task.id)).toEqual(task);
      });

      it('keeps the given routing fields, deduplicating and sorting capabilities', async () => {
        const tm = manager();
        await new PoolManager({ store: tm.store }).createPool({ id: 'p' });
        const task = await tm.submit({ id: 'job-1', payload: 'x', poolId: 'p', topic: 't', requiredCapabilities: ['b', 'a', 'b'], priority: -7, claimTtlMs: 500 });
        expect(task).toMatchObject({ id: 'job-1', poolId: 'p', topic: 't', requiredCapabilities: ['a', 'b'], priority: -7, claimTtlMs: 500 });
        expect(await tm.getTask('job-1')).toEqual(task);
      });

      it('refuses a taken id with DuplicateIdError', async () => {
        const tm = manager();
        await tm.submit({ id: 'dup', payload: 1 });
        await expect(tm.submit({ id: 'dup', payload: 2 })).rejects.toMatchObject({ code: ErrorCode.DUPLICATE_ID });
        await expect(tm.submit({ id: 'dup', payload: 2 })).rejects.toBeInstanceOf(DuplicateIdError);
        expect((await tm.getTask('dup'))?.payload).toBe(1);
      });

      it('submitMany inserts all tasks or none', async () => {
        const tm = manager();
        const tasks = await tm.submitMany([{ id: 'm1', payload: 1 }, { id: 'm2', payload: 2, priority: 3 }]);
        expect(tasks.map((t) => t.id)).toEqual(['m1', 'm2']);
        await expect(tm.submitMany([{ id: 'm3', payload: 3 }, { id: 'm1', payload: 4 }])).rejects.toBeInstanceOf(DuplicateIdError);
        await expect(tm.submitMany([{ id: 'm4', payload: 3 }, { id: 'm4', payload: 4 }])).rejects.toBeInstanceOf(DuplicateIdError);
        expect((await tm.listPendingTasks()).map((t) => t.id)).toEqual(['m1', 'm2']);
      });

      it('submitMany keeps each task its own fields when only some tasks set them', async () => {
        const tm = manager();
        const payloads = [{ quote: 'a"b\\c', nested: [1, null, { x: 'é\n' }] }, null, 'text', 7.5, [], { id: 'x' }];
        await tm.submitMany([
          { id: 'f1', payload: payloads[0] },
          { id: 'f2', payload: payloads[1], poolId: 'far', topic: 't', requiredCapabilities: ['b', 'a"', 'b'], priority: -2, claimTtlMs: 1_234 },
          { id: 'f3', payload: payloads[2], requiredCapabilities: [] },
          { id: 'f4', payload: payloads[3], priority: 5 },
          { id: 'f5', payload: payloads[4], topic: 'u' },
          { id: 'f6', payload: payloads[5], claimTtlMs: 9 },
        ]);
        const got = await Promise.all(['f1', 'f2', 'f3', 'f4', 'f5', 'f6'].map(async (id) => (await tm.getTask(id))!));
        expect(got.map((t) => t.payload)).toEqual(payloads);
        expect(got.map((t) => [t.poolId, t.topic, t.requiredCapabilities, t.priority, t.claimTtlMs])).toEqual([
          [null, null, [], 0, null],
          ['far', 't', ['a"', 'b'], -2, 1_234],
          [null, null, [], 0, null],
          [null, null, [], 5, null],
          [null, 'u', [], 0, null],
          [null, null, [], 0, 9],
        ]);
        expect(got.every((t) => t.state === 'pending')).toBe(true);
      });

      it('accepts a pool the store does not know (pools may live in another store), single and batched', async () => {
        const tm = manager();
        expect(await tm.submit({ id: 'far', payload: 1, poolId: 'elsewhere' })).toMatchObject({ id: 'far', state: 'pending', poolId: 'elsewhere' });
        await tm.submitMany([{ id: 'ok', payload: 1 }, { id: 'far-2', payload: 1, poolId: 'elsewhere' }]);
        expect((await tm.listPendingTasks()).map((t) => t.id)).toEqual(['far', 'ok', 'far-2']);
        expect(await tm.getTask('far-2')).toMatchObject({ poolId: 'elsewhere' });
      });

      it('refuses unknown keys, naming them (a misspelt field must not be ignored)', async () => {
        const tm = manager();
        const cases: [unknown, string][] = [
          [{ payload: 1, priorty: 5 }, 'input.priorty'],
          [{ payload: 1, poolID: 'p' }, 'input.poolID'],
        ];
        for (const [input, field] of cases) {
          await expect(tm.submit(input as never), field).rejects.toMatchObject({ code: ErrorCode.VALIDATION, field });
        }
        await expect(tm.submitMany([{ payload: 1 }, { payload: 2, claimTTL: 5 } as never])).rejects.toMatchObject({ field: 'inputs[1].claimTTL' });
        await expect(tm.claimNext('a', { capability: ['gpu'] } as never)).rejects.toMatchObject({ code: ErrorCode.VALIDATION, field: 'filter.capability' });
        await expect(tm.listPendingTasksForAgent('a', { pools: ['p'] } as never)).rejects.toMatchObject({ field: 'options.pools' });
        await expect(tm.report('a', 'x', 1, { token: 1 } as never)).rejects.toMatchObject({ field: 'options.token' });
        await expect(tm.failTask('x', 'r', { agent: 'a' } as never)).rejects.toMatchObject({ field: 'options.agent' });
        await expect(tm.waitUntilDone('x', { timeoutMs: 1, timeout: 5 } as never)).rejects.toMatchObject({ field: 'options.timeout' });
        expect(await tm.listPendingTasks()).toEqual([]);
      });

      it('refuses payloads, results and reasons that the store could not keep faithfully, naming the field', async () => {
        const tm = manager();
        class Point {
          constructor(readonly x: number) {}
        }
        const circular: Record<string, unknown> = { a: 1 };
        circular.self = circular;
        const deep: unknown[] = [];
        let cursor = deep;
        for (let i = 0; i < 300; i++) cursor = (cursor[0] = []) as unknown[];
        const cases: [unknown, string][] = [
          [new Set([1]), 'input.payload'],
          [{ tags: new Map([['a', 1]]) }, 'input.payload.tags'],
          [{ run: () => 1 }, 'input.payload.run'],
          [{ at: new Point(1) }, 'input.payload.at'],
          [{ when: new Date(0) }, 'input.payload.when'],
          [{ list: [1, Symbol('s')] }, 'input.payload.list[1]'],
          [{ [Symbol('k')]: 1 }, 'input.payload'],
          [{ n: 10n }, 'input.payload.n'],
          [{ x: Number.NaN }, 'input.payload.x'],
          [{ x: [1, undefined] }, 'input.payload.x[1]'],
          [{ bytes: new Uint8Array(2) }, 'input.payload.bytes'],
          [circular, 'input.payload.self'],
          [deep, 'input.payload'],
        ];
        for (const [payload, field] of cases) {
          const error = await tm.submit({ payload }).then(
            () => null,
            (e: unknown) => e,
          );
          expect(error, field).toBeInstanceOf(ValidationError);
          expect((error as ValidationError).field.startsWith(field), `${field}: ${(error as Error).message}`).toBe(true);
        }
        await expect(tm.submitMany<unknown>([{ payload: 1 }, { payload: new Map() }])).rejects.toMatchObject({ field: 'inputs[1].payload' });
        expect(await tm.listPendingTasks()).toEqual([]);

        // Plain data goes in and comes back as it went in (undefined properties are dropped, as JSON does).
        const plain = { s: 'é\u{1F600}', n: -1.5, b: true, z: null, list: [1, 'two', [3], { four: 4 }], nested: { o: {} }, gone: undefined };
        const { id } = await tm.submit({ payload: Object.assign(Object.create(null) as object, plain) });
        const stored = (await tm.getTask(id))!.payload as Record<string, unknown>;
        expect({ ...stored }).toEqual({ s: 'é\u{1F600}', n: -1.5, b: true, z: null, list: [1, 'two', [3], { four: 4 }], nested: { o: {} } });

        const claimed = await tm.claimNext('w');
        await expect(tm.report('w', id, { result: new Set() }, { fencingToken: claimed!.fencingToken })).rejects.toMatchObject({ field: 'result.result' });
        await expect(tm.failTask(id, () => 'why', { agentId: 'w' })).rejects.toMatchObject({ field: 'reason' });
        expect(await tm.getTask(id)).toMatchObject({ state: 'assigned', result: null });
      });

      it('rejects invalid input with a ValidationError naming the field', async () => {
        const tm = manager();
        const cases: [unknown, string][] = [
          [{ payload: 1, priority: 1.5 }, 'input.priority'],
          [{ payload: 1, priority: 2 ** 31 }, 'input.priority'],
          [{ payload: 1, id: '' }, 'input.id'],
          [{ payload: 1, claimTtlMs: 0 }, 'input.claimTtlMs'],
          [{ payload: 1, requiredCapabilities: ['ok', 7] }, 'input.requiredCapabilities[1]'],
          [{ payload: 1, poolId: 'x'.repeat(257) }, 'input.poolId'],
          [null, 'input'],
          [{ id: 'no-payload' }, 'input.payload'],
        ];
        for (const [input, field] of cases) {
          const error = await tm.submit(input as never).then(
            () => null,
            (e: unknown) => e,
          );
          expect(error, field).toBeInstanceOf(ValidationError);
          expect((error as ValidationError).field).toBe(field);
          expect((error as ValidationError).code).toBe(ErrorCode.VALIDATION);
        }
        expect(await tm.listPendingTasks()).toEqual([]);
      });
    });

    describe('claim', () => {
      it('claims only a pending task, once', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1 });
        now = T0 + 5;
        expect(await tm.claim('a', id)).toBe(true);
        expect(await tm.claim('b', id)).toBe(false);
        expect(await tm.claim('a', id)).toBe(false);
        expect(await tm.claim('a', 'no-such-task')).toBe(false);
        expect(await tm.getTask(id)).toMatchObject({ state: 'assigned', assignedTo: 'a', claimedAt: T0 + 5, attempts: 1, fencingToken: 1 });
        await tm.report('a', id, 'ok');
        expect(await tm.claim('b', id)).toBe(false);
      });

      it('lets exactly one of many concurrent claimants win, across store instances', async () => {
        const managers = Array.from({ length: 8 }, () => manager());
        const { id } = await managers[0]!.submit({ payload: 1 });
        const results = await Promise.all(managers.flatMap((tm, m) => [0, 1, 2].map((k) => tm.claimTask(`agent-${m}-${k}`, id))));
        const winners = results.filter((task): task is Task => task !== null);
        expect(winners).toHaveLength(1);
        expect((await managers[0]!.getTask(id))?.assignedTo).toBe(winners[0]!.assignedTo);
        expect(winners[0]!.fencingToken).toBe(1);
      });

      it('claimTask returns the claimed task with its fencing token', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1 });
        const claimed = await tm.claimTask('a', id);
        expect(claimed).toMatchObject({ id, state: 'assigned', assignedTo: 'a', fencingToken: 1, attempts: 1, claimedAt: T0 });
        expect(await tm.claimTask('b', id)).toBeNull();
      });

      it('claimTasks claims many by id at once: a task taken, finished, unknown or in a foreign pool is null, alone', async () => {
        const tm = manager();
        await new PoolManager({ store: tm.store }).createPool({ id: 'p' });
        await tm.submitMany([...['m1', 'm2', 'taken', 'done', 'm3'].map((id) => ({ id, payload: id })), { id: 'pooled', payload: 'p', poolId: 'p' }]);
        await tm.claimTask('other', 'taken');
        await tm.cancelTask('done');
        const claimed = await tm.claimTasks('a', ['m3', 'taken', 'm1', 'nope', 'done', 'pooled', 'm2']);
        expect(claimed.map((task) => task?.id ?? null)).toEqual(['m3', null, 'm1', null, null, null, 'm2']);
        expect(claimed[0]).toMatchObject({ state: 'assigned', assignedTo: 'a', fencingToken: 1, attempts: 1, claimedAt: T0 });
        expect(await tm.getTask('taken')).toMatchObject({ assignedTo: 'other' });
        expect(await tm.claimTasks('b', ['m1', 'm2'])).toEqual([null, null]);
        await expect(tm.claimTasks('a', ['x', 'x'])).rejects.toBeInstanceOf(ValidationError);
        expect(await tm.claimTasks('a', [])).toEqual([]);
      });
    });

    describe('claimNext', () => {
      it('topicRequired: only tasks whose topic is listed, never one without a topic', async () => {
        const tm = manager();
        await tm.submitMany([{ id: 'a-plain', payload: 1 }, { id: 'b-other', payload: 2, topic: 'other' }, { id: 'c-mine', payload: 3, topic: 'mine' }, { id: 'd-mine', payload: 4, topic: 'mine' }]);
        expect((await tm.claimNext('w', { topics: ['mine'], topicRequired: true }))?.id).toBe('c-mine');
        expect((await tm.claimNext('w', { topics: ['mine'], topicRequired: true }, { max: 10 })).map((t) => t.id)).toEqual(['d-mine']);
        expect(await tm.claimNext('w', { topics: ['mine'], topicRequired: true })).toBeNull();
        // Without it, a task without a topic is visible to a topic filter (DESIGN §5).
        expect((await tm.claimNext('w', { topics: ['mine'] }))?.id).toBe('a-plain');
        await expect(tm.claimNext('w', { topics: ['mine'], topicRequired: 'yes' as never })).rejects.toBeInstanceOf(ValidationError);
      });

      it('takes the highest priority first, then the smallest id', async () => {
        const tm = manager();
        await tm.submitMany([
          { id: 'c', payload: 1, priority: 1 },
          { id: 'e', payload: 1, priority: 5 },
          { id: 'b', payload: 1, priority: 3 },
          { id: 'd', payload: 1, priority: 5 },
          { id: 'a', payload: 1, priority: -2 },
        ]);
        const order: string[] = [];
        for (let task = await tm.claimNext('w'); task !== null; task = await tm.claimNext('w')) order.push(task.id);
        expect(order).toEqual(['d', 'e', 'b', 'c', 'a']);
      });

      it('takes equal-priority tasks with generated ids first in, first out', async () => {
        const tm = manager();
        const submitted: string[] = [];
        for (let i = 0; i < 20; i++) {
          now = T0 + Math.floor(i / 3); // several per millisecond
          submitted.push((await tm.submit({ payload: i })).id);
        }
        const claimed: string[] = [];
        for (let task = await tm.claimNext('w'); task !== null; task = await tm.claimNext('w')) claimed.push(task.id);
        expect(claimed).toEqual(submitted);
      });

      it('returns the claimed task and records the claim', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: { x: 1 }, claimTtlMs: 1000 });
        now = T0 + 42;
        const task = await tm.claimNext('agent-1');
        expect(task).toMatchObject({ id, state: 'assigned', assignedTo: 'agent-1', claimedAt: T0 + 42, attempts: 1, fencingToken: 1, payload: { x: 1 } });
        expect(await tm.claimNext('agent-2')).toBeNull();
      });

      it('sees pooled tasks only with their pool, capability-gated tasks only with every capability, topical tasks only with their topic', async () => {
        const tm = manager();
        const pm = new PoolManager({ store: tm.store });
        await pm.createPool({ id: 'p' });
        await pm.joinPool('p', 'x');
        await pm.joinPool('p', 'w');
        await tm.submitMany([
          { id: 'open', payload: 0, priority: 0 },
          { id: 'pool-p', payload: 0, poolId: 'p', priority: 9 },
          { id: 'caps-ab', payload: 0, requiredCapabilities: ['a', 'b'], priority: 8 },
          { id: 'topic-t', payload: 0, topic: 't', priority: 7 },
        ]);
        const visible = async (filter: Parameters<TaskManager['listPendingTasksForAgent']>[1]) =>
          (await tm.listPendingTasksForAgent('x', { ...filter, sortByPriority: true })).map((t) => t.id);
        expect(await visible({ poolIds: [], capabilities: [], topics: [] })).toEqual(['open']);
        expect(await visible({ poolIds: ['p'], capabilities: ['a'], topics: ['u'] })).toEqual(['pool-p', 'open']);
        expect(await visible({ poolIds: [], capabilities: ['b', 'a', 'c'], topics: [] })).toEqual(['caps-ab', 'open']);
        expect(await visible({ poolIds: [], capabilities: [], topics: ['t'] })).toEqual(['topic-t', 'open']);
        // An absent field applies no filter.
        expect(await visible({})).toEqual(['pool-p', 'caps-ab', 'topic-t', 'open']);

        expect((await tm.claimNext('w', { poolIds: [], capabilities: ['a'], topics: [] }))?.id).toBe('open');
        expect(await tm.claimNext('w', { poolIds: [], capabilities: ['a'], topics: [] })).toBeNull();
        expect((await tm.claimNext('w', { poolIds: ['q'], capabilities: ['a', 'b'], topics: ['t'] }))?.id).toBe('caps-ab');
        expect((await tm.claimNext('w', { poolIds: ['p'] }))?.id).toBe('pool-p');
        expect((await tm.claimNext('w', { topics: ['t'] }))?.id).toBe('topic-t');
        expect(await tm.claimNext('w')).toBeNull();
      });

      it('hands every task to exactly one of many concurrent claimers', async () => {
        const managers = Array.from({ length: 4 }, () => manager());
        const count = 60;
        await managers[0]!.submitMany(Array.from({ length: count }, (_, i) => ({ id: `t${String(i).padStart(3, '0')}`, payload: i })));
        const claimed = await Promise.all(
          managers.flatMap((tm, m) =>
            [0, 1].map(async (k) => {
              const mine: string[] = [];
              for (let task = await tm.claimNext(`w${m}.${k}`); task !== null; task = await tm.claimNext(`w${m}.${k}`)) {
                mine.push(task.id);
                await tm.report(`w${m}.${k}`, task.id, `w${m}.${k}`, { fencingToken: task.fencingToken });
              }
              return mine;
            }),
          ),
        );
        await expectEachCompletedOnce(managers[1]!, claimed.flat(), count);
      });

      it('validates the agent and the filter', async () => {
        const tm = manager();
        await expect(tm.claimNext('')).rejects.toMatchObject({ field: 'agentId' });
        await expect(tm.claimNext('a', { poolIds: ['ok', ''] })).rejects.toMatchObject({ field: 'filter.poolIds[1]' });
        await expect(tm.claimNext('a', { topics: 'x' as never })).rejects.toMatchObject({ field: 'filter.topics' });
      });
    });

    describe('batched claiming and settling (claimNext with max, settleMany)', () => {
      it('claims up to max tasks in claim order, each with its own claim and fencing token', async () => {
        const tm = manager({ defaultClaimTtlMs: 500 });
        await tm.submitMany([
          { id: 'c', payload: 1, priority: 1 },
          { id: 'e', payload: 1, priority: 5 },
          { id: 'b', payload: 1, priority: 3 },
          { id: 'd', payload: 1, priority: 5 },
          { id: 'a', payload: 1, priority: -2 },
        ]);
        now = T0 + 7;
        const first = await tm.claimNext('w', undefined, { max: 3 });
        expect(first.map((t) => t.id)).toEqual(['d', 'e', 'b']);
        for (const task of first) expect(task).toMatchObject({ state: 'assigned', assignedTo: 'w', claimedAt: T0 + 7, attempts: 1, fencingToken: 1, claimTtlMs: 500 });
        expect((await tm.claimNext('w', {}, { max: 10 })).map((t) => t.id)).toEqual(['c', 'a']);
        expect(await tm.claimNext('w', {}, { max: 10 })).toEqual([]);
        // The claims expire one by one, like single claims.
        expect((await tm.releaseExpiredClaims(T0 + 507)).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
        expect((await tm.claimNext('v', {}, { max: 1 }))[0]).toMatchObject({ id: 'd', fencingToken: 2, attempts: 2 });
      });

      it('applies the filter and pool membership to every task of a batch', async () => {
        const tm = manager();
        const pm = new PoolManager({ store: tm.store });
        await pm.createPool({ id: 'p' });
        await pm.joinPool('p', 'member');
        await tm.submitMany([
          { id: 'open', payload: 0 },
          { id: 'pooled', payload: 0, poolId: 'p', priority: 9 },
          { id: 'caps', payload: 0, requiredCapabilities: ['gpu'], priority: 8 },
        ]);
        expect((await tm.claimNext('outsider', { capabilities: [] }, { max: 10 })).map((t) => t.id)).toEqual(['open']);
        expect((await tm.claimNext('member', { capabilities: ['gpu'] }, { max: 10 })).map((t) => t.id)).toEqual(['pooled', 'caps']);
      });

      it('validates the batch options', async () => {
        const tm = manager();
        await expect(tm.claimNext('w', {}, {} as never)).rejects.toMatchObject({ field: 'options.max' });
        await expect(tm.claimNext('w', {}, { max: 0 })).rejects.toMatchObject({ field: 'options.max' });
        await expect(tm.claimNext('w', {}, { max: 1, maxx: 2 } as never)).rejects.toMatchObject({ field: 'options.maxx' });
      });

      it('hands every task to exactly one of many concurrent batch claimers', async () => {
        const managers = Array.from({ length: 4 }, () => manager());
        const count = 300;
        await managers[0]!.submitMany(Array.from({ length: count }, (_, i) => ({ id: `t${String(i).padStart(3, '0')}`, payload: i })));
        const claimed = await Promise.all(
          managers.flatMap((tm, m) =>
            [0, 1].map(async (k) => {
              const agent = `w${m}.${k}`;
              const mine: string[] = [];
              for (let batch = await tm.claimNext(agent, {}, { max: 7 }); batch.length > 0; batch = await tm.claimNext(agent, {}, { max: 7 })) {
                mine.push(...batch.map((t) => t.id));
                const outcomes = await tm.settleMany(agent, batch.map((t) => ({ taskId: t.id, outcome: 'completed' as const, result: agent, fencingToken: t.fencingToken })));
                expect(outcomes).toEqual(batch.map(() => true));
              }
              return mine;
            }),
          ),
        );
        await expectEachCompletedOnce(managers[1]!, claimed.flat(), count);
      });

      for (const via of ['settleMany', 'settleAndClaimNext'] as const) it(`settles a batch item by item (${via}): a stale or foreign one is refused alone, the rest apply`, async () => {
        const tm = manager();
        await tm.submitMany([
          ...['s1', 's2', 's3', 's4', 's5', 'stale', 'zforeign'].map((id) => ({ id, payload: id, claimTtlMs: 100 })),
          ...['n1', 'n2'].map((id) => ({ id, payload: id, topic: 'fresh', priority: -1 })),
        ]);
        const mine = await tm.claimNext('w', {}, { max: 6 });
        expect(mine.map((t) => t.id)).toEqual(['s1', 's2', 's3', 's4', 's5', 'stale']);
        const foreign = await tm.claimTask('other', 'zforeign');
        // 'stale' expires and is taken over by someone else.
        now = T0 + 100;
        await tm.renewClaim('w', 's1', { fencingToken: 1 });
        for (const id of ['s2', 's3', 's4', 's5']) await tm.renewClaim('w', id, { fencingToken: 1 });
        await tm.renewClaim('other', 'zforeign');
        expect(await tm.releaseExpiredClaims()).toEqual(['stale']);
        await tm.claimTask('thief', 'stale');
        const token = (id: string): number => mine.find((t) => t.id === id)!.fencingToken;
        const items = [
          { taskId: 's1', outcome: 'completed', result: { ok: 1 }, fencingToken: token('s1') },
          { taskId: 'stale', outcome: 'completed', result: 'late', fencingToken: token('stale') },
          { taskId: 's2', outcome: 'failed', result: { why: 'no' }, fencingToken: token('s2') },
          { taskId: 'zforeign', outcome: 'completed', result: 'not mine', fencingToken: foreign!.fencingToken },
          { taskId: 's3', outcome: 'released', fencingToken: token('s3') },
          { taskId: 'missing', outcome: 'completed', result: 1 },
          { taskId: 's4', outcome: 'completed' },
        ] as const;
        let outcomes;
        if (via === 'settleMany') {
          outcomes = await tm.settleMany('w', items);
        } else {
          // The claim rides on the settlement (one statement on PostgreSQL) and is not affected by the refusals.
          const both = await tm.settleAndClaimNext('w', items, { topics: ['fresh'], topicRequired: true }, { max: 5 });
          outcomes = both.outcomes;
          expect(both.tasks.map((t) => [t.id, t.state, t.assignedTo, t.fencingToken])).toEqual([
            ['n1', 'assigned', 'w', 1],
            ['n2', 'assigned', 'w', 1],
          ]);
        }
        expect(outcomes[0]).toBe(true);
        expect(outcomes[1]).toBeInstanceOf(StaleClaimError);
        expect(outcomes[2]).toBe(true);
        expect(outcomes[3]).toBeInstanceOf(NotAuthorizedError);
        expect(outcomes[3]).not.toBeInstanceOf(StaleClaimError);
        expect(outcomes[4]).toBe(true);
        expect(outcomes[5]).toBe(false);
        expect(outcomes[6]).toBe(true);
        expect(await tm.getTask('s1')).toMatchObject({ state: 'completed', result: { ok: 1 } });
        expect(await tm.getTask('stale')).toMatchObject({ state: 'assigned', assignedTo: 'thief', result: null });
        expect(await tm.getTask('s2')).toMatchObject({ state: 'failed', result: { why: 'no' } });
        expect(await tm.getTask('zforeign')).toMatchObject({ state: 'assigned', assignedTo: 'other' });
        expect(await tm.getTask('s3')).toMatchObject({ state: 'pending', assignedTo: null, claimedAt: null });
        expect(await tm.getTask('s4')).toMatchObject({ state: 'completed', result: null });
        // Settling again: a finished task's completion is refused, its failure or release is a no-op.
        const again = await tm.settleMany('w', [
          { taskId: 's1', outcome: 'completed', fencingToken: token('s1') },
          { taskId: 's1x', outcome: 'failed' },
          { taskId: 's4', outcome: 'failed', fencingToken: token('s4') },
          { taskId: 's5', outcome: 'released', fencingToken: token('s5') },
        ]);
        expect(again[0]).toBeInstanceOf(InvalidStateError);
        expect(again.slice(1)).toEqual([false, false, true]);
        // A released task is claimable again, with a new token.
        expect((await tm.claimNext('v', {}, { max: 2 })).map((t) => [t.id, t.fencingToken])).toEqual([['s3', 2], ['s5', 2]]);
      });

      it('validates settlements: distinct ids, known outcomes, plain results; an invalid batch applies nothing', async () => {
        const tm = manager();
        const [a, b] = await tm.submitMany([{ id: 'a', payload: 1 }, { id: 'b', payload: 1 }]);
        await tm.claim('w', a!.id);
        await tm.claim('w', b!.id);
        await expect(tm.settleMany('w', [{ taskId: 'a', outcome: 'completed' }, { taskId: 'a', outcome: 'failed' }])).rejects.toMatchObject({ field: 'items[1].taskId' });
        await expect(tm.settleMany('w', [{ taskId: 'a', outcome: 'done' as never }])).rejects.toMatchObject({ field: 'items[0].outcome' });
        await expect(tm.settleMany('w', [{ taskId: 'a', outcome: 'completed' }, { taskId: 'b', outcome: 'completed', result: new Set() }])).rejects.toMatchObject({ field: 'items[1].result' });
        await expect(tm.settleMany('w', [{ taskId: 'a', outcome: 'completed', token: 1 } as never])).rejects.toMatchObject({ field: 'items[0].token' });
        expect(await tm.settleMany('w', [])).toEqual([]);
        expect(await tm.getTask('a')).toMatchObject({ state: 'assigned' });
        expect(await tm.getTask('b')).toMatchObject({ state: 'assigned' });
      });
    });

    describe('TaskClaimer: a local queue with background refills and batched settlements', () => {
      it('runs every task exactly once across several claimers, completing them in batches', async () => {
        const tm = manager();
        const count = 240;
        await tm.submitMany(Array.from({ length: count }, (_, i) => ({ id: `q${String(i).padStart(3, '0')}`, payload: i, priority: i % 3 })));
        const ran = new Map<string, string>();
        const claimers = [0, 1, 2].map((k) => new TaskClaimer(manager(), { agentId: `c${k}`, batchSize: 16, idlePollMs: 20, claimConcurrency: k + 1 }));
        const runs = claimers.map((claimer) =>
          claimer.run(
            (task) => {
              expect(ran.has(task.id), `${task.id} ran twice`).toBe(false);
              ran.set(task.id, claimer.agentId);
              return { by: claimer.agentId, n: task.payload };
            },
            { concurrency: 4 },
          ),
        );
        const deadline = Date.now() + 60_000;
        while ((await tm.listPendingTasks()).length > 0 || ran.size < count) {
          if (Date.now() > deadline) throw new Error(`only ${ran.size} of ${count} tasks ran`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await Promise.all(claimers.map((claimer) => claimer.close()));
        await Promise.all(runs);
        expect(ran.size).toBe(count);
        for (const [id, agent] of ran) expect(await tm.getTask(id)).toMatchObject({ state: 'completed', assignedTo: agent, attempts: 1, result: { by: agent } });
        const stats = claimers.map((claimer) => claimer.stats);
        expect(stats.reduce((sum, s) => sum + s.settled, 0)).toBe(count);
        // Batched: far fewer statements than tasks.
        expect(stats.reduce((sum, s) => sum + s.flushes, 0)).toBeLessThan(count);
        expect(stats.reduce((sum, s) => sum + s.claimBatches, 0)).toBeLessThan(count);
      });

      it('hands tasks out in claim order and fails a task whose handler throws', async () => {
        const tm = manager();
        await tm.submitMany([
          { id: 'low', payload: 1, priority: 1 },
          { id: 'high', payload: 1, priority: 9 },
          { id: 'boom', payload: 1, priority: 5 },
        ]);
        const claimer = new TaskClaimer(tm, { agentId: 'w', batchSize: 10 });
        const order: string[] = [];
        for (let task = await claimer.poll(); task !== null; task = await claimer.poll()) {
          order.push(task.id);
          if (task.id === 'boom') await claimer.fail(task, { message: 'exploded' });
          else await claimer.complete(task, task.id.toUpperCase());
        }
        expect(order).toEqual(['high', 'boom', 'low']);
        expect(await tm.getTask('boom')).toMatchObject({ state: 'failed', result: { message: 'exploded' } });
        expect(await tm.getTask('low')).toMatchObject({ state: 'completed', result: 'LOW' });
        await claimer.close();
      });

      it('a stale completion in a flush is refused alone', async () => {
        const tm = manager();
        await tm.submitMany(['x1', 'x2', 'x3'].map((id) => ({ id, payload: id, claimTtlMs: 50 })));
        const claimer = new TaskClaimer(tm, { agentId: 'w', batchSize: 3, now: clock });
        const tasks = [(await claimer.poll())!, (await claimer.poll())!, (await claimer.poll())!];
        // x2's claim expires and another agent takes it over before the claimer completes it.
        now = T0 + 50;
        for (const id of ['x1', 'x3']) await tm.renewClaim('w', id);
        expect(await tm.releaseExpiredClaims()).toEqual(['x2']);
        await tm.claimTask('thief', 'x2');
        const settled = await Promise.allSettled(tasks.map((task) => claimer.complete(task, 'done')));
        expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(StaleClaimError);
        expect(claimer.stats).toMatchObject({ settled: 2, refused: 1, flushes: 1 });
        expect((await tm.getTask('x2'))?.assignedTo).toBe('thief');
        await claimer.close();
      });

      it('with settleWithClaims, completions ride on the next claim, and a stale one among them is refused alone', async () => {
        const tm = manager();
        await tm.submitMany(['x1', 'x2', 'x3'].map((id) => ({ id, payload: id, claimTtlMs: 50 })));
        // A 60 s flush delay: the completions can only leave with a claim.
        const claimer = new TaskClaimer(tm, { agentId: 'w', batchSize: 3, now: clock, settleWithClaims: true, flushDelayMs: 60_000 });
        const tasks = [(await claimer.poll())!, (await claimer.poll())!, (await claimer.poll())!];
        now = T0 + 50;
        for (const id of ['x1', 'x3']) await tm.renewClaim('w', id);
        expect(await tm.releaseExpiredClaims()).toEqual(['x2']);
        await tm.claimTask('thief', 'x2');
        const settled = Promise.allSettled(tasks.map((task) => claimer.complete(task, 'done')));
        await tm.submitMany(['y1', 'y2'].map((id) => ({ id, payload: id })));
        const next = await claimer.poll();
        expect(next).toMatchObject({ id: 'y1', state: 'assigned', assignedTo: 'w', fencingToken: 1 });
        const results = await settled;
        expect(results.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(StaleClaimError);
        expect(claimer.stats).toMatchObject({ settled: 2, refused: 1, flushes: 1, flushesWithClaims: 1 });
        expect(await tm.getTask('x1')).toMatchObject({ state: 'completed', result: 'done' });
        expect(await tm.getTask('x2')).toMatchObject({ state: 'assigned', assignedTo: 'thief' });
        expect(await tm.getTask('x3')).toMatchObject({ state: 'completed', result: 'done' });
        // Close flushes at once, whatever the delay; y2, claimed with y1, goes back to pending.
        const last = claimer.complete(next!, 'y');
        await claimer.close();
        await last;
        expect(await tm.getTask('y1')).toMatchObject({ state: 'completed', result: 'y' });
        expect(await tm.getTask('y2')).toMatchObject({ state: 'pending', assignedTo: null });
      });

      it('close releases the tasks it claimed but did not hand out', async () => {
        const tm = manager();
        await tm.submitMany(Array.from({ length: 10 }, (_, i) => ({ id: `r${i}`, payload: i })));
        const claimer = new TaskClaimer(tm, { agentId: 'w', batchSize: 8 });
        const first = await claimer.poll();
        expect(first?.id).toBe('r0');
        await claimer.complete(first!, 'ok');
        await claimer.close();
        expect(await claimer.next()).toBeNull();
        const pending = (await tm.listPendingTasks()).map((t) => t.id);
        expect(pending).toHaveLength(9);
        expect(await tm.getTask('r1')).toMatchObject({ state: 'pending', assignedTo: null, fencingToken: 1 });
      });

      it('an idle claimer is woken by a submit', async () => {
        const tm = manager();
        const claimer = new TaskClaimer(tm, { agentId: 'w', batchSize: 10, idlePollMs: 3_600_000 });
        const waiting = claimer.next();
        // Let the claimer find the queue empty and go idle, then submit.
        const deadline = Date.now() + 20_000;
        while (claimer.stats.claimBatches < 2) {
          if (Date.now() > deadline) throw new Error('the claimer never went idle');
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
        const { id } = await tm.submit({ payload: 'wake' });
        expect((await waiting)?.id).toBe(id);
        await claimer.close();
      });

      it('validates its options', () => {
        const tm = manager();
        expect(() => new TaskClaimer(tm, { agentId: '' })).toThrow(expect.objectContaining({ field: 'options.agentId' }));
        expect(() => new TaskClaimer(tm, { agentId: 'w', batchSize: 0 })).toThrow(expect.objectContaining({ field: 'options.batchSize' }));
        expect(() => new TaskClaimer(tm, { agentId: 'w', batchSize: 4, refillAt: 4 })).toThrow(expect.objectContaining({ field: 'options.refillAt' }));
        expect(() => new TaskClaimer(tm, { agentId: 'w', filter: { capability: ['x'] } } as never)).toThrow(expect.objectContaining({ field: 'options.filter.capability' }));
      });
    });

    describe('report', () => {
      it('completes the holder’s task with the result', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1 });
        const claimed = await tm.claimNext('a');
        await tm.report('a', id, { answer: 42 }, { fencingToken: claimed!.fencingToken });
        expect(await tm.getTask(id)).toMatchObject({ state: 'completed', result: { answer: 42 }, assignedTo: 'a' });
      });

      it('refuses another agent with NotAuthorizedError (CONVERGE_NOT_AUTHORIZED)', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1 });
        await expect(tm.report('a', id, 1)).rejects.toBeInstanceOf(NotAuthorizedError); // nobody holds it
        await tm.claim('a', id);
        await expect(tm.report('b', id, 1)).rejects.toMatchObject({ code: ErrorCode.NOT_AUTHORIZED });
        expect(await tm.getTask(id)).toMatchObject({ state: 'assigned', result: null });
      });

      it('is a no-op for an unknown id', async () => {
        const tm = manager();
        await expect(tm.report('a', 'missing', 1)).resolves.toBeUndefined();
        expect(await tm.getTask('missing')).toBeNull();
      });

      it('cannot complete a task twice', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1 });
        await tm.claim('a', id);
        await tm.report('a', id, 'first');
        await expect(tm.report('a', id, 'second')).rejects.toBeInstanceOf(InvalidStateError);
        expect((await tm.getTask(id))?.result).toBe('first');
      });
    });

    describe('fencing tokens', () => {
      it('refuses a stale token after the claim expired and the task was claimed again by another agent', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1, claimTtlMs: 100 });
        const first = await tm.claimNext('slow');
        now = T0 + 100;
        expect(await tm.releaseExpiredClaims()).toEqual([id]);
        const second = await tm.claimNext('fast');
        expect(second).toMatchObject({ id, fencingToken: 2, attempts: 2 });
        const stale = await tm.report('slow', id, 'late', { fencingToken: first!.fencingToken }).catch((e: unknown) => e);
        expect(stale).toBeInstanceOf(StaleClaimError);
        expect(stale).toBeInstanceOf(NotAuthorizedError);
        expect(stale).toMatchObject({ code: ErrorCode.NOT_AUTHORIZED, fencingToken: 1, currentFencingToken: 2 });
        await expect(tm.failTask(id, 'late', { agentId: 'slow', fencingToken: 1 })).rejects.toBeInstanceOf(NotAuthorizedError);
        await tm.report('fast', id, 'fresh', { fencingToken: second!.fencingToken });
        expect(await tm.getTask(id)).toMatchObject({ state: 'completed', result: 'fresh', assignedTo: 'fast' });
      });

      it('refuses a stale token even when the same agent id claimed the task again (a restarted worker)', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1, claimTtlMs: 50 });
        const before = await tm.claimNext('worker-1');
        now = T0 + 60;
        await tm.releaseExpiredClaims();
        const after = await tm.claimNext('worker-1');
        expect(after!.fencingToken).toBe(before!.fencingToken + 1);
        await expect(tm.report('worker-1', id, 'ghost', { fencingToken: before!.fencingToken })).rejects.toBeInstanceOf(StaleClaimError);
        await expect(tm.renewClaim('worker-1', id, { fencingToken: before!.fencingToken })).rejects.toBeInstanceOf(StaleClaimError);
        await expect(tm.startTask('worker-1', id, { fencingToken: before!.fencingToken })).rejects.toBeInstanceOf(StaleClaimError);
        await tm.report('worker-1', id, 'real', { fencingToken: after!.fencingToken });
        expect((await tm.getTask(id))?.result).toBe('real');
      });

      it('refuses a late report of a released task that nobody holds', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1, claimTtlMs: 10 });
        const claimed = await tm.claimNext('a');
        now = T0 + 10;
        await tm.releaseExpiredClaims();
        await expect(tm.report('a', id, 'late', { fencingToken: claimed!.fencingToken })).rejects.toBeInstanceOf(NotAuthorizedError);
        await expect(tm.report('a', id, 'late')).rejects.toBeInstanceOf(NotAuthorizedError);
        expect(await tm.getTask(id)).toMatchObject({ state: 'pending', assignedTo: null, claimedAt: null, result: null });
      });

      it('validates the token', async () => {
        const tm = manager();
        await expect(tm.report('a', 'x', 1, { fencingToken: 0 })).rejects.toMatchObject({ field: 'options.fencingToken' });
        await expect(tm.report('a', 'x', 1, { fencingToken: 1.5 })).rejects.toMatchObject({ field: 'options.fencingToken' });
        await expect(tm.failTask('x', 'r', { fencingToken: 1 })).rejects.toMatchObject({ field: 'options.fencingToken' });
      });
    });

    describe('failTask and cancelTask', () => {
      it('fails a live task (anyone without agentId; only the holder with it)', async () => {
        const tm = manager();
        const [a, b] = await tm.submitMany([{ id: 'fa', payload: 1 }, { id: 'fb', payload: 2 }]);
        expect(await tm.failTask(a!.id, { message: 'no input' })).toBe(true);
        expect(await tm.getTask(a!.id)).toMatchObject({ state: 'failed', result: { message: 'no input' } });
        await tm.claim('holder', b!.id);
        await expect(tm.failTask(b!.id, 'x', { agentId: 'other' })).rejects.toBeInstanceOf(NotAuthorizedError);
        expect(await tm.failTask(b!.id, 'boom', { agentId: 'holder', fencingToken: 1 })).toBe(true);
        expect(await tm.getTask(b!.id)).toMatchObject({ state: 'failed', result: 'boom', assignedTo: 'holder' });
      });

      it('returns false for unknown and terminal tasks', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1 });
        await tm.claim('a', id);
        await tm.report('a', id, 'done');
        expect(await tm.failTask(id, 'late')).toBe(false);
        expect(await tm.failTask(id, 'late', { agentId: 'a' })).toBe(false);
        expect(await tm.failTask('missing', 'x')).toBe(false);
        expect(await tm.cancelTask(id)).toBe(false);
        expect(await tm.cancelTask('missing')).toBe(false);
        expect(await tm.getTask(id)).toMatchObject({ state: 'completed', result: 'done' });
      });

      it('cancels pending and claimed tasks; a cancelled task is never handed out', async () => {
        const tm = manager();
        const [p, c] = await tm.submitMany([{ id: 'p', payload: 1, priority: 9 }, { id: 'c', payload: 1 }]);
        await tm.claim('a', c!.id);
        expect(await tm.cancelTask(p!.id)).toBe(true);
        expect(await tm.cancelTask(c!.id)).toBe(true);
        expect(await tm.cancelTask(c!.id)).toBe(false);
        expect(await tm.claimNext('w')).toBeNull();
        expect(await tm.claim('w', p!.id)).toBe(false);
        await expect(tm.report('a', c!.id, 'too late')).rejects.toBeInstanceOf(InvalidStateError);
        expect((await tm.getTask(c!.id))?.state).toBe('cancelled');
      });
    });

    describe('claim expiry', () => {
      it('releases exactly the claims whose TTL has run out, back to pending and unassigned', async () => {
        const tm = manager();
        await tm.submitMany([
          { id: 'short', payload: 1, claimTtlMs: 100 },
          { id: 'long', payload: 1, claimTtlMs: 1000 },
          { id: 'forever', payload: 1 },
        ]);
        for (const id of ['short', 'long', 'forever']) expect(await tm.claim('a', id)).toBe(true);
        expect(await tm.releaseExpiredClaims(T0 + 99)).toEqual([]);
        expect(await tm.releaseExpiredClaims(T0 + 100)).toEqual(['short']);
        expect(await tm.getTask('short')).toMatchObject({ state: 'pending', assignedTo: null, claimedAt: null, fencingToken: 1, attempts: 1 });
        expect((await tm.releaseExpiredClaims(T0 + 10_000_000)).sort()).toEqual(['long']);
        expect(await tm.getTask('forever')).toMatchObject({ state: 'assigned', assignedTo: 'a' });
        expect((await tm.claimNext('b'))?.id).toBe('long');
      });

      it('uses the manager clock when nowMs is omitted, and the default TTL', async () => {
        const tm = manager({ defaultClaimTtlMs: 30 });
        const { id, claimTtlMs } = await tm.submit({ payload: 1 });
        expect(claimTtlMs).toBe(30);
        expect((await tm.submit({ payload: 1, claimTtlMs: null })).claimTtlMs).toBeNull();
        await tm.claim('a', id);
        now = T0 + 29;
        expect(await tm.releaseExpiredClaims()).toEqual([]);
        now = T0 + 30;
        expect(await tm.releaseExpiredClaims()).toEqual([id]);
      });

      it('renewClaim restarts the TTL for the holder only', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1, claimTtlMs: 100 });
        const claimed = await tm.claimNext('a');
        now = T0 + 80;
        expect(await tm.renewClaim('a', id, { fencingToken: claimed!.fencingToken })).toBe(true);
        expect((await tm.getTask(id))?.claimedAt).toBe(T0 + 80);
        expect(await tm.releaseExpiredClaims(T0 + 150)).toEqual([]);
        await expect(tm.renewClaim('b', id)).rejects.toBeInstanceOf(NotAuthorizedError);
        expect(await tm.renewClaim('a', 'missing')).toBe(false);
        expect(await tm.releaseExpiredClaims(T0 + 180)).toEqual([id]);
        await expect(tm.renewClaim('a', id)).rejects.toBeInstanceOf(NotAuthorizedError);
      });

      it('startTask moves a claim to running, which still expires and still reports', async () => {
        const tm = manager();
        const [x, y] = await tm.submitMany([{ id: 'x', payload: 1, claimTtlMs: 10 }, { id: 'y', payload: 1, claimTtlMs: 10 }]);
        await tm.claim('a', x!.id);
        await tm.claim('a', y!.id);
        expect(await tm.startTask('a', x!.id)).toMatchObject({ state: 'running', assignedTo: 'a' });
        expect(await tm.startTask('a', 'missing')).toBeNull();
        await expect(tm.startTask('b', y!.id)).rejects.toBeInstanceOf(NotAuthorizedError);
        await tm.startTask('a', y!.id);
        await tm.report('a', y!.id, 'ok');
        expect(await tm.releaseExpiredClaims(T0 + 10)).toEqual([x!.id]);
        expect((await tm.getTask(y!.id))?.state).toBe('completed');
      });
    });

    describe('waitUntilDone', () => {
      it('resolves when another manager instance finishes the task', async () => {
        const waiter = manager();
        const worker = manager();
        const { id } = await worker.submit({ payload: 1 });
        const waiting = waiter.waitUntilDone(id, { timeoutMs: 20_000 });
        const claimed = await worker.claimNext('w');
        await worker.report('w', id, 'result', { fencingToken: claimed!.fencingToken });
        expect(await waiting).toMatchObject({ id, state: 'completed', result: 'result' });
      });

      it('resolves for failed and cancelled tasks, and at once for a finished one', async () => {
        const tm = manager();
        const [f, c] = await tm.submitMany([{ id: 'f', payload: 1 }, { id: 'c', payload: 1 }]);
        const failed = tm.waitUntilDone(f!.id, { timeoutMs: 20_000 });
        const cancelled = tm.waitUntilDone(c!.id, { timeoutMs: 20_000 });
        await tm.failTask(f!.id, 'no');
        await tm.cancelTask(c!.id);
        expect(await failed).toMatchObject({ state: 'failed', result: 'no' });
        expect(await cancelled).toMatchObject({ state: 'cancelled' });
        expect(await tm.waitUntilDone(f!.id, { timeoutMs: 0 })).toMatchObject({ state: 'failed' });
      });

      it('returns null on timeout and for an unknown id', async () => {
        const tm = manager();
        const { id } = await tm.submit({ payload: 1 });
        expect(await tm.waitUntilDone(id, { timeoutMs: 0 })).toBeNull();
        expect(await tm.waitUntilDone(id, { timeoutMs: 30 })).toBeNull();
        expect(await tm.waitUntilDone('missing', { timeoutMs: 10_000 })).toBeNull();
        await expect(tm.waitUntilDone(id, { timeoutMs: -1 })).rejects.toMatchObject({ field: 'options.timeoutMs' });
      });
    });

    describe('listing', () => {
      it('lists pending tasks in submission order; claimed and finished ones drop out', async () => {
        const tm = manager();
        await tm.submitMany([
          { id: 'z', payload: 1, priority: 1 },
          { id: 'y', payload: 1, priority: 9 },
          { id: 'x', payload: 1, priority: 5 },
        ]);
        await tm.submit({ id: 'w', payload: 1 });
        expect((await tm.listPendingTasks()).map((t) => t.id)).toEqual(['z', 'y', 'x', 'w']);
        await tm.claim('a', 'y');
        await tm.cancelTask('w');
        expect((await tm.listPendingTasks({ refreshFromStore: true })).map((t) => t.id)).toEqual(['z', 'x']);
        expect((await tm.listPendingTasksForAgent('a', { sortByPriority: true })).map((t) => t.id)).toEqual(['x', 'z']);
        expect((await tm.listPendingTasksForAgent('a', { sortByPriority: false, refreshFromStore: true })).map((t) => t.id)).toEqual(['z', 'x']);
      });

      it('sorts by (−priority, id)', async () => {
        const tm = manager();
        await tm.submitMany([
          { id: 'b', payload: 1, priority: 2 },
          { id: 'c', payload: 1, priority: 2 },
          { id: 'a', payload: 1, priority: 2 },
          { id: 'd', payload: 1, priority: 3 },
        ]);
        expect((await tm.listPendingTasksForAgent('x', { sortByPriority: true })).map((t) => t.id)).toEqual(['d', 'a', 'b', 'c']);
      });
    });

    it('two managers sharing one store see one truth', async () => {
      const store = backing.open();
      const a = new TaskManager({ store, now: clock });
      const b = new TaskManager({ store, now: clock });
      const { id } = await a.submit({ payload: 'shared' });
      expect((await b.listPendingTasks()).map((t) => t.id)).toEqual([id]);
      const claimed = await b.claimNext('w');
      expect(await a.claim('v', id)).toBe(false);
      await b.report('w', id, 'ok', { fencingToken: claimed!.fencingToken });
      expect(await a.getTask(id)).toMatchObject({ state: 'completed', result: 'ok' });
      await a.close(); // does not close a store it was given
      expect((await b.getTask(id))?.state).toBe('completed');
      await expect(a.getTask(id)).rejects.toBeInstanceOf(ClosedError);
    });

    it('a closed store refuses calls with ClosedError', async () => {
      const store = backing.open();
      const tm = new TaskManager({ store, now: clock });
      await tm.submit({ payload: 1 });
      await store.close();
      await store.close(); // idempotent
      await expect(tm.claimNext('a')).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    });

    describe('PoolManager', () => {
      const pools = (options: ConstructorParameters<typeof PoolManager>[0] = {}): PoolManager => new PoolManager({ store: backing.open(), ...options });

      it('creates, gets and lists pools', async () => {
        const pm = pools();
        const first = await pm.createPool({ id: 'alpha', topics: ['build', 'test', 'build'] });
        expect(first).toEqual({ id: 'alpha', topics: ['build', 'test'], members: [], trustThreshold: null, hasAdmissionPolicy: false });
        const second = await pm.createPool();
        expect(second.id).toMatch(/^pool_/);
        expect(await pm.getPool('alpha')).toEqual(first);
        expect(await pm.getPool('missing')).toBeNull();
        expect((await pm.listPools()).map((p) => p.id)).toEqual(['alpha', second.id]);
        await expect(pm.createPool({ id: 'alpha' })).rejects.toBeInstanceOf(DuplicateIdError);
        await expect(pm.createPool({ id: '' })).rejects.toMatchObject({ field: 'input.id' });
      });

      it('joins, leaves and lists an agent’s pools', async () => {
        const pm = pools();
        await pm.createPool({ id: 'p1' });
        await pm.createPool({ id: 'p2' });
        await pm.createPool({ id: 'p3' });
        expect(await pm.joinPool('p3', 'a')).toBe(true);
        expect(await pm.joinPool('p1', 'a')).toBe(true);
        expect(await pm.joinPool('p1', 'a')).toBe(true);
        expect(await pm.joinPool('p1', 'b')).toBe(true);
        expect(await pm.joinPool('missing', 'a')).toBe(false);
        expect(await pm.getPoolsForAgent('a')).toEqual(['p1', 'p3']);
        expect((await pm.getPool('p1'))?.members).toEqual(['a', 'b']);
        expect(await pm.leavePool('p1', 'a')).toBe(true);
        expect(await pm.leavePool('p1', 'a')).toBe(false);
        expect(await pm.getPoolsForAgent('a')).toEqual(['p3']);
        expect(await pm.getPoolsForAgent('nobody')).toEqual([]);
      });

      it('applies the admission policy and the trust threshold', async () => {
        const trust = new Map([['trusted', 0.9], ['shady', 0.2]]);
        const seen: unknown[] = [];
        const pm = pools({ trust: { getTrust: (agent) => trust.get(agent) ?? 0 } });
        await pm.createPool({
          id: 'vip',
          trustThreshold: 0.5,
          admissionPolicy: {
            canAdmit: async (agent, context) => {
              seen.push([agent, context.pool.id, context.trust]);
              return !agent.startsWith('banned');
            },
          },
        });
        expect(await pm.joinPool('vip', 'shady')).toBe(false);
        expect(await pm.joinPool('vip', 'unknown')).toBe(false);
        expect(await pm.joinPool('vip', 'trusted')).toBe(true);
        trust.set('banned-1', 1);
        expect(await pm.joinPool('vip', 'banned-1')).toBe(false);
        expect(seen).toEqual([['trusted', 'vip', 0.9], ['banned-1', 'vip', 1]]);
        expect((await pm.getPool('vip'))?.members).toEqual(['trusted']);
        // A pool's own trust provider wins over the manager's.
        await pm.createPool({ id: 'own', trustThreshold: 5, trust: { getTrust: () => 5 } });
        expect(await pm.joinPool('own', 'shady')).toBe(true);
      });

      it('refuses joins through a manager that lacks the pool’s policy until it is attached', async () => {
        const creator = pools();
        const other = pools();
        await creator.createPool({ id: 'guarded', admissionPolicy: { canAdmit: () => true } });
        expect(await other.getPool('guarded')).toMatchObject({ hasAdmissionPolicy: true });
        expect(await other.joinPool('guarded', 'a')).toBe(false);
        expect(await other.attachPolicy('guarded', { admissionPolicy: { canAdmit: (agent) => agent === 'a' } })).toBe(true);
        expect(await other.attachPolicy('missing', {})).toBe(false);
        expect(await other.joinPool('guarded', 'a')).toBe(true);
        expect(await other.joinPool('guarded', 'b')).toBe(false);
        expect((await creator.getPool('guarded'))?.members).toEqual(['a']);
      });

      it('a pooled task is visible and claimable only by the pool’s members, with or without a filter (DESIGN §5)', async () => {
        const pm = pools();
        const tm = manager();
        await pm.createPool({ id: 'gpu' });
        await pm.joinPool('gpu', 'member');
        await tm.submit({ id: 'gpu-job', payload: 1, poolId: 'gpu', priority: 1 });
        // An outsider cannot see it, claim it by id, or take it with an unfiltered claimNext, or with
        // a filter whose pools leave it out.
        expect(await tm.listPendingTasksForAgent('outsider')).toEqual([]);
        expect(await tm.listPendingTasksForAgent('outsider', { poolIds: ['cpu'] })).toEqual([]);
        expect(await tm.claim('outsider', 'gpu-job')).toBe(false);
        expect(await tm.claimNext('outsider')).toBeNull();
        expect(await tm.claimNext('outsider', { poolIds: [] })).toBeNull();
        expect(await tm.claimNext('outsider', { poolIds: ['cpu'] }, { max: 5 })).toEqual([]);
        expect(await tm.getTask('gpu-job')).toMatchObject({ state: 'pending', attempts: 0 });
        // The administrative listing still shows it.
        expect((await tm.listPendingTasks()).map((t) => t.id)).toEqual(['gpu-job']);
        // A member sees and takes it; one who left no longer can.
        expect((await tm.listPendingTasksForAgent('member')).map((t) => t.id)).toEqual(['gpu-job']);
        await pm.joinPool('gpu', 'leaver');
        await pm.leavePool('gpu', 'leaver');
        expect(await tm.claim('leaver', 'gpu-job')).toBe(false);
        expect(await tm.claim('member', 'gpu-job')).toBe(true);
        await tm.submit({ id: 'gpu-2', payload: 2, poolId: 'gpu' });
        expect((await tm.claimNext('member'))?.id).toBe('gpu-2');
      });

      it('pool membership drives what claimNext hands out', async () => {
        const pm = pools();
        const tm = manager();
        await pm.createPool({ id: 'gpu' });
        await pm.joinPool('gpu', 'member');
        await tm.submitMany([{ id: 'gpu-job', payload: 1, poolId: 'gpu', priority: 1 }, { id: 'any-job', payload: 1 }]);
        expect((await tm.claimNext('outsider', { poolIds: await pm.getPoolsForAgent('outsider') }))?.id).toBe('any-job');
        expect(await tm.claimNext('outsider', { poolIds: await pm.getPoolsForAgent('outsider') })).toBeNull();
        expect((await tm.claimNext('member', { poolIds: await pm.getPoolsForAgent('member') }))?.id).toBe('gpu-job');
      });

      it('given poolIds stand for the agent’s memberships: they decide alone which pooled tasks it sees and claims', async () => {
        const pm = pools();
        const tm = manager();
        await pm.createPool({ id: 'gpu' });
        await pm.joinPool('gpu', 'member');
        await tm.submitMany([
          { id: 'gpu-job', payload: 1, poolId: 'gpu', priority: 3 },
          { id: 'far-job', payload: 1, poolId: 'elsewhere', priority: 2 },
          { id: 'any-job', payload: 1 },
        ]);
        const ids = (tasks: readonly Task[]) => tasks.map((t) => t.id);
        // Without poolIds the store's membership decides: 'elsewhere' has no members here.
        expect(ids(await tm.listPendingTasksForAgent('member', { sortByPriority: true }))).toEqual(['gpu-job', 'any-job']);
        expect(ids(await tm.listPendingTasksForAgent('outsider'))).toEqual(['any-job']);
        // With poolIds, membership in the list is what counts, whatever the store knows.
        expect(ids(await tm.listPendingTasksForAgent('outsider', { poolIds: ['elsewhere'], sortByPriority: true }))).toEqual(['far-job', 'any-job']);
        expect(ids(await tm.listPendingTasksForAgent('outsider', { poolIds: ['gpu', 'elsewhere'], sortByPriority: true }))).toEqual(['gpu-job', 'far-job', 'any-job']);
        expect(ids(await tm.listPendingTasksForAgent('member', { poolIds: [] }))).toEqual(['any-job']);
        expect(await tm.claimNext('member', { poolIds: [] })).toMatchObject({ id: 'any-job' });
        expect(await tm.claimNext('member', { poolIds: [] })).toBeNull();
        expect(ids(await tm.claimNext('outsider', { poolIds: ['elsewhere', 'gpu'] }, { max: 5 }))).toEqual(['gpu-job', 'far-job']);
        // A claim by id has no filter: the store's membership decides.
        await tm.submitMany([{ id: 'far-2', payload: 1, poolId: 'elsewhere' }, { id: 'gpu-2', payload: 1, poolId: 'gpu' }]);
        expect(await tm.claim('member', 'far-2')).toBe(false);
        expect(await tm.claim('outsider', 'gpu-2')).toBe(false);
        expect(await tm.claim('member', 'gpu-2')).toBe(true);
        expect(await tm.claimNext('outsider', { poolIds: ['elsewhere'] })).toMatchObject({ id: 'far-2', assignedTo: 'outsider' });
      });
    });
  });
}
