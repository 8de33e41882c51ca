/**
 * Model-based property test: random sequences of submit / claimNext / claim / report / cancel /
 * release run against MemoryStore (per-partition heaps with lazy deletion) and SqliteStore (SQL),
 * and every answer must equal that of a naive model that scans a list. This is what holds the memory
 * store's heap shortcuts and the SQL visibility clauses to the one rule in task.ts, pool membership
 * included (a pooled task is visible only to the pool's members: those the store knows, or those a
 * filter's poolIds stand for).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryStore, PoolManager, SqliteStore, TaskManager, type TaskFilter, type TaskStore } from '../../src/coordination/index.js';

interface ModelTask {
  id: string;
  priority: number;
  poolId: string | null;
  topic: string | null;
  caps: string[];
  ttl: number | null;
  state: 'pending' | 'assigned' | 'completed' | 'cancelled';
  assignedTo: string | null;
  claimedAt: number | null;
  token: number;
}

type Op =
  | { kind: 'submit'; priority: number; poolId: string | null; topic: string | null; caps: string[]; ttl: number | null }
  | { kind: 'claimNext'; agent: string; filter: TaskFilter }
  | { kind: 'claimBatch'; agent: string; filter: TaskFilter; max: number }
  | { kind: 'claim'; agent: string; index: number }
  | { kind: 'report'; agent: string; index: number; stale: boolean }
  | { kind: 'cancel'; index: number }
  | { kind: 'release' }
  | { kind: 'advance'; ms: number };

const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const filterArb: fc.Arbitrary<TaskFilter> = fc
  .record({
    poolIds: maybe(fc.subarray(['p', 'q', 'r'])),
    capabilities: maybe(fc.subarray(['a', 'b'])),
    topics: maybe(fc.subarray(['t', 'u'])),
  })
  .map((f) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)) as TaskFilter);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('submit' as const), priority: fc.integer({ min: -2, max: 2 }), poolId: fc.constantFrom(null, 'p', 'q', 'r'), topic: fc.constantFrom(null, 't', 'u'), caps: fc.subarray(['a', 'b']), ttl: fc.constantFrom(null, 10, 50) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('claimNext' as const), agent: fc.constantFrom('x', 'y'), filter: filterArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('claimBatch' as const), agent: fc.constantFrom('x', 'y'), filter: filterArb, max: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('claim' as const), agent: fc.constantFrom('x', 'y'), index: fc.nat(25) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('report' as const), agent: fc.constantFrom('x', 'y'), index: fc.nat(25), stale: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), index: fc.nat(25) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'release' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 40 }) }) },
);

/** Pool membership in every run: x belongs to p, y to p and q; pool r is unknown to the store. */
const MEMBERS: Record<string, readonly string[]> = { p: ['x', 'y'], q: ['y'] };

function visible(task: ModelTask, agent: string, filter: TaskFilter): boolean {
  // Given poolIds stand for the agent's memberships; absent, the store's membership decides.
  if (task.poolId !== null && filter.poolIds === undefined && !(MEMBERS[task.poolId] ?? []).includes(agent)) return false;
  if (task.poolId !== null && filter.poolIds !== undefined && !filter.poolIds.includes(task.poolId)) return false;
  if (task.topic !== null && filter.topics !== undefined && !filter.topics.includes(task.topic)) return false;
  return filter.capabilities === undefined || task.caps.every((c) => filter.capabilities!.includes(c));
}

