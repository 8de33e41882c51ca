import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PageChange } from '../../src/shared/events.js';
import { appliesBeforeMatch, PageGraph } from '../../src/shared/page-graph.js';
import { matchesPredicate, type PagePredicate } from '../../src/shared/predicates.js';

describe('PageGraph', () => {
  it('edge_added adds pageId → related[0] with its type; edge_removed removes it', () => {
    const graph = new PageGraph();
    expect(graph.apply(PageChange.edgeAdded('a', 'b', 'cites'))).toBe(true);
    expect(graph.hasEdge('a', 'b')).toBe(true);
    expect(graph.hasEdge('a', 'b', 'cites')).toBe(true);
    expect(graph.hasEdge('a', 'b', 'links')).toBe(false);
    expect(graph.hasEdge('b', 'a')).toBe(false); // directed
    expect(graph.edgeCount).toBe(1);
    expect(graph.nodeCount).toBe(2);
    expect(graph.apply(PageChange.edgeRemoved('a', 'b', 'cites'))).toBe(true);
    expect(graph.hasEdge('a', 'b')).toBe(false);
    expect(graph.edgeCount).toBe(0);
    expect(graph.nodeCount).toBe(0);
  });

  it('re-adding an edge changes nothing; parallel edges of different types are distinct', () => {
    const graph = new PageGraph();
    graph.addEdge('a', 'b', 'cites');
    const version = graph.version;
    expect(graph.addEdge('a', 'b', 'cites')).toBe(false);
    expect(graph.version).toBe(version);
    expect(graph.addEdge('a', 'b', 'links')).toBe(true);
    expect(graph.addEdge('a', 'b')).toBe(true); // untyped
    expect(graph.edgeCount).toBe(3);
    expect(graph.nodeCount).toBe(2);
    expect(graph.removeEdge('a', 'b', 'cites')).toBe(true);
    expect(graph.hasEdge('a', 'b', 'links')).toBe(true);
    expect(graph.removeEdge('a', 'b', 'cites')).toBe(false);
    expect(graph.edgeCount).toBe(2);
  });

  it('edge_removed without an edgeType removes every edge between the two pages', () => {
    const graph = new PageGraph();
    graph.addEdge('a', 'b', 'cites');
    graph.addEdge('a', 'b', 'links');
    graph.addEdge('a', 'b');
    graph.addEdge('a', 'c', 'cites');
    expect(graph.apply(PageChange.edgeRemoved('a', 'b'))).toBe(true);
    expect(graph.hasEdge('a', 'b')).toBe(false);
    expect(graph.hasEdge('a', 'c')).toBe(true);
    expect(graph.edgeCount).toBe(1);
  });

  it('page_invalidated drops every edge into and out of the page', () => {
    const graph = new PageGraph();
    graph.addEdge('a', 'b');
    graph.addEdge('b', 'c', 'x');
    graph.addEdge('b', 'b');
    graph.addEdge('d', 'c');
    expect(graph.apply(PageChange.invalidated('b', 'deleted'))).toBe(true);
    expect(graph.hasEdge('a', 'b')).toBe(false);
    expect(graph.hasEdge('b', 'c')).toBe(false);
    expect(graph.hasEdge('b', 'b')).toBe(false);
    expect(graph.hasEdge('d', 'c')).toBe(true);
    expect(graph.edgeCount).toBe(1);
    expect(graph.nodeCount).toBe(2); // d and c; a and b have no edges left
    expect(graph.reachable('a', 'c', 5)).toBe(false);
    expect(graph.apply(PageChange.invalidated('nobody'))).toBe(false);
  });

  it('page_replaced with a new id moves the old page’s edges to it; same id or page_added change nothing', () => {
    const graph = new PageGraph();
    graph.addEdge('x', 'old', 'cites');
    graph.addEdge('old', 'y');
    graph.addEdge('old', 'old', 'self');
    expect(graph.apply(PageChange.replaced('old', 'new'))).toBe(true);
    expect(graph.hasEdge('x', 'new', 'cites')).toBe(true);
    expect(graph.hasEdge('new', 'y')).toBe(true);
    expect(graph.hasEdge('new', 'y', 'self')).toBe(false);
    expect(graph.hasEdge('new', 'new', 'self')).toBe(true);
    expect(graph.hasEdge('x', 'old')).toBe(false);
    expect(graph.edgeCount).toBe(3);
    expect(graph.nodeCount).toBe(3);
    const version = graph.version;
    expect(graph.apply(PageChange.replaced('new', 'new'))).toBe(false);
    expect(graph.apply(PageChange.added('new'))).toBe(false);
    expect(graph.version).toBe(version);
  });

  it('neighbors lists distinct successors, optionally by edge type', () => {
    const graph = new PageGraph();
    graph.addEdge('a', 'b', 'cites');
    graph.addEdge('a', 'b', 'links');
    graph.addEdge('a', 'c', 'links');
    graph.addEdge('a', 'd');
    graph.addEdge('z', 'a');
    expect(graph.neighbors('a')).toEqual(['b', 'c', 'd']);
    expect(graph.neighbors('a', ['links'])).toEqual(['b', 'c']);
    expect(graph.neighbors('a', ['cites'])).toEqual(['b']);
    expect(graph.neighbors('nobody')).toEqual([]);
  });

  describe('reachable', () => {
    it('counts hops along directed edges; the root reaches itself at 0 hops', () => {
      const graph = new PageGraph();
      graph.addEdge('a', 'b');
      graph.addEdge('b', 'c');
      graph.addEdge('c', 'a'); // cycle
      graph.addEdge('c', 'd');
      expect(graph.reachable('a', 'a', 0)).toBe(true);
      expect(graph.reachable('a', 'b', 0)).toBe(false);
      expect(graph.reachable('a', 'b', 1)).toBe(true);
      expect(graph.reachable('a', 'c', 1)).toBe(false);
      expect(graph.reachable('a', 'c', 2)).toBe(true);
      expect(graph.reachable('a', 'd', 2)).toBe(false);
      expect(graph.reachable('a', 'd', 3)).toBe(true);
      expect(graph.reachable('d', 'a', 10)).toBe(false);
      expect(graph.reachable('a', 'zzz', Number.POSITIVE_INFINITY)).toBe(false);
      expect(graph.reachable('a', 'd', Number.POSITIVE_INFINITY)).toBe(true);
      expect(graph.reachable('a', 'a', -1)).toBe(false);
      expect(graph.reachable('a', 'a', Number.NaN)).toBe(false);
    });

    it('follows only edges of the listed types; untyped edges only when no types are listed', () => {
      const graph = new PageGraph();
      graph.addEdge('a', 'b', 'cites');
      graph.addEdge('b', 'c', 'links');
      graph.addEdge('a', 'u');
      expect(graph.reachable('a', 'c', 2, ['cites'])).toBe(false);
      expect(graph.reachable('a', 'c', 2, ['cites', 'links'])).toBe(true);
      expect(graph.reachable('a', 'c', 2, ['links', 'cites'])).toBe(true);
      expect(graph.reachable('a', 'u', 1, ['cites'])).toBe(false);
      expect(graph.reachable('a', 'u', 1)).toBe(true);
    });

    it('cached answers follow later edge additions and removals', () => {
      const graph = new PageGraph();
      const types = ['t'];
      graph.addEdge('r', 'a', 't');
      expect(graph.reachable('r', 'b', 2, types)).toBe(false);
      graph.addEdge('a', 'b', 't'); // extends the cached entry in place
      expect(graph.reachable('r', 'b', 2, types)).toBe(true);
      graph.addEdge('b', 'c', 't');
      expect(graph.reachable('r', 'c', 2, types)).toBe(false); // beyond the depth asked for
      expect(graph.reachable('r', 'c', 3, types)).toBe(true); // a deeper question deepens the entry
      graph.addEdge('r', 'c', 'other'); // wrong type: no shortcut
      expect(graph.reachable('r', 'c', 1, types)).toBe(false);
      expect(graph.reachable('r', 'c', 1)).toBe(true);
      graph.removeEdge('a', 'b', 't');
      expect(graph.reachable('r', 'b', 3, types)).toBe(false);
      expect(graph.reachable('r', 'c', 3, types)).toBe(false);
      expect(graph.reachable('r', 'c', 3)).toBe(true); // still via the untyped-filter shortcut r → c
      graph.removePage('r');
      expect(graph.reachable('r', 'c', 3)).toBe(false);
      expect(graph.reachable('r', 'r', 3)).toBe(true);
    });

    it('a shorter path found later tightens the cached distance', () => {
      const graph = new PageGraph();
      graph.addEdge('r', 'a');
      graph.addEdge('a', 'b');
      graph.addEdge('b', 'c');
      graph.addEdge('c', 'd');
      expect(graph.reachable('r', 'd', 3)).toBe(false);
      expect(graph.reachable('r', 'd', 4)).toBe(true);
      graph.addEdge('r', 'c');
      expect(graph.reachable('r', 'd', 2)).toBe(true);
      graph.removeEdge('r', 'c');
      expect(graph.reachable('r', 'd', 2)).toBe(false);
      expect(graph.reachable('r', 'd', 4)).toBe(true);
    });

    it('notices an edgeTypes array whose contents changed between calls', () => {
      const graph = new PageGraph();
      graph.addEdge('a', 'b', 'links');
      const types = ['cites'];
      expect(graph.reachable('a', 'b', 1, types)).toBe(false);
      types[0] = 'links';
      expect(graph.reachable('a', 'b', 1, types)).toBe(true);
    });

    it('rejects a reach cache size below 1', () => {
      expect(() => new PageGraph({ reachCacheSize: 0 })).toThrow(RangeError);
    });

    it('property: answers equal a fresh BFS after any sequence of changes, whatever the cache size', () => {
      const pages = ['a', 'b', 'c', 'd', 'e', 'f'];
      const page = fc.constantFrom(...pages);
      const type = fc.option(fc.constantFrom('t1', 't2'), { nil: undefined });
      const filters = [undefined, ['t1'], ['t2'], ['t1', 't2']] as const;
      const op = fc.oneof(
        { weight: 4, arbitrary: fc.tuple(fc.constant('add' as const), page, page, type) },
        { weight: 2, arbitrary: fc.tuple(fc.constant('remove' as const), page, page, type) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('invalidate' as const), page, page, type) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('rename' as const), page, page, type) },
        { weight: 4, arbitrary: fc.tuple(fc.constant('ask' as const), page, page, fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 3 })) },
      );
      fc.assert(
        fc.property(fc.array(op, { maxLength: 60 }), fc.integer({ min: 1, max: 4 }), (ops, cacheSize) => {
          const graph = new PageGraph({ reachCacheSize: cacheSize });
          const model = new Set<string>(); // "from\0to\0type"
          const key = (from: string, to: string, t: string | undefined) => `${from}\0${to}\0${t ?? ''}`;
          for (const o of ops) {
            switch (o[0]) {
              case 'add':
                graph.addEdge(o[1], o[2], o[3]);
                model.add(key(o[1], o[2], o[3]));
                break;
              case 'remove':
                graph.removeEdge(o[1], o[2], o[3]);
                for (const k of [...model]) {
                  const [f, t, ty] = k.split('\0');
                  if (f === o[1] && t === o[2] && (o[3] === undefined || ty === o[3])) model.delete(k);
                }
                break;
              case 'invalidate':
                graph.apply(PageChange.invalidated(o[1]));
                for (const k of [...model]) {
                  const [f, t] = k.split('\0');
                  if (f === o[1] || t === o[1]) model.delete(k);
                }
                break;
              case 'rename': {
                graph.apply(PageChange.replaced(o[1], o[2]));
                if (o[1] === o[2]) break;
                for (const k of [...model]) {
                  const [f, t, ty] = k.split('\0') as [string, string, string];
                  if (f !== o[1] && t !== o[1]) continue;
                  model.delete(k);
                  model.add(`${f === o[1] ? o[2] : f}\0${t === o[1] ? o[2] : t}\0${ty}`);
                }
                break;
              }
              case 'ask': {
                const filter = filters[o[4]];
                expect(graph.reachable(o[1], o[2], o[3], filter)).toBe(bfs(model, o[1], o[2], o[3], filter));
                break;
              }
            }
            expect(graph.edgeCount).toBe(model.size);
            const nodes = new Set([...model].flatMap((k) => k.split('\0').slice(0, 2)));
            expect(graph.nodeCount).toBe(nodes.size);
          }
        }),
        { numRuns: 400, plugins: [fc.interruptAfterTimeLimit(20_000)] },
      );
    });
  });

  it('appliesBeforeMatch: an invalidated page is matched while still in the subtree; a renamed one after moving', () => {
    const subtree: PagePredicate = { edgeReach: { root: 'root', maxHops: 2 } };
    const graph = new PageGraph();
    graph.addEdge('root', 'child');

    const gone = PageChange.invalidated('child', 'deleted');
    expect(appliesBeforeMatch(gone.kind)).toBe(false);
    expect(matchesPredicate(subtree, gone, graph)).toBe(true); // matched first…
    graph.apply(gone);
    expect(matchesPredicate(subtree, gone, graph)).toBe(false); // …because afterwards it is out of reach

    graph.addEdge('root', 'v1');
    const renamed = PageChange.replaced('v1', 'v2');
    expect(appliesBeforeMatch(renamed.kind)).toBe(true);
    expect(matchesPredicate(subtree, renamed, graph)).toBe(false); // before the move v2 is unknown…
    graph.apply(renamed);
    expect(matchesPredicate(subtree, renamed, graph)).toBe(true); // …after it, v2 has v1's place

    for (const kind of ['page_added', 'page_replaced', 'page_graph_edge_added', 'page_graph_edge_removed'] as const) {
      expect(appliesBeforeMatch(kind)).toBe(true);
    }
  });

  it('clear removes every edge and every cached answer', () => {
    const graph = new PageGraph();
    const types = ['t'];
    graph.addEdge('a', 'b', 't');
    expect(graph.reachable('a', 'b', 1, types)).toBe(true);
    graph.clear();
    expect(graph.edgeCount).toBe(0);
    expect(graph.reachable('a', 'b', 1, types)).toBe(false);
    graph.addEdge('a', 'c', 't');
    expect(graph.reachable('a', 'c', 1, types)).toBe(true);
    expect(graph.reachable('a', 'b', 1, types)).toBe(false);
  });
});

function bfs(edges: ReadonlySet<string>, root: string, target: string, maxHops: number, types: readonly string[] | undefined): boolean {
  let frontier = new Set([root]);
  const seen = new Set([root]);
  for (let hop = 0; hop < maxHops; hop++) {
    const next = new Set<string>();
    for (const k of edges) {
      const [f, t, ty] = k.split('\0') as [string, string, string];
      if (frontier.has(f) && !seen.has(t) && (types === undefined || types.includes(ty))) next.add(t);
    }
    for (const n of next) seen.add(n);
    frontier = next;
  }
  return seen.has(target);
}
