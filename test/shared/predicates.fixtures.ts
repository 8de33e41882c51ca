/**
 * fast-check arbitraries shared by the predicate and subscription-index property tests. Values come
 * from small alphabets on purpose, so that random predicates and events actually match each other
 * (and share prefixes) often enough for the properties to bite.
 */
import fc from 'fast-check';
import { PAGE_CHANGE_KINDS, type PageChangeEvent } from '../../src/shared/events.js';
import { PageGraph } from '../../src/shared/page-graph.js';
import type { PagePredicate } from '../../src/shared/predicates.js';

export const PAGE_IDS = ['a', 'b', 'c', 'ab', 'abc', 'b/x', 'b/y'] as const;
export const SOURCE_IDS = ['file:/r', 'file:/r/x', 'file:/q', 'git:u@1', 'manual', 'f'] as const;
export const SOURCE_PREFIXES = ['', 'f', 'fi', 'file:', 'file:/r', 'file:/r/', 'file:/q', 'g', 'git:', 'm', 'manual', 'x'] as const;
export const PAGE_PREFIXES = ['', 'a', 'ab', 'abc', 'b', 'b/', 'b/x', 'c', 'x'] as const;
export const DATA_TYPES = ['d1', 'd2', 'd3'] as const;
export const SCOPES = ['s1', 's2'] as const;
export const EDGE_TYPES = ['t1', 't2'] as const;

const epoch = fc.integer({ min: 0, max: 10 });
const bound = fc.oneof(epoch, epoch.map((ms) => new Date(ms).toISOString()));

function subset<T>(items: readonly T[]) {
  return fc.subarray([...items], { minLength: 1 });
}

const fields = {
  dataType: fc.oneof(fc.constantFrom(...DATA_TYPES), subset(DATA_TYPES)),
  sourcePrefix: fc.constantFrom(...SOURCE_PREFIXES),
  scopeId: fc.constantFrom(...SCOPES),
  pageIdIn: subset(PAGE_IDS),
  pageIdPrefix: fc.constantFrom(...PAGE_PREFIXES),
  kinds: subset(PAGE_CHANGE_KINDS),
  effectiveAfter: bound,
  effectiveBefore: bound,
  edgeReach: fc.oneof(
    fc.record({ root: fc.constantFrom(...PAGE_IDS), maxHops: fc.integer({ min: 1, max: 3 }), edgeTypes: subset(EDGE_TYPES) }, { requiredKeys: ['root', 'maxHops'] }),
    fc.record({ maxHops: fc.integer({ min: -2, max: 0 }) }),
  ),
};
type Field = keyof typeof fields;

/**
 * At most three fields per predicate: with every field present half the time, a random predicate
 * would almost never match a random event, and "equals the linear scan" would mostly compare [] to [].
 */
const leaf: fc.Arbitrary<PagePredicate> = fc
  .uniqueArray(fc.constantFrom(...(Object.keys(fields) as Field[])), { maxLength: 3 })
  .chain((keys) => fc.record(Object.fromEntries(keys.map((k) => [k, fields[k]])) as { [K in Field]: (typeof fields)[K] }))
  .map((generated) => {
    const p = generated as PagePredicate;
    // Keep generated ranges non-empty: an inverted range is a ValidationError, tested on its own.
    if (p.effectiveAfter !== undefined && p.effectiveBefore !== undefined) {
      const after = typeof p.effectiveAfter === 'number' ? p.effectiveAfter : Date.parse(p.effectiveAfter);
      const before = typeof p.effectiveBefore === 'number' ? p.effectiveBefore : Date.parse(p.effectiveBefore);
      if (before < after) return { ...p, effectiveAfter: p.effectiveBefore, effectiveBefore: p.effectiveAfter };
    }
    return p;
  });

/** Valid predicates, nested through `anyOf` up to two levels. */
export const predicateArb: fc.Arbitrary<PagePredicate> = fc.letrec<{ p: PagePredicate }>((tie) => ({
  p: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.tuple(leaf, fc.array(tie('p'), { minLength: 1, maxLength: 3 })).map(([base, anyOf]) => ({ ...base, anyOf })),
  ),
})).p;

/** Events over the same alphabets, with dated, undated and badly dated `effectiveAt`. */
export const eventArb: fc.Arbitrary<PageChangeEvent> = fc
  .record(
    {
      kind: fc.constantFrom(...PAGE_CHANGE_KINDS),
      pageId: fc.constantFrom(...PAGE_IDS),
      sourceId: fc.constantFrom(...SOURCE_IDS),
      dataType: fc.constantFrom(...DATA_TYPES),
      scopeId: fc.constantFrom(...SCOPES),
      effectiveAt: fc.oneof(epoch, epoch.map((ms) => new Date(ms).toISOString()), fc.constant('not a date'), fc.constant(Number.NaN)),
    },
    { requiredKeys: ['kind', 'pageId', 'sourceId'] },
  )
  .map(({ effectiveAt, ...rest }) => {
    const event: PageChangeEvent = { ...rest };
    if (effectiveAt !== undefined) event.extra = { effectiveAt };
    return event;
  });

/** Edges for a random page graph: [from, to, edgeType | undefined]. */
export const edgesArb = fc.array(
  fc.tuple(fc.constantFrom(...PAGE_IDS), fc.constantFrom(...PAGE_IDS), fc.option(fc.constantFrom(...EDGE_TYPES), { nil: undefined })),
  { maxLength: 12 },
);

export function graphOf(edges: readonly (readonly [string, string, string | undefined])[]): PageGraph {
  const graph = new PageGraph();
  for (const [from, to, type] of edges) graph.addEdge(from, to, type);
  return graph;
}
