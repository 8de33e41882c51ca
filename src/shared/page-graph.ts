/**
 * The page graph (DESIGN §2): directed, typed edges between pages, built from
 * `page_graph_edge_added` / `page_graph_edge_removed` events, and the bounded-hop reachability that
 * `edgeReach` predicates ask about.
 *
 * Reachability is asked once per candidate subscription per event, so it is cached: one entry per
 * (edge-type filter, root) holding exact BFS distances up to the deepest `maxHops` asked so far.
 * Adding an edge relaxes the cached distances in place (usually O(1)); removing an edge drops only
 * the entries whose shortest paths used it; an edge storm therefore does not turn every later match
 * into a fresh BFS.
 */
import type { PageChangeEvent, PageChangeKind } from './events.js';

/** Stored type of an edge whose event carried no `edgeType` (events forbid the empty string). */
const UNTYPED = '';

/** Default number of cached (edge-type filter, root) reachability entries. */
export const DEFAULT_REACH_CACHE_SIZE = 1024;

/** Options of {@link PageGraph}. */
export interface PageGraphOptions {
  /**
   * Most cached reachability entries (one per distinct root and edge-type filter in use). Each holds
   * the distances of the pages within reach, so this bounds the cache's memory; beyond it the least
   * recently used entry is dropped and recomputed when next asked.
   */
  reachCacheSize?: number;
}

interface TypeFilter {
  /** Edge types that may be followed; null = any, untyped edges included. */
  readonly types: ReadonlySet<string> | null;
  readonly roots: Map<string, ReachEntry>;
}

interface ReachEntry {
  readonly root: string;
  /** Distances are exact for every page at most `depth` hops from `root`; farther pages are absent. */
  depth: number;
  dist: Map<string, number>;
  lastUsed: number;
}

/**
 * Whether the convergence worker should apply `kind` to the graph before matching the event (true)
 * or after (false). The rule is "match while the page is in the graph": a `page_invalidated` page
 * loses its edges on apply, so subscribers of its subtree must be matched first or they would never
 * hear that it went away; a renaming `page_replaced` moves the edges to the new id, so it is applied
 * first. Edge events do not change whether their own source page is reachable, so either order
 * gives the same answer; they are applied first.
 */
export function appliesBeforeMatch(kind: PageChangeKind): boolean {
  return kind !== 'page_invalidated';
}

/**
 * Directed multigraph of pages with typed edges, plus cached bounded reachability.
 *
 * Event semantics of {@link PageGraph.apply}:
 * - `page_graph_edge_added`: edge `pageId → related[0]` of type `edgeType` (untyped when absent).
 *   Parallel edges of different types are distinct; re-adding an existing edge changes nothing.
 * - `page_graph_edge_removed`: removes that edge; without `edgeType` it removes every edge between
 *   the two pages, because a source that does not type its removals means "no longer related".
 * - `page_invalidated`: drops every edge into and out of the page. An invalidated page no longer
 *   exists (deleted file, deleted record), so nothing is reachable through it; if it comes back, its
 *   source re-declares its edges. Without this the graph would grow forever with dead pages.
 * - `page_replaced` with a different old id moves the old page's edges (in and out) to the new id:
 *   the replacement takes the old page's place in the graph. Same id: nothing changes.
 * - `page_added`: nothing (a page without edges is not stored).
 */
export class PageGraph {
  readonly #out = new Map<string, Map<string, Set<string>>>();
  readonly #in = new Map<string, Set<string>>();
  /** Incident edge count per page; a page is a node while it has at least one edge. */
  readonly #degree = new Map<string, number>();
  #edgeCount = 0;
  #version = 0;

  readonly #reachCacheSize: number;
  readonly #filters = new Map<string, TypeFilter>();
  /** Memo by array identity, with a copy of the contents so that a caller mutating its array is noticed. */
  readonly #filterByArray = new WeakMap<readonly string[], { filter: TypeFilter; seen: readonly string[] }>();
  readonly #anyType: TypeFilter = { types: null, roots: new Map() };
  #cachedEntries = 0;
  #tick = 0;

