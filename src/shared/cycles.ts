/**
 * Subscription cycle detection (`engine.detectCycle()`): which subscriptions can feed each other.
 *
 * An edge A → B exists when one of A's declared `outputs` may describe an event that B's predicate
 * accepts, or when an event emitted by A's handler was observed to match B. Overlap of two
 * predicates is decided conservatively: they overlap unless some field proves them disjoint, so a
 * possible cycle is never hidden (a false alarm is the safe error for a diagnostic).
 */
import type { PagePredicate } from './predicates.js';

function asSet(value: string | string[] | undefined): string[] | undefined {
  return value === undefined ? undefined : Array.isArray(value) ? value : [value];
}

function intersects(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  return a.some((x) => b.includes(x));
}

function prefixCompatible(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  return a.startsWith(b) || b.startsWith(a);
}

/** False only when no event can satisfy both predicates (judged field by field). */
export function predicatesMayOverlap(a: PagePredicate, b: PagePredicate): boolean {
  if (a.anyOf !== undefined && a.anyOf.length > 0 && !a.anyOf.some((x) => predicatesMayOverlap({ ...a, anyOf: undefined, ...x }, b))) return false;
  if (b.anyOf !== undefined && b.anyOf.length > 0 && !b.anyOf.some((x) => predicatesMayOverlap(a, { ...b, anyOf: undefined, ...x }))) return false;
  if (!intersects(asSet(a.dataType), asSet(b.dataType))) return false;
  if (!intersects(a.kinds, b.kinds)) return false;
  if (a.scopeId !== undefined && b.scopeId !== undefined && a.scopeId !== b.scopeId) return false;
  if (!prefixCompatible(a.sourcePrefix, b.sourcePrefix)) return false;
  if (!prefixCompatible(a.pageIdPrefix, b.pageIdPrefix)) return false;
  if (!intersects(a.pageIdIn, b.pageIdIn)) return false;
  if (a.pageIdIn !== undefined && b.pageIdPrefix !== undefined && !a.pageIdIn.some((id) => id.startsWith(b.pageIdPrefix!))) return false;
  if (b.pageIdIn !== undefined && a.pageIdPrefix !== undefined && !b.pageIdIn.some((id) => id.startsWith(a.pageIdPrefix!))) return false;
  return true;
}

/**
 * Elementary cycles of a directed graph, one per strongly connected component that has a cycle,
 * each rotated to start at its smallest id; sorted, so the answer is deterministic. A self-loop is a
 * cycle of one.
 */
export function findCycles(edges: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const nodes = new Set<string>();
  for (const [from, tos] of edges) {
    nodes.add(from);
    for (const to of tos) nodes.add(to);
  }
  const sorted = [...nodes].sort();
  const out: string[][] = [];
  for (const component of stronglyConnected(sorted, edges)) {
    const members = new Set(component);
    const start = [...component].sort()[0]!;
    if (component.length === 1 && !(edges.get(start)?.has(start) ?? false)) continue;
    const path = shortestCycle(start, members, edges);
    if (path !== undefined) out.push(path);
  }
  return out.sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
}

function neighbours(edges: ReadonlyMap<string, ReadonlySet<string>>, node: string): string[] {
  return [...(edges.get(node) ?? [])].sort();
}

function shortestCycle(start: string, members: ReadonlySet<string>, edges: ReadonlyMap<string, ReadonlySet<string>>): string[] | undefined {
  const parent = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i]!;
    for (const next of neighbours(edges, node)) {
      if (!members.has(next)) continue;
      if (next === start) {
        const path = [node];
        let cur = node;
        while (cur !== start) path.push((cur = parent.get(cur)!));
        return path.reverse();
      }
      if (!parent.has(next)) {
        parent.set(next, node);
        queue.push(next);
      }
    }
  }
  return undefined;
}

/** Tarjan's algorithm, iterative (subscription graphs can be deep). */
function stronglyConnected(nodes: readonly string[], edges: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  for (const root of nodes) {
    if (index.has(root)) continue;
    const work: [string, string[], number][] = [[root, neighbours(edges, root), 0]];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const [node, next] = frame;
      if (frame[2] < next.length) {
        const to = next[frame[2]++]!;
        if (!index.has(to)) {
          index.set(to, counter);
          low.set(to, counter++);
          stack.push(to);
          onStack.add(to);
          work.push([to, neighbours(edges, to), 0]);
        } else if (onStack.has(to)) {
          low.set(node, Math.min(low.get(node)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) low.set(parent[0], Math.min(low.get(parent[0])!, low.get(node)!));
      if (low.get(node) === index.get(node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== node);
        components.push(component);
      }
    }
  }
  return components;
}
