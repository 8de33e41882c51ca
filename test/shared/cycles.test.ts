import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findCycles } from '../../src/shared/cycles.js';

function graph(pairs: readonly (readonly [string, string])[]): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  for (const [from, to] of pairs) {
    let set = edges.get(from);
    if (set === undefined) edges.set(from, (set = new Set()));
    set.add(to);
  }
  return edges;
}

/** Every elementary cycle by brute force: simple paths from each start through larger vertices only. */
function bruteForce(edges: Map<string, Set<string>>): string[][] {
  const out: string[][] = [];
  const nodes = new Set<string>();
  for (const [from, tos] of edges) {
    nodes.add(from);
    for (const to of tos) nodes.add(to);
  }
  for (const start of nodes) {
    const walk = (path: string[]): void => {
      for (const to of edges.get(path.at(-1)!) ?? []) {
        if (to === start) out.push([...path]);
        else if (to > start && !path.includes(to)) walk([...path, to]);
      }
    };
    walk([start]);
  }
  return out.map((c) => c.join('>')).sort().map((c) => c.split('>'));
}

const key = (cycles: string[][]): string[] => cycles.map((c) => c.join('>')).sort();

describe('findCycles', () => {
  it('reports every elementary cycle, not one per strongly connected component', () => {
    // One component, three cycles: a→b→a, a→c→a, a→b→c→a.
    const edges = graph([['a', 'b'], ['b', 'a'], ['a', 'c'], ['c', 'a'], ['b', 'c']]);
    expect(findCycles(edges)).toEqual([['a', 'b'], ['a', 'b', 'c'], ['a', 'c']]);
  });

  it('self-loops are cycles of one; acyclic graphs have none', () => {
    expect(findCycles(graph([['x', 'x'], ['x', 'y']]))).toEqual([['x']]);
    expect(findCycles(graph([['a', 'b'], ['b', 'c'], ['a', 'c']]))).toEqual([]);
  });

  it('matches a brute-force enumeration on random small graphs', () => {
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...names), fc.constantFrom(...names)), { maxLength: 18 }), (pairs) => {
        const edges = graph(pairs);
        const found = findCycles(edges);
        expect(key(found)).toEqual(key(bruteForce(edges)));
        // Each starts at its smallest member and lists each member once.
        for (const cycle of found) {
          expect(cycle[0]).toBe([...cycle].sort()[0]);
          expect(new Set(cycle).size).toBe(cycle.length);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('stops at maxCycles on a graph with exponentially many cycles', () => {
    // The complete digraph on 9 vertices has tens of thousands of elementary cycles.
    const names = Array.from({ length: 9 }, (_, i) => `n${i}`);
    const edges = graph(names.flatMap((a) => names.filter((b) => b !== a).map((b) => [a, b] as const)));
    expect(findCycles(edges, { maxCycles: 50 })).toHaveLength(50);
    expect(findCycles(edges)).toHaveLength(1000);
    expect(() => findCycles(edges, { maxCycles: -1 })).toThrow(RangeError);
  });

  it('handles a cycle through 50,000 subscriptions without recursion', () => {
    const n = 50_000;
    const pairs: [string, string][] = [];
    for (let i = 0; i < n; i++) pairs.push([`s${String(i).padStart(6, '0')}`, `s${String((i + 1) % n).padStart(6, '0')}`]);
    const cycles = findCycles(graph(pairs));
    expect(cycles).toHaveLength(1);
    expect(cycles[0]).toHaveLength(n);
  });
});
