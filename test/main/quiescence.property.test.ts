/**
 * Property: whenever waitForQuiescence resolves, every derived event a graph of handlers must
 * produce has been delivered and no handler is running; graphs with cycles end by the budget,
 * never hang. Random graphs, random async delays, one real engine.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine, PageChange } from '../../src/main/index.js';

const BUDGET = 60;
let engine: Engine;
beforeAll(async () => {
  engine = await createEngine({ episodeBudget: BUDGET, rateLimit: { minIntervalMs: 1, burst: 1000 } });
});
afterAll(async () => {
  await engine.close();
});

interface Graph {
  nodes: number;
  edges: [number, number][];
  delays: number[];
}

const graphArb = (acyclic: boolean): fc.Arbitrary<Graph> =>
  fc.integer({ min: 1, max: 6 }).chain((nodes) =>
    fc.record({
      nodes: fc.constant(nodes),
      // Pairs are drawn freely and then shaped (never filtered: with one node no pair a < b exists).
      edges: fc
        .array(fc.tuple(fc.integer({ min: 0, max: nodes - 1 }), fc.integer({ min: 0, max: nodes - 1 })), { maxLength: 10 })
        .map((pairs) => {
          const unique = new Map<string, [number, number]>();
          for (const [a, b] of pairs) {
            const edge: [number, number] = acyclic ? [Math.min(a, b), Math.max(a, b)] : [a, b];
            if (acyclic && edge[0] === edge[1]) continue;
            unique.set(`${edge[0]}-${edge[1]}`, edge);
          }
          return [...unique.values()];
        }),
      delays: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: nodes, maxLength: nodes }),
    }),
  );

/** Deliveries per node in an acyclic graph when node 0 receives one event: the number of paths. */
function expectedDeliveries(graph: Graph): number[] {
  const count = new Array<number>(graph.nodes).fill(0);
  count[0] = 1;
  for (let node = 0; node < graph.nodes; node++) {
    for (const [from, to] of graph.edges) if (from === node) count[to]! += count[node]!;
  }
  return count;
}

let run = 0;
async function exercise(graph: Graph): Promise<{ delivered: number[]; running: number; exhausted: boolean }> {
  const tag = `r${run++}`;
  const delivered = new Array<number>(graph.nodes).fill(0);
  let running = 0;
  const subs = [];
  for (let node = 0; node < graph.nodes; node++) {
    const targets = graph.edges.filter(([from]) => from === node).map(([, to]) => to);
    subs.push(
      await engine.subscribe({
        predicate: { dataType: `${tag}-n${node}` },
        handler: async (event, dispatch) => {
          running++;
          delivered[node]!++;
          if (graph.delays[node]! > 0) await new Promise((resolve) => setTimeout(resolve, graph.delays[node]));
          const derived = targets.map((to) => PageChange.added(`${event.pageId}/${to}`, { dataType: `${tag}-n${to}` }));
          // Half the handlers emit in one batch, half one event at a time across awaits.
          // Derived (causedBy), so the budget and the depth limit apply to them.
          const causedBy = dispatch.subscriptionId;
          if (node % 2 === 0) await engine.dispatchChange(derived, { causedBy });
          else for (const e of derived) await engine.dispatchChange(e, { causedBy });
          running--;
        },
      }),
    );
  }
  await engine.dispatchChange(PageChange.added(`${tag}:root`, { dataType: `${tag}-n0` }));
  const report = await engine.waitForQuiescence({ timeoutMs: 30_000 });
  const snapshot = { delivered: [...delivered], running, exhausted: report?.budgetExhausted ?? false };
  expect(report, 'quiescence never came').not.toBeNull();
  for (const sub of subs) await sub.unsubscribe();
  return snapshot;
}

