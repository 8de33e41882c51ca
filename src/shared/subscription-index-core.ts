/**
 * The subscription index (DESIGN §2): finds the subscriptions an event may match without looking at
 * the ones it cannot.
 *
 * Each subscription is filed under exactly one key of its top-level predicate:
 *
 *   pageIdIn      → exact map   page id      → bucket   (one bucket per listed id)
 *   pageIdPrefix  → prefix set  page id      → bucket
 *   scopeId       → exact map   scope id     → bucket
 *   sourcePrefix  → prefix set  source id    → bucket
 *   dataType      → exact map   data type    → bucket   (one bucket per listed type)
 *   (none of them, or only anyOf / kinds / dates / edgeReach) → the unindexed list
 *
 * An event visits one bucket per exact map, the buckets of those stored prefixes that are prefixes of
 * its ids (found by binary search, never by scanning prefixes), and the unindexed list. A subscription
 * sits in one key's buckets and an event has one value per key, so no subscription is reached twice:
 * candidates are deduplicated by construction. Buckets are kept in insertion order and merged by
 * insertion sequence, so results are deterministic — the same adds and removes give the same order.
 *
 * This module does not validate predicates with zod: the convergence worker, which receives only
 * predicates the main thread validated, uses {@link SubscriptionIndexCore} as it is and so never
 * loads zod (~13 MB of RSS per thread). The public {@link SubscriptionIndex} (`subscription-index.ts`)
 * validates every predicate it is given.
 */
import { DuplicateIdError, SubscriptionRegistryFullError, ValidationError } from './errors.js';
import { PAGE_CHANGE_KINDS, type PageChangeEvent, type PageChangeKind } from './event-kinds.js';
import type { PageGraph } from './page-graph.js';
import { compilePredicate, MATCH_ALL, type CompiledPredicate, type PagePredicate } from './predicate-match.js';

/** Default most subscriptions one index holds (DESIGN §2). */
export const DEFAULT_SUBSCRIPTION_CAPACITY = 100_000;

/** What the index stores: the caller's own object, with its id and predicate and any payload `T`. */
export type IndexedSubscription<T = unknown> = T & { readonly id: string; readonly predicate: PagePredicate };

/** Options of {@link SubscriptionIndexCore} and {@link SubscriptionIndex}. */
export interface SubscriptionIndexOptions {
  /** Most subscriptions held at once; adding beyond it throws {@link SubscriptionRegistryFullError}. */
  capacity?: number;
}

/** Which key a subscription is filed under; exposed for diagnostics and tests. */
export type SubscriptionIndexKey =
  | { readonly kind: 'pageIdIn'; readonly values: readonly string[] }
  | { readonly kind: 'pageIdPrefix'; readonly value: string }
  | { readonly kind: 'scopeId'; readonly value: string }
  | { readonly kind: 'sourcePrefix'; readonly value: string }
  | { readonly kind: 'dataType'; readonly values: readonly string[] }
  | { readonly kind: 'unindexed' };

interface Rec<T> {
  readonly seq: number;
  readonly entry: IndexedSubscription<T>;
  /** Bit set of accepted kinds ({@link KIND_BITS}); every bit when the predicate has no `kinds`. */
  readonly kinds: number;
  /**
   * The rest of the predicate, compiled, or null when nothing is left: the field the bucket was
   * chosen by is already guaranteed by the lookup and `kinds` is tested inline, so most
   * subscriptions cost one AND per candidate instead of a call. Keeping the candidate loop to the
   * record itself matters: with 100 000 subscriptions the closures are scattered across the heap and
   * every pointer followed is a likely cache miss.
   */
  readonly test: CompiledPredicate | null;
  readonly key: SubscriptionIndexKey;
}

/** One bit per event kind; an unknown kind (an unvalidated event) gets a bit no `kinds` list contains. */
const KIND_BITS: ReadonlyMap<string, number> = new Map(PAGE_CHANGE_KINDS.map((kind, i) => [kind, 1 << i]));
const OTHER_KIND_BIT = 1 << PAGE_CHANGE_KINDS.length;