  constructor(options: PageGraphOptions = {}) {
    const size = options.reachCacheSize ?? DEFAULT_REACH_CACHE_SIZE;
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`PageGraph: reachCacheSize must be an integer >= 1, got ${String(size)}`);
    this.#reachCacheSize = size;
  }

  /** Number of distinct (from, to, type) edges. */
  get edgeCount(): number {
    return this.#edgeCount;
  }

  /** Number of pages with at least one edge. */
  get nodeCount(): number {
    return this.#degree.size;
  }

  /** Increments on every change; lets callers cache derived answers of their own. */
  get version(): number {
    return this.#version;
  }

  /** Applies one event (see the class comment); returns whether the graph changed. */
  apply(event: PageChangeEvent): boolean {
    switch (event.kind) {
      case 'page_graph_edge_added': {
        const to = event.related?.[0];
        return to === undefined ? false : this.addEdge(event.pageId, to, event.edgeType);
      }
      case 'page_graph_edge_removed': {
        const to = event.related?.[0];
        return to === undefined ? false : this.removeEdge(event.pageId, to, event.edgeType);
      }
      case 'page_invalidated':
        return this.removePage(event.pageId);
      case 'page_replaced': {
        const oldId = event.related?.[0];
        return oldId === undefined || oldId === event.pageId ? false : this.renamePage(oldId, event.pageId);
      }
      case 'page_added':
        return false;
    }
  }

  /** Adds edge `from → to`; returns false when it already existed. */
  addEdge(from: string, to: string, edgeType?: string): boolean {
    const type = edgeType ?? UNTYPED;
    let targets = this.#out.get(from);
    if (targets === undefined) {
      targets = new Map();
      this.#out.set(from, targets);
    }
    let types = targets.get(to);
    if (types === undefined) {
      types = new Set();
      targets.set(to, types);
      let sources = this.#in.get(to);
      if (sources === undefined) {
        sources = new Set();
        this.#in.set(to, sources);
      }
      sources.add(from);
    }
    if (types.has(type)) return false;
    types.add(type);
    this.#edgeCount++;
    this.#version++;
    this.#bumpDegree(from, 1);
    this.#bumpDegree(to, 1);
    this.#relaxCaches(from, to, type);
    return true;
  }

  /**
   * Removes edge `from → to` of `edgeType`, or every edge between them when `edgeType` is omitted.
   * Returns whether anything was removed.
   */
  removeEdge(from: string, to: string, edgeType?: string): boolean {
    const types = this.#out.get(from)?.get(to);
    if (types === undefined) return false;
    if (edgeType !== undefined) return this.#removeTyped(from, to, edgeType);
    let removed = false;
    for (const type of [...types]) removed = this.#removeTyped(from, to, type) || removed;
    return removed;
  }

  /** Drops every edge into and out of `pageId`; returns whether any existed. */
  removePage(pageId: string): boolean {
    let removed = false;
    for (const [from, to] of this.#incidentPairs(pageId)) removed = this.removeEdge(from, to) || removed;
    return removed;
  }

  /** Moves every edge of `oldId` to `newId` (merging with edges `newId` already has). */
  renamePage(oldId: string, newId: string): boolean {
    if (oldId === newId) return false;
    const moved: [string, string, string][] = [];
    for (const [from, to] of this.#incidentPairs(oldId)) {
      for (const type of this.#out.get(from)?.get(to) ?? []) moved.push([from, to, type]);
    }
    if (moved.length === 0) return false;
    this.removePage(oldId);
    for (const [from, to, type] of moved) {
      this.addEdge(from === oldId ? newId : from, to === oldId ? newId : to, type === UNTYPED ? undefined : type);
    }
    return true;
  }

  /** Whether edge `from → to` exists; of `edgeType` if given, of any type otherwise. */
  hasEdge(from: string, to: string, edgeType?: string): boolean {
    const types = this.#out.get(from)?.get(to);
    if (types === undefined) return false;
    return edgeType === undefined ? types.size > 0 : types.has(edgeType);
  }

  /** Distinct direct successors of `pageId` along edges of the given types (any type when omitted), in insertion order. */
  neighbors(pageId: string, edgeTypes?: readonly string[]): string[] {
    const targets = this.#out.get(pageId);
    if (targets === undefined) return [];
    const filter = edgeTypes === undefined ? null : new Set(edgeTypes);
    const out: string[] = [];
    for (const [to, types] of targets) if (passes(types, filter)) out.push(to);
    return out;
  }

  /**
   * Whether `target` is at most `maxHops` directed edges (of `edgeTypes`, any type when omitted) away
   * from `root`. `root` reaches itself at 0 hops; a negative or NaN `maxHops` reaches nothing.
   * Passing the same `edgeTypes` array on repeated calls is cheapest: its normalised filter is
   * memoised by identity (and re-derived if the array's contents changed).
   */
  reachable(root: string, target: string, maxHops: number, edgeTypes?: readonly string[]): boolean {
    if (!(maxHops >= 0)) return false;
    if (root === target) return true;
    const hops = Math.floor(maxHops);
    if (hops === 0) return false;
    const filter = this.#filter(edgeTypes);
    let entry = filter.roots.get(root);
    if (entry === undefined) {
      // A root without outgoing edges reaches only itself; do not spend a cache entry on it.
      if (!this.#out.has(root)) return false;
      entry = { root, depth: hops, dist: new Map(), lastUsed: 0 };
      this.#bfs(entry, filter.types);
      this.#insertEntry(filter, entry);
    } else if (entry.depth < hops) {
      entry.depth = hops;
      this.#bfs(entry, filter.types);
    }
    entry.lastUsed = ++this.#tick;
    const d = entry.dist.get(target);
    return d !== undefined && d <= hops;
  }

  /** Removes every edge and cached answer. */
  clear(): void {
    this.#out.clear();
    this.#in.clear();
    this.#degree.clear();
    this.#edgeCount = 0;
    this.#version++;
    // Keep the filters themselves: #filterByArray still points callers' arrays at them.
    for (const filter of this.#allFilters()) filter.roots.clear();
    this.#cachedEntries = 0;
  }

  // -------------------------------------------------------------------------------------------

  #removeTyped(from: string, to: string, type: string): boolean {
    const targets = this.#out.get(from);
    const types = targets?.get(to);
    if (targets === undefined || types === undefined || !types.delete(type)) return false;
    if (types.size === 0) {
      targets.delete(to);
      if (targets.size === 0) this.#out.delete(from);
      const sources = this.#in.get(to);
      sources?.delete(from);
      if (sources !== undefined && sources.size === 0) this.#in.delete(to);
    }
    this.#edgeCount--;
    this.#version++;
    this.#bumpDegree(from, -1);
    this.#bumpDegree(to, -1);
    this.#invalidateCaches(from, to, type, types);
    return true;
  }

  /** Every (from, to) pair with `pageId` at either end, each once, collected before any mutation. */
  #incidentPairs(pageId: string): [string, string][] {
    const pairs: [string, string][] = [];
    for (const to of this.#out.get(pageId)?.keys() ?? []) pairs.push([pageId, to]);
    for (const from of this.#in.get(pageId) ?? []) if (from !== pageId) pairs.push([from, pageId]);
    return pairs;
  }

  #bumpDegree(pageId: string, delta: number): void {
    const next = (this.#degree.get(pageId) ?? 0) + delta;
    if (next === 0) this.#degree.delete(pageId);
    else this.#degree.set(pageId, next);
  }

  #filter(edgeTypes: readonly string[] | undefined): TypeFilter {
    if (edgeTypes === undefined) return this.#anyType;
    const memo = this.#filterByArray.get(edgeTypes);
    if (memo !== undefined && sameStrings(memo.seen, edgeTypes)) return memo.filter;
    const sorted = [...new Set(edgeTypes)].sort();
    const key = JSON.stringify(sorted);
    let filter = this.#filters.get(key);
    if (filter === undefined) {
      filter = { types: new Set(sorted), roots: new Map() };
      this.#filters.set(key, filter);
    }
    this.#filterByArray.set(edgeTypes, { filter, seen: [...edgeTypes] });
    return filter;
  }

  *#allFilters(): IterableIterator<TypeFilter> {
    yield this.#anyType;
    yield* this.#filters.values();
  }

  #insertEntry(filter: TypeFilter, entry: ReachEntry): void {
    if (this.#cachedEntries >= this.#reachCacheSize) this.#evictLeastRecentlyUsed();
    filter.roots.set(entry.root, entry);
    this.#cachedEntries++;
  }

  // Runs only when the cache is full and a new root is asked about, i.e. right before a BFS that
  // costs at least as much as this scan.
  #evictLeastRecentlyUsed(): void {
    let victim: { filter: TypeFilter; entry: ReachEntry } | undefined;
    for (const filter of this.#allFilters()) {
      for (const entry of filter.roots.values()) {
        if (victim === undefined || entry.lastUsed < victim.entry.lastUsed) victim = { filter, entry };
      }
    }
    if (victim !== undefined) {
      victim.filter.roots.delete(victim.entry.root);
      this.#cachedEntries--;
    }
  }

  #bfs(entry: ReachEntry, types: ReadonlySet<string> | null): void {
    const dist = new Map<string, number>([[entry.root, 0]]);
    const queue = [entry.root];
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head]!;
      const d = dist.get(node)!;
      if (d >= entry.depth) continue;
      const targets = this.#out.get(node);
      if (targets === undefined) continue;
      for (const [to, edgeTypes] of targets) {
        if (!dist.has(to) && passes(edgeTypes, types)) {
          dist.set(to, d + 1);
          queue.push(to);
        }
      }
    }
    entry.dist = dist;
  }

  /** A new edge can only shorten distances: propagate the improvement from `to` within each entry's depth. */
  #relaxCaches(from: string, to: string, type: string): void {
    if (this.#cachedEntries === 0) return;
    for (const filter of this.#allFilters()) {
      if (filter.types !== null && !filter.types.has(type)) continue;
      for (const entry of filter.roots.values()) {
        const du = entry.dist.get(from);
        if (du === undefined || du >= entry.depth) continue;
        const dv = entry.dist.get(to);
        if (dv !== undefined && dv <= du + 1) continue;
        entry.dist.set(to, du + 1);
        const queue = [to];
        for (let head = 0; head < queue.length; head++) {
          const node = queue[head]!;
          const d = entry.dist.get(node)!;
          if (d >= entry.depth) continue;
          for (const [next, edgeTypes] of this.#out.get(node) ?? []) {
            const old = entry.dist.get(next);
            if ((old === undefined || old > d + 1) && passes(edgeTypes, filter.types)) {
              entry.dist.set(next, d + 1);
              queue.push(next);
            }
          }
        }
      }
    }
  }

  /**
   * A removed edge changes distances only if it was tight (dist(to) = dist(from) + 1) and no other
   * edge between the same pages still passes the filter; such entries are dropped and recomputed on
   * their next use.
   */
  #invalidateCaches(from: string, to: string, type: string, remaining: ReadonlySet<string>): void {
    if (this.#cachedEntries === 0) return;
    for (const filter of this.#allFilters()) {
      if (filter.types !== null && !filter.types.has(type)) continue;
      if (passes(remaining, filter.types)) continue;
      for (const entry of [...filter.roots.values()]) {
        const du = entry.dist.get(from);
        if (du !== undefined && entry.dist.get(to) === du + 1) {
          filter.roots.delete(entry.root);
          this.#cachedEntries--;
        }
      }
    }
  }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function passes(edgeTypes: ReadonlySet<string>, filter: ReadonlySet<string> | null): boolean {
  if (filter === null) return edgeTypes.size > 0;
  for (const type of edgeTypes) if (filter.has(type)) return true;
  return false;
}
