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

/** Default most cycles {@link findCycles} reports. */
export const DEFAULT_MAX_CYCLES = 1000;

/** Options of {@link findCycles}. */
export interface FindCyclesOptions {
  /**
   * Most cycles to report (default {@link DEFAULT_MAX_CYCLES}). A dense graph has exponentially many
   * elementary cycles; past the cap the search stops, so the answer is a prefix of the full one.
   */
  maxCycles?: number;
}

/**
 * Every elementary cycle of a directed graph (Johnson's algorithm), up to `maxCycles`. Each cycle
 * starts at its smallest id and lists each member once; a self-loop is a cycle of one. The answer is
 * sorted (element-wise, then shorter first), so it is deterministic.
 *
 * Work: Tarjan once over the whole graph, then per non-trivial strongly connected component
 * Johnson's search from its smallest vertex, after which that vertex is removed and the rest of the
 * component split again; O((n + e)(c + 1)) for c cycles.
 */
export function findCycles(edges: ReadonlyMap<string, ReadonlySet<string>>, options: FindCyclesOptions = {}): string[][] {
  const maxCycles = options.maxCycles ?? DEFAULT_MAX_CYCLES;
  if (!Number.isInteger(maxCycles) || maxCycles < 0) throw new RangeError(`findCycles: maxCycles must be an integer >= 0, got ${String(maxCycles)}`);
  const nodes = new Set<string>();
  for (const [from, tos] of edges) {
    nodes.add(from);
    for (const to of tos) nodes.add(to);
  }
  const out: string[][] = [];
  const work = stronglyConnected([...nodes].sort(), edges).filter((c) => isCyclic(c, edges));
  while (work.length > 0 && out.length < maxCycles) {
    const component = work.pop()!;
    const members = new Set(component);
    const start = component.reduce((a, b) => (b < a ? b : a));
    circuits(start, members, edges, out, maxCycles);
    members.delete(start);
    const rest = [...members].sort();
    for (const next of stronglyConnected(rest, edges, members)) if (isCyclic(next, edges)) work.push(next);
  }
  return out.sort(compareCycles);
}

function compareCycles(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return a.length - b.length;
}

function isCyclic(component: readonly string[], edges: ReadonlyMap<string, ReadonlySet<string>>): boolean {
  return component.length > 1 || (edges.get(component[0]!)?.has(component[0]!) ?? false);
}

/** Johnson's CIRCUIT from `start` within `members`, iterative (cycles can be long). */
function circuits(
  start: string,
  members: ReadonlySet<string>,
  edges: ReadonlyMap<string, ReadonlySet<string>>,
  out: string[][],
  maxCycles: number,
): void {
  const blocked = new Set<string>([start]);
  const blockedBy = new Map<string, Set<string>>();
  const path = [start];
  const stack: { node: string; next: string[]; at: number; found: boolean }[] = [{ node: start, next: neighbours(edges, start, members), at: 0, found: false }];
  // UNBLOCK(u): unblock u, then every node waiting on it that is still blocked, transitively.
  const unblock = (node: string): void => {
    const pending = [node];
    while (pending.length > 0) {
      const u = pending.pop()!;
      blocked.delete(u);
      const waiting = blockedBy.get(u);
      if (waiting === undefined) continue;
      blockedBy.delete(u);
      for (const w of waiting) if (blocked.has(w)) pending.push(w);
    }
  };
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.at < frame.next.length) {
      const to = frame.next[frame.at++]!;
      if (to === start) {
        out.push([...path]);
        frame.found = true;
        if (out.length >= maxCycles) return;
      } else if (!blocked.has(to)) {
        path.push(to);
        blocked.add(to);
        stack.push({ node: to, next: neighbours(edges, to, members), at: 0, found: false });
      }
      continue;
    }
    stack.pop();
    path.pop();
    if (frame.found) {
      unblock(frame.node);
      const parent = stack[stack.length - 1];
      if (parent !== undefined) parent.found = true;
    } else {
      for (const to of frame.next) {
        let waiting = blockedBy.get(to);
        if (waiting === undefined) blockedBy.set(to, (waiting = new Set()));
        waiting.add(frame.node);
      }
    }
  }
}

function neighbours(edges: ReadonlyMap<string, ReadonlySet<string>>, node: string, within?: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const to of edges.get(node) ?? []) if (within === undefined || within.has(to)) out.push(to);
  return out.sort();
}

/** Tarjan's algorithm, iterative (subscription graphs can be deep); only `within` when given. */
function stronglyConnected(nodes: readonly string[], edges: ReadonlyMap<string, ReadonlySet<string>>, within?: ReadonlySet<string>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  for (const root of nodes) {
    if (index.has(root)) continue;
    const work: [string, string[], number][] = [[root, neighbours(edges, root, within), 0]];
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
          work.push([to, neighbours(edges, to, within), 0]);
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
