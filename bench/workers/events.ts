/**
 * Realistic page-change events for the benchmarks: what a watcher over a large monorepo emits
 * during a storm (a branch switch, a formatter run). ~150–200 bytes each as a msgpack map.
 * Deterministic, so every thread can build the same pool and the totals can be checked.
 */
import type { PageChangeEvent } from '../../src/shared/events.js';

const DATA_TYPES = ['design_monorepo_file', 'design_monorepo_file', 'design_monorepo_file', 'design_doc', 'test_report'];
const EXTENSIONS = ['ts', 'tsx', 'md', 'json', 'css'];
const BASE_TS = 1_795_312_028_434;

/** The `i`-th event of the deterministic stream: 70 % replaced/added, the rest invalidations and edges. */
export function makeEvent(i: number): PageChangeEvent {
  const pkg = `packages/pkg-${i % 37}`;
  const path = `${pkg}/src/module-${i % 211}/file-${i}.${EXTENSIONS[i % EXTENSIONS.length]!}`;
  const pageId = `file:${path}`;
  const sourceId = 'file:/work/monorepo';
  const dataType = DATA_TYPES[i % DATA_TYPES.length]!;
  const ts = BASE_TS + i;
  switch (i % 10) {
    case 0:
    case 1:
    case 2:
    case 3:
      return { kind: 'page_replaced', pageId, sourceId, dataType, related: [`${pageId}@${(i * 2654435761) >>> 0}`], extra: { value: (i % 1000) / 8, relativePath: path }, ts };
    case 4:
    case 5:
    case 6:
      return { kind: 'page_added', pageId, sourceId, dataType, extra: { value: i % 97, relativePath: path }, ts };
    case 7:
    case 8:
      return { kind: 'page_invalidated', pageId, sourceId, dataType, reason: 'content changed on disk', extra: { relativePath: path }, ts };
    default:
      return { kind: 'page_graph_edge_added', pageId, sourceId, related: [`file:${pkg}/src/index.ts`], edgeType: 'imports', ts };
  }
}

/**
 * `count` consecutive events starting at `start`, with flat strings, as a parser, a database driver
 * or a native watcher hands them over. (Built by template literals they would be ropes, and whichever
 * transport reads one first — our encoder or postMessage's serializer — pays to flatten it; a
 * benchmark that cycles through a pool would pay that once per pass for some transports and once in
 * all for others.)
 */
export function makeEvents(count: number, start = 0): PageChangeEvent[] {
  const events = new Array<PageChangeEvent>(count);
  for (let i = 0; i < count; i++) events[i] = makeEvent(start + i);
  return JSON.parse(JSON.stringify(events)) as PageChangeEvent[];
}

/** Events per frame (and per batched postMessage): the batch the engine writes per drain. */
export const BATCH = 256;
/** Distinct events each producer cycles through (enough that the strings are not all cached). */
export const POOL = 16_384;

/**
 * The check value a consumer computes over what it received: the sum of pageId lengths. Reading
 * a decoded string's length forces the decode to have really happened.
 */
export function checksumOf(events: readonly PageChangeEvent[]): number {
  let sum = 0;
  for (let i = 0; i < events.length; i++) sum += events[i]!.pageId.length;
  return sum;
}

/** What a producer that sends `total` events cycling from `offset` through the pool sends, summed. */
export function expectedChecksum(total: number, offset: number): number {
  const pool = makeEvents(POOL);
  let sum = 0;
  for (let i = 0; i < total; i++) sum += pool[(offset + i) % POOL]!.pageId.length;
  return sum;
}