async function run(store: TaskStore, ops: Op[]): Promise<void> {
  let now = 1_000;
  const tm = new TaskManager({ store, now: () => now });
  const pools = new PoolManager({ store });
  for (const [pool, members] of Object.entries(MEMBERS)) {
    await pools.createPool({ id: pool });
    for (const member of members) await pools.joinPool(pool, member);
  }
  const model: ModelTask[] = [];
  const outcome = (error: unknown): string => (error instanceof Error ? error.name : 'ok');
  for (const [step, op] of ops.entries()) {
    const where = `step ${step}: ${JSON.stringify(op)}`;
    switch (op.kind) {
      case 'submit': {
        const id = `t${String(model.length).padStart(3, '0')}`;
        await tm.submit({ id, payload: null, priority: op.priority, poolId: op.poolId, topic: op.topic, requiredCapabilities: op.caps, claimTtlMs: op.ttl });
        model.push({ id, priority: op.priority, poolId: op.poolId, topic: op.topic, caps: op.caps, ttl: op.ttl, state: 'pending', assignedTo: null, claimedAt: null, token: 0 });
        break;
      }
      case 'claimNext': {
        const candidates = model.filter((t) => t.state === 'pending' && visible(t, op.agent, op.filter));
        candidates.sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1));
        const expected = candidates[0];
        const got = await tm.claimNext(op.agent, op.filter);
        expect(got?.id ?? null, where).toBe(expected?.id ?? null);
        if (expected !== undefined) Object.assign(expected, { state: 'assigned', assignedTo: op.agent, claimedAt: now, token: expected.token + 1 });
        expect(got?.fencingToken, where).toBe(expected?.token);
        break;
      }
      case 'claimBatch': {
        const candidates = model.filter((t) => t.state === 'pending' && visible(t, op.agent, op.filter));
        candidates.sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1));
        const expected = candidates.slice(0, op.max);
        const got = await tm.claimNext(op.agent, op.filter, { max: op.max });
        expect(got.map((t) => t.id), where).toEqual(expected.map((t) => t.id));
        for (const task of expected) Object.assign(task, { state: 'assigned', assignedTo: op.agent, claimedAt: now, token: task.token + 1 });
        expect(got.map((t) => t.fencingToken), where).toEqual(expected.map((t) => t.token));
        break;
      }
      case 'claim': {
        const task = model[op.index];
        const expected = task?.state === 'pending' && visible(task, op.agent, {});
        expect(await tm.claim(op.agent, task?.id ?? 'none'), where).toBe(expected);
        if (expected) Object.assign(task!, { state: 'assigned', assignedTo: op.agent, claimedAt: now, token: task!.token + 1 });
        break;
      }
      case 'report': {
        const task = model[op.index];
        const token = task === undefined ? 1 : op.stale ? Math.max(1, task.token - 1) : Math.max(1, task.token);
        let expected = 'ok';
        if (task !== undefined) {
          if (token !== task.token) expected = 'StaleClaimError';
          else if (task.assignedTo !== op.agent) expected = 'NotAuthorizedError';
          else if (task.state !== 'assigned') expected = 'InvalidStateError';
        }
        const got = await tm.report(op.agent, task?.id ?? 'none', 1, { fencingToken: token }).then(() => 'ok', outcome);
        expect(got, where).toBe(expected);
        if (task !== undefined && expected === 'ok') task.state = 'completed';
        break;
      }
      case 'cancel': {
        const task = model[op.index];
        const expected = task !== undefined && (task.state === 'pending' || task.state === 'assigned');
        expect(await tm.cancelTask(task?.id ?? 'none'), where).toBe(expected);
        if (expected) task!.state = 'cancelled';
        break;
      }
      case 'release': {
        const expired = model.filter((t) => t.state === 'assigned' && t.ttl !== null && t.claimedAt! + t.ttl <= now);
        expect((await tm.releaseExpiredClaims()).sort(), where).toEqual(expired.map((t) => t.id).sort());
        for (const task of expired) Object.assign(task, { state: 'pending', assignedTo: null, claimedAt: null });
        break;
      }
      case 'advance':
        now += op.ms;
        break;
    }
  }
  const pending = (await tm.listPendingTasksForAgent('x', { sortByPriority: true })).map((t) => t.id);
  const expected = model.filter((t) => t.state === 'pending' && visible(t, 'x', {})).sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1));
  expect(pending).toEqual(expected.map((t) => t.id));
}

describe('stores agree with the naive model', () => {
  it('MemoryStore', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 80, size: 'max' }), async (ops) => {
        const store = new MemoryStore();
        try {
          await run(store, ops);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('SqliteStore', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 80, size: 'max' }), async (ops) => {
        const store = new SqliteStore(':memory:');
        try {
          await run(store, ops);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 100 },
    );
  });
});