const bitOf = (kind: PageChangeKind): number => KIND_BITS.get(kind)!;
const ADDED_BIT = bitOf('page_added');
const REPLACED_BIT = bitOf('page_replaced');
const INVALIDATED_BIT = bitOf('page_invalidated');
const EDGE_ADDED_BIT = bitOf('page_graph_edge_added');
const EDGE_REMOVED_BIT = bitOf('page_graph_edge_removed');

/** {@link KIND_BITS} as a switch: a decoded kind string is compared, not hashed, per event. */
function kindBitOf(kind: string): number {
  switch (kind) {
    case 'page_added':
      return ADDED_BIT;
    case 'page_replaced':
      return REPLACED_BIT;
    case 'page_invalidated':
      return INVALIDATED_BIT;
    case 'page_graph_edge_added':
      return EDGE_ADDED_BIT;
    case 'page_graph_edge_removed':
      return EDGE_REMOVED_BIT;
    default:
      return OTHER_KIND_BIT;
  }
}
const ALL_KINDS = -1;

type Bucket<T> = Rec<T>[];

/**
 * Relative cost of one visit to a bucket of each kind, i.e. how broad a slice of the event stream
 * visits it: a page id bucket is visited by one page's events, a data type bucket by a whole class of
 * pages. Used with the bucket's current size to pick the cheapest key at `add` time.
 */
const VISIT_WEIGHT = { pageIdIn: 1, pageIdPrefix: 8, scopeId: 8, sourcePrefix: 16, dataType: 16 } as const;

/**
 * Holds subscriptions and answers which of them match an event. Matching costs one lookup per index,
 * a binary search per stored prefix that is a prefix of the event's ids, and per candidate — not per
 * subscription — one bit test for `kinds` plus, when anything else is left, one compiled-predicate call.
 *
 * Key choice: of the keys a subscription's predicate offers, the one whose bucket would cost least —
 * (current bucket size + 1) × the kind's visit weight, ties to the more selective kind. This keeps a
 * mix such as "10 000 subscriptions on one source prefix, each on its own data type" out of one
 * giant bucket. The choice depends only on the sequence of adds and removes, so it is deterministic.
 */
export class SubscriptionIndexCore<T = unknown> {
  readonly #capacity: number;
  readonly #byId = new Map<string, Rec<T>>();
  readonly #pageIds = new Map<string, Bucket<T>>();
  readonly #scopeIds = new Map<string, Bucket<T>>();
  readonly #dataTypes = new Map<string, Bucket<T>>();
  readonly #pageIdPrefixes = new PrefixBuckets<Rec<T>>();
  readonly #sourcePrefixes = new PrefixBuckets<Rec<T>>();
  readonly #unindexed: Bucket<T> = [];
  // Scratch state of #collect, reused so that matching an event allocates little beyond its result.
  // Only their first entries (counted by #collect) are meaningful: they are never truncated, since
  // setting an array's length to 0 frees its backing store and the next write allocates again.
  /** Prefix buckets found for the event being matched. */
  readonly #prefixBuckets: Bucket<T>[] = [];
  /** Where each run of hits (one per bucket that contributed) starts. */
  readonly #runStarts: number[] = [];
  #seq = 0;

  constructor(options: SubscriptionIndexOptions = {}) {
    const capacity = options.capacity ?? DEFAULT_SUBSCRIPTION_CAPACITY;
    if (typeof capacity !== 'number' || !Number.isInteger(capacity) || capacity < 1) {
      throw new ValidationError('capacity', `must be an integer >= 1, got ${String(capacity)}`);
    }
    this.#capacity = capacity;
  }