describe('quiescence is never early', () => {
  it('acyclic handler graphs: all derived events delivered, nothing running', async () => {
    await fc.assert(
      fc.asyncProperty(graphArb(true), async (graph) => {
        const expected = expectedDeliveries(graph);
        fc.pre(expected.reduce((a, b) => a + b, 0) <= BUDGET);
        const { delivered, running, exhausted } = await exercise(graph);
        expect(running).toBe(0);
        expect(exhausted).toBe(false);
        expect(delivered).toEqual(expected);
      }),
      { numRuns: 30 },
    );
  });

  it('graphs with cycles end by the budget and never hang', async () => {
    await fc.assert(
      fc.asyncProperty(graphArb(false), async (graph) => {
        const { delivered, running, exhausted } = await exercise(graph);
        expect(running).toBe(0);
        const total = delivered.reduce((a, b) => a + b, 0);
        expect(total).toBeLessThanOrEqual(BUDGET + 1); // the external root event is not counted
        // A cycle reachable from node 0 must have exhausted the budget.
        const reach = new Set([0]);
        for (let changed = true; changed; ) {
          changed = false;
          for (const [a, b] of graph.edges) if (reach.has(a) && !reach.has(b)) changed = reach.add(b) !== undefined;
        }
        const cyclic = graph.edges.some(([a, b]) => reach.has(a) && reach.has(b) && pathExists(graph, b, a));
        expect(exhausted).toBe(cyclic);
      }),
      { numRuns: 20 },
    );
  });
});

describe('quiescence with a tiny ring (writes wait for space)', () => {
  it('derived events that wait for ring space still hold quiescence', async () => {
    const small = await createEngine({ ringBytes: 2048, episodeBudget: 100_000, rateLimit: { minIntervalMs: 1, burst: 1_000_000 } });
    try {
      let delivered = 0;
      let running = 0;
      await small.subscribe({
        predicate: { dataType: 'fan' },
        handler: async (event) => {
          running++;
          delivered++;
          const depth = Number(event.extra?.['depth'] ?? 0);
          if (depth < 3) {
            // Six fat events per handler overflow a 2 KiB ring: the writes queue behind each other.
            const children = Array.from({ length: 6 }, (_, i) =>
              PageChange.added(`${event.pageId}.${i}`, { dataType: 'fan', extra: { depth: depth + 1, pad: 'x'.repeat(120) } }),
            );
            // After an await, without causedBy: external writes, so they go through the tiny ingest
            // ring (derived ones travel with the acknowledgements).
            await Promise.resolve();
            void small.dispatchChange(children.slice(0, 3));
            await small.dispatchChange(children.slice(3));
          }
          running--;
        },
      });
      await small.dispatchChange(PageChange.added('root', { dataType: 'fan', extra: { depth: 0 } }));
      const report = await small.waitForQuiescence({ timeoutMs: 60_000 });
      expect(report).not.toBeNull();
      expect(running).toBe(0);
      expect(delivered).toBe(1 + 6 + 36 + 216);
      expect((await small.getStatus()).ring.fullWaits).toBeGreaterThan(0);
    } finally {
      await small.close();
    }
  });
});

describe('a full dispatch ring', () => {
  it('many dispatches per event through tiny rings neither deadlock nor get lost', async () => {
    const small = await createEngine({ ringBytes: 4096, episodeBudget: 1_000_000, rateLimit: { minIntervalMs: 1, burst: 1_000_000 } });
    try {
      let calls = 0;
      for (let i = 0; i < 40; i++) await small.subscribe({ predicate: { dataType: 'wide' }, handler: () => void calls++ });
      const events = Array.from({ length: 300 }, (_, i) => PageChange.added(`w${i}`, { dataType: 'wide', extra: { pad: 'y'.repeat(40) } }));
      await small.dispatchChange(events);
      const report = await small.waitForQuiescence({ timeoutMs: 60_000 });
      expect(report).not.toBeNull();
      expect(calls).toBe(300 * 40);
      // 12,000 dispatches (~13 KB) cannot travel in one frame of a 4 KiB ring: they were split to its limit
      // (and, whenever the main thread fell behind, the worker woke it before waiting for space).
      const status = await small.getStatus();
      expect(status.ring.dispatch.framesWritten).toBeGreaterThan(1);
    } finally {
      await small.close();
    }
  });
});

function pathExists(graph: Graph, from: number, to: number): boolean {
  const seen = new Set([from]);
  const queue = [from];
  while (queue.length > 0) {
    const node = queue.shift()!;
    if (node === to) return true;
    for (const [a, b] of graph.edges) {
      if (a === node && !seen.has(b)) {
        queue.push(b);
        seen.add(b);
      }
    }
  }
  return false;
}