  /** Most subscriptions this index accepts. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Number of subscriptions held. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * Adds a subscription. Its predicate is checked by {@link checkPredicate} (the public index
   * validates it: a {@link ValidationError} names the field, e.g. `predicate.edgeReach.root`) and
   * compiled once; the entry object itself is stored and returned
   * by `get` and `match` as is. Nothing changes when it throws.
   */
  add(entry: IndexedSubscription<T>): void {
    if (typeof entry !== 'object' || entry === null) throw new ValidationError('entry', 'must be an object with id and predicate');
    const id: unknown = entry.id;
    if (typeof id !== 'string' || id.length === 0) throw new ValidationError('id', 'must be a non-empty string');
    const predicate = this.checkPredicate(entry.predicate);
    if (this.#byId.has(id)) throw new DuplicateIdError('subscription', id);
    if (this.#byId.size >= this.#capacity) throw new SubscriptionRegistryFullError(this.#capacity);
    const key = this.#chooseKey(predicate);
    const { kinds, ...rest } = withoutKeyField(predicate, key);
    let kindMask = ALL_KINDS;
    if (kinds !== undefined) {
      kindMask = 0;
      for (const kind of kinds) kindMask |= KIND_BITS.get(kind)!;
    }
    const test = compilePredicate(rest);
    const rec: Rec<T> = { seq: this.#seq++, entry, kinds: kindMask, test: test === MATCH_ALL ? null : test, key };
    this.#byId.set(id, rec);
    this.#file(rec);
  }

  /**
   * The predicate to file: here only an object check, since the convergence worker receives
   * predicates the main thread validated; {@link SubscriptionIndex} validates it in full.
   */
  protected checkPredicate(value: unknown): PagePredicate {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError('predicate', 'must be an object');
    return value as PagePredicate;
  }

  /** Removes a subscription; false when the id is unknown. */
  remove(id: string): boolean {
    const rec = this.#byId.get(id);
    if (rec === undefined) return false;
    this.#byId.delete(id);
    const key = rec.key;
    switch (key.kind) {
      case 'pageIdIn':
        for (const value of key.values) removeFromMap(this.#pageIds, value, rec);
        break;
      case 'dataType':
        for (const value of key.values) removeFromMap(this.#dataTypes, value, rec);
        break;
      case 'scopeId':
        removeFromMap(this.#scopeIds, key.value, rec);
        break;
      case 'pageIdPrefix':
        this.#pageIdPrefixes.remove(key.value, rec);
        break;
      case 'sourcePrefix':
        this.#sourcePrefixes.remove(key.value, rec);
        break;
      case 'unindexed':
        removeFromBucket(this.#unindexed, rec);
        break;
    }
    return true;
  }

  /** The stored entry, or undefined. */
  get(id: string): IndexedSubscription<T> | undefined {
    return this.#byId.get(id)?.entry;
  }

  /** Whether a subscription with this id is held. */
  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /** The key a subscription was filed under (diagnostics: why is this subscription a candidate?). */
  keyOf(id: string): SubscriptionIndexKey | undefined {
    return this.#byId.get(id)?.key;
  }

  /** Every entry, in insertion order. */
  *entries(): IterableIterator<IndexedSubscription<T>> {
    for (const rec of this.#byId.values()) yield rec.entry;
  }

  /**
   * Entries that may match `event`: a superset of {@link match}'s answer, each entry once, in
   * insertion order. Entries filed under a key the event cannot satisfy are never included.
   */
  candidatesFor(event: PageChangeEvent): IndexedSubscription<T>[] {
    return this.#collect(event, undefined, false);
  }

  /**
   * Entries whose predicate matches `event` (edgeReach is resolved against `graph`; without one an
   * edgeReach predicate does not match), in insertion order.
   */
  match(event: PageChangeEvent, graph?: PageGraph): IndexedSubscription<T>[] {
    return this.#collect(event, graph, true);
  }

  /** Removes every entry. */
  clear(): void {
    for (const id of [...this.#byId.keys()]) this.remove(id);
  }

  // -------------------------------------------------------------------------------------------

  #collect(event: PageChangeEvent, graph: PageGraph | undefined, filter: boolean): IndexedSubscription<T>[] {
    // A fresh array: truncating a reused one to length 0 frees its backing store, so the next push
    // allocates anyway (measured slower than a fresh []).
    let hits: Rec<T>[] = [];
    const runs = this.#runStarts;
    let nRuns = 0;
    const kindBit = filter ? kindBitOf(event.kind) : ALL_KINDS;
    const g = filter ? graph : undefined;
    // An empty map is not asked: hashing the event's (often freshly decoded) string is the cost.
    if (this.#pageIds.size > 0) nRuns = scanInto(hits, runs, nRuns, this.#pageIds.get(event.pageId), event, g, kindBit, filter);
    if (event.dataType !== undefined && this.#dataTypes.size > 0) nRuns = scanInto(hits, runs, nRuns, this.#dataTypes.get(event.dataType), event, g, kindBit, filter);
    if (event.scopeId !== undefined && this.#scopeIds.size > 0) nRuns = scanInto(hits, runs, nRuns, this.#scopeIds.get(event.scopeId), event, g, kindBit, filter);
    const buckets = this.#prefixBuckets;
    let nBuckets = this.#pageIdPrefixes.collect(event.pageId, buckets, 0);
    nBuckets = this.#sourcePrefixes.collect(event.sourceId, buckets, nBuckets);
    for (let i = 0; i < nBuckets; i++) nRuns = scanInto(hits, runs, nRuns, buckets[i], event, g, kindBit, filter);
    if (this.#unindexed.length > 0) nRuns = scanInto(hits, runs, nRuns, this.#unindexed, event, g, kindBit, filter);
    const n = hits.length;
    if (n === 0) return [];
    if (n === 1) return [hits[0]!.entry];
    if (nRuns > 1) hits = mergeRuns(hits, runs, nRuns);
    const out = new Array<IndexedSubscription<T>>(n);
    for (let i = 0; i < n; i++) out[i] = hits[i]!.entry;
    return out;
  }

  #chooseKey(p: PagePredicate): SubscriptionIndexKey {
    let best: SubscriptionIndexKey = { kind: 'unindexed' };
    let bestCost = Number.POSITIVE_INFINITY;
    const consider = (key: SubscriptionIndexKey, size: number): void => {
      const cost = (size + 1) * VISIT_WEIGHT[key.kind as keyof typeof VISIT_WEIGHT];
      if (cost < bestCost) {
        best = key;
        bestCost = cost;
      }
    };
    // Considered from most to least selective, so that ties keep the more selective key.
    if (p.pageIdIn !== undefined) {
      const values = [...new Set(p.pageIdIn)];
      consider({ kind: 'pageIdIn', values }, maxBucketSize(this.#pageIds, values));
    }
    if (p.pageIdPrefix !== undefined && p.pageIdPrefix !== '') {
      consider({ kind: 'pageIdPrefix', value: p.pageIdPrefix }, this.#pageIdPrefixes.size(p.pageIdPrefix));
    }
    if (p.scopeId !== undefined) consider({ kind: 'scopeId', value: p.scopeId }, this.#scopeIds.get(p.scopeId)?.length ?? 0);
    if (p.sourcePrefix !== undefined && p.sourcePrefix !== '') {
      consider({ kind: 'sourcePrefix', value: p.sourcePrefix }, this.#sourcePrefixes.size(p.sourcePrefix));
    }
    if (p.dataType !== undefined) {
      const values = typeof p.dataType === 'string' ? [p.dataType] : [...new Set(p.dataType)];
      consider({ kind: 'dataType', values }, maxBucketSize(this.#dataTypes, values));
    }
    return best;
  }

  #file(rec: Rec<T>): void {
    const key = rec.key;
    switch (key.kind) {
      case 'pageIdIn':
        for (const value of key.values) addToMap(this.#pageIds, value, rec);
        break;
      case 'dataType':
        for (const value of key.values) addToMap(this.#dataTypes, value, rec);
        break;
      case 'scopeId':
        addToMap(this.#scopeIds, key.value, rec);
        break;
      case 'pageIdPrefix':
        this.#pageIdPrefixes.add(key.value, rec);
        break;
      case 'sourcePrefix':
        this.#sourcePrefixes.add(key.value, rec);
        break;
      case 'unindexed':
        this.#unindexed.push(rec);
        break;
    }
  }
}

/**
 * Appends the bucket's records that pass (all of them when `filter` is false) to `hits`, and notes
 * where that run starts in `runs[nRuns]` when it appended any; returns the new number of runs. A
 * plain function rather than a closure in `#collect`, so that matching an event allocates nothing
 * per bucket.
 */
function scanInto<T>(
  hits: Rec<T>[],
  runs: number[],
  nRuns: number,
  bucket: Bucket<T> | undefined,
  event: PageChangeEvent,
  graph: PageGraph | undefined,
  kindBit: number,
  filter: boolean,
): number {
  if (bucket === undefined) return nRuns;
  const start = hits.length;
  if (filter) {
    for (let i = 0; i < bucket.length; i++) {
      const rec = bucket[i]!;
      if ((rec.kinds & kindBit) !== 0 && (rec.test === null || rec.test(event, graph))) hits.push(rec);
    }
  } else {
    for (let i = 0; i < bucket.length; i++) hits.push(bucket[i]!);
  }
  if (hits.length === start) return nRuns;
  runs[nRuns] = start;
  return nRuns + 1;
}

/** Below this many hits an insertion sort beats merging (and both beat Array#sort's comparator calls). */
const INSERTION_SORT_MAX = 32;

/**
 * Puts hits in seq order. Each run is already sorted (buckets are kept in insertion order), so this
 * merges runs pairwise — O(n log runs) — rather than sorting from scratch; `Array#sort` with a
 * comparator cost more than the whole lookup for a typical handful of hits.
 */
function mergeRuns<T>(hits: Rec<T>[], runStarts: readonly number[], nRuns: number): Rec<T>[] {
  const n = hits.length;
  if (n <= INSERTION_SORT_MAX) {
    for (let i = 1; i < n; i++) {
      const rec = hits[i]!;
      let j = i - 1;
      while (j >= 0 && hits[j]!.seq > rec.seq) {
        hits[j + 1] = hits[j]!;
        j--;
      }
      hits[j + 1] = rec;
    }
    return hits;
  }
  let bounds = runStarts.slice(0, nRuns);
  bounds.push(n);
  let src = hits;
  let dst = new Array<Rec<T>>(n);
  while (bounds.length > 2) {
    const next: number[] = [];
    for (let r = 0; r + 1 < bounds.length; r += 2) {
      const lo = bounds[r]!;
      const mid = bounds[r + 1]!;
      const hi = r + 2 < bounds.length ? bounds[r + 2]! : mid;
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) dst[k++] = src[i]!.seq < src[j]!.seq ? src[i++]! : src[j++]!;
      while (i < mid) dst[k++] = src[i++]!;
      while (j < hi) dst[k++] = src[j++]!;
      next.push(lo);
    }
    next.push(n);
    bounds = next;
    [src, dst] = [dst, src];
  }
  return src;
}

/** The predicate minus the field its bucket lookup already guarantees (see {@link Rec.test}). */
function withoutKeyField(p: PagePredicate, key: SubscriptionIndexKey): PagePredicate {
  switch (key.kind) {
    case 'pageIdIn': {
      const { pageIdIn: _, ...rest } = p;
      return rest;
    }
    case 'pageIdPrefix': {
      const { pageIdPrefix: _, ...rest } = p;
      return rest;
    }
    case 'scopeId': {
      const { scopeId: _, ...rest } = p;
      return rest;
    }
    case 'sourcePrefix': {
      const { sourcePrefix: _, ...rest } = p;
      return rest;
    }
    case 'dataType': {
      const { dataType: _, ...rest } = p;
      return rest;
    }
    case 'unindexed':
      return p;
  }
}

function maxBucketSize(map: Map<string, unknown[]>, values: readonly string[]): number {
  let max = 0;
  for (const value of values) max = Math.max(max, map.get(value)?.length ?? 0);
  return max;
}

function addToMap<R>(map: Map<string, R[]>, value: string, rec: R): void {
  const bucket = map.get(value);
  if (bucket === undefined) map.set(value, [rec]);
  else bucket.push(rec);
}

function removeFromMap<R extends { seq: number }>(map: Map<string, R[]>, value: string, rec: R): void {
  const bucket = map.get(value);
  if (bucket === undefined) return;
  removeFromBucket(bucket, rec);
  if (bucket.length === 0) map.delete(value);
}

/** Buckets are sorted by seq (records are appended in seq order), so the record is found by binary search. */
function removeFromBucket<R extends { seq: number }>(bucket: R[], rec: R): void {
  let lo = 0;
  let hi = bucket.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const seq = bucket[mid]!.seq;
    if (seq === rec.seq) {
      bucket.splice(mid, 1);
      return;
    }
    if (seq < rec.seq) lo = mid + 1;
    else hi = mid - 1;
  }
}

/**
 * Buckets keyed by prefix, with a sorted array of the prefixes so that the stored prefixes of a
 * string are found by binary search instead of by testing every prefix.
 *
 * Finding them: let p be the greatest stored prefix <= t (t starts as the whole string s). If p is a
 * prefix of t it matches, and any other match is shorter than p (a longer one would be > p and <= t);
 * continue with t = p minus its last character. Otherwise p and t differ at some position c, every
 * remaining match is a prefix of s[0, c) (a longer one would sort between p and t), so continue with
 * t = s[0, c). t shrinks every round, and every round is one binary search.
 *
 * The array is maintained lazily so that adding 100 000 subscriptions is not quadratic: new prefixes
 * wait in `#pending` and are merged in (few) or re-sorted (many) at the next lookup; removed prefixes
 * stay in the array as harmless stale entries (their bucket lookup misses) until they are the majority.
 */
/**
 * Most distinct prefix lengths for which `collect` probes each length with one hash lookup instead of
 * binary searches. Real prefix sets (sources like `file:/repo-N/`, `git:<url>`) come in a handful
 * of lengths, where a few hash lookups beat walking the sorted array one mismatch at a time (which
 * measured ~1 µs per event at 300 prefixes); many lengths fall back to the sorted walk.
 */
const MAX_PROBED_LENGTHS = 12;

/** A stored prefix in {@link PrefixBuckets}' hash table; prefixes in the same slot are chained. */
interface PrefixEntry<R> {
  readonly prefix: string;
  readonly hash: number;
  readonly bucket: R[];
  next: PrefixEntry<R> | undefined;
}

// FNV-1a over UTF-16 code units.
const HASH_SEED = 0x811c9dc5 | 0;
const HASH_PRIME = 0x01000193;

function prefixHash(prefix: string): number {
  let h = HASH_SEED;
  for (let c = 0; c < prefix.length; c++) h = Math.imul(h ^ prefix.charCodeAt(c), HASH_PRIME);
  return h;
}

class PrefixBuckets<R extends { seq: number }> {
  readonly #buckets = new Map<string, R[]>();
  /**
   * Every stored prefix by {@link prefixHash}, for `collect`'s probe by length: a chained table in a
   * plain array of a power-of-two size, at most half full, so that a probe is an array read (a Map
   * keyed by the hash cost twice as much).
   */
  #table: (PrefixEntry<R> | undefined)[] = new Array<PrefixEntry<R> | undefined>(16).fill(undefined);
  #sorted: string[] = [];
  #pending: string[] = [];
  #stale = 0;
  /** How many stored prefixes have each length. */
  readonly #lengthCounts = new Map<number, number>();
  /** The distinct lengths, ascending; rebuilt lazily. */
  #lengths: number[] | undefined = [];

  size(prefix: string): number {
    return this.#buckets.get(prefix)?.length ?? 0;
  }

  add(prefix: string, rec: R): void {
    const bucket = this.#buckets.get(prefix);
    if (bucket !== undefined) {
      bucket.push(rec);
      return;
    }
    const created = [rec];
    this.#buckets.set(prefix, created);
    this.#hash({ prefix, hash: prefixHash(prefix), bucket: created, next: undefined });
    this.#countLength(prefix.length, 1);
    const i = greatestAtMost(this.#sorted, prefix);
    if (i >= 0 && this.#sorted[i] === prefix) this.#stale--; // a stale entry came back to life
    else this.#pending.push(prefix);
  }

  remove(prefix: string, rec: R): void {
    const bucket = this.#buckets.get(prefix);
    if (bucket === undefined) return;
    removeFromBucket(bucket, rec);
    if (bucket.length > 0) return;
    this.#buckets.delete(prefix);
    this.#unhash(prefix);
    this.#countLength(prefix.length, -1);
    const pendingAt = this.#pending.indexOf(prefix);
    if (pendingAt >= 0) this.#pending.splice(pendingAt, 1);
    else this.#stale++;
  }

  #hash(entry: PrefixEntry<R>): void {
    let table = this.#table;
    if (this.#buckets.size * 2 > table.length) {
      // Grow: re-chain every entry into a table twice the size.
      const old = table;
      table = this.#table = new Array<PrefixEntry<R> | undefined>(old.length * 2).fill(undefined);
      for (let i = 0; i < old.length; i++) {
        for (let e = old[i]; e !== undefined; ) {
          const next = e.next;
          const slot = e.hash & (table.length - 1);
          e.next = table[slot];
          table[slot] = e;
          e = next;
        }
      }
    }
    const slot = entry.hash & (table.length - 1);
    entry.next = table[slot];
    table[slot] = entry;
  }

  #unhash(prefix: string): void {
    const table = this.#table;
    const slot = prefixHash(prefix) & (table.length - 1);
    let prev: PrefixEntry<R> | undefined;
    for (let e = table[slot]; e !== undefined; prev = e, e = e.next) {
      if (e.prefix !== prefix) continue;
      if (prev !== undefined) prev.next = e.next;
      else table[slot] = e.next;
      return;
    }
  }

  #countLength(length: number, delta: number): void {
    const count = (this.#lengthCounts.get(length) ?? 0) + delta;
    if (count === 0) this.#lengthCounts.delete(length);
    else this.#lengthCounts.set(length, count);
    if (count === 0 || count === delta) this.#lengths = undefined; // a length appeared or vanished
  }

  /** Writes the bucket of every stored prefix of `s` to `out` from index `n` on; returns the new count. */
  collect(s: string, out: R[][], n: number): number {
    if (this.#buckets.size === 0) return n;
    const lengths = (this.#lengths ??= [...this.#lengthCounts.keys()].sort((a, b) => a - b));
    if (lengths.length <= MAX_PROBED_LENGTHS) {
      // One pass over `s`, hashing as it goes; at each stored length, one integer-keyed lookup.
      // No substring is built: slicing and hashing a fresh string per length cost more than the
      // rest of `match` together (measured: ~1.5 µs per event at 10 k subscriptions).
      const table = this.#table;
      const mask = table.length - 1;
      let h = HASH_SEED;
      let c = 0;
      for (let li = 0; li < lengths.length; li++) {
        const length = lengths[li]!;
        if (length > s.length) break;
        for (; c < length; c++) h = Math.imul(h ^ s.charCodeAt(c), HASH_PRIME);
        for (let e = table[h & mask]; e !== undefined; e = e.next) {
          if (e.hash === h && e.prefix.length === length && s.startsWith(e.prefix)) {
            out[n++] = e.bucket;
            break;
          }
        }
      }
      return n;
    }
    this.#settle();
    const sorted = this.#sorted;
    let limit = s.length;
    while (true) {
      const t = limit === s.length ? s : s.slice(0, limit);
      const i = greatestAtMost(sorted, t);
      if (i < 0) return n;
      const p = sorted[i]!;
      if (t.startsWith(p)) {
        const bucket = this.#buckets.get(p);
        if (bucket !== undefined) out[n++] = bucket;
        if (p.length === 0) return n;
        limit = p.length - 1;
      } else {
        let c = 0;
        while (c < limit && c < p.length && p.charCodeAt(c) === s.charCodeAt(c)) c++;
        limit = c;
      }
    }
  }

  #settle(): void {
    const pending = this.#pending;
    if (pending.length === 0 && this.#stale * 2 <= this.#sorted.length + 64) return;
    if (pending.length > 32 || this.#stale * 2 > this.#sorted.length + 64) {
      this.#sorted = [...this.#buckets.keys()].sort(compareStrings);
      this.#stale = 0;
    } else {
      for (const prefix of pending) this.#sorted.splice(greatestAtMost(this.#sorted, prefix) + 1, 0, prefix);
    }
    this.#pending = [];
  }
}

/** Code-unit order, the same order `<` and `startsWith` use (not `localeCompare`). */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the greatest element <= `t`, or -1. */
function greatestAtMost(sorted: readonly string[], t: string): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= t) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}
