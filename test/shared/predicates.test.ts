import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/shared/errors.js';
import { PAGE_CHANGE_KINDS, type PageChangeEvent } from '../../src/shared/events.js';
import { PageGraph } from '../../src/shared/page-graph.js';
import {
  compilePredicate,
  matchesPredicate,
  validatePredicate,
  validateTolerance,
  type PagePredicate,
} from '../../src/shared/predicates.js';
import { edgesArb, eventArb, graphOf, predicateArb } from './predicates.fixtures.js';

const base: PageChangeEvent = { kind: 'page_added', pageId: 'file:docs/a.md', sourceId: 'file:/repo', dataType: 'doc', scopeId: 's1' };

function ev(over: Partial<PageChangeEvent> = {}): PageChangeEvent {
  return { ...base, ...over };
}

/** Evaluates with both the reference and the compiled evaluator and insists they agree. */
function matches(predicate: PagePredicate, event: PageChangeEvent, graph?: PageGraph): boolean {
  const reference = matchesPredicate(predicate, event, graph);
  expect(compilePredicate(validatePredicate(predicate))(event, graph)).toBe(reference);
  return reference;
}

function validationField(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('CONVERGE_VALIDATION');
    return (error as ValidationError).field;
  }
  throw new Error('expected a ValidationError');
}

describe('matchesPredicate', () => {
  it('the empty predicate matches every kind of event', () => {
    for (const kind of PAGE_CHANGE_KINDS) {
      expect(matches({}, { kind, pageId: 'p', sourceId: 'x', related: ['q'] })).toBe(true);
    }
  });

  it('dataType: exact string, any of an array; an event without a dataType never matches', () => {
    expect(matches({ dataType: 'doc' }, ev())).toBe(true);
    expect(matches({ dataType: 'img' }, ev())).toBe(false);
    expect(matches({ dataType: ['img', 'doc'] }, ev())).toBe(true);
    expect(matches({ dataType: ['img', 'bin'] }, ev())).toBe(false);
    expect(matches({ dataType: 'doc' }, ev({ dataType: undefined }))).toBe(false);
    expect(matches({ dataType: ['doc'] }, ev({ dataType: undefined }))).toBe(false);
  });

  it('sourcePrefix and pageIdPrefix are prefixes, not substrings', () => {
    expect(matches({ sourcePrefix: 'file:' }, ev())).toBe(true);
    expect(matches({ sourcePrefix: 'file:/repo' }, ev())).toBe(true);
    expect(matches({ sourcePrefix: '/repo' }, ev())).toBe(false);
    expect(matches({ sourcePrefix: 'file:/repo/' }, ev())).toBe(false);
    expect(matches({ pageIdPrefix: 'file:docs/' }, ev())).toBe(true);
    expect(matches({ pageIdPrefix: 'docs/' }, ev())).toBe(false);
  });

  it('scopeId is exact; an event without a scope never matches a scoped predicate', () => {
    expect(matches({ scopeId: 's1' }, ev())).toBe(true);
    expect(matches({ scopeId: 's2' }, ev())).toBe(false);
    expect(matches({ scopeId: 's1' }, ev({ scopeId: undefined }))).toBe(false);
  });

  it('pageIdIn and kinds are membership tests', () => {
    expect(matches({ pageIdIn: ['x', 'file:docs/a.md'] }, ev())).toBe(true);
    expect(matches({ pageIdIn: ['x', 'file:docs/b.md'] }, ev())).toBe(false);
    expect(matches({ kinds: ['page_added', 'page_replaced'] }, ev())).toBe(true);
    expect(matches({ kinds: ['page_invalidated'] }, ev())).toBe(false);
  });

  it('every set field must hold', () => {
    expect(matches({ dataType: 'doc', scopeId: 's1', kinds: ['page_added'] }, ev())).toBe(true);
    expect(matches({ dataType: 'doc', scopeId: 's2', kinds: ['page_added'] }, ev())).toBe(false);
    expect(matches({ dataType: 'doc', scopeId: 's1', kinds: ['page_replaced'] }, ev())).toBe(false);
  });

  describe('effectiveAfter / effectiveBefore', () => {
    const at = Date.UTC(2024, 0, 15);
    const iso = new Date(at).toISOString();

    it('are inclusive on both ends', () => {
      expect(matches({ effectiveAfter: at, effectiveBefore: at }, ev({ extra: { effectiveAt: at } }))).toBe(true);
      expect(matches({ effectiveAfter: at + 1 }, ev({ extra: { effectiveAt: at } }))).toBe(false);
      expect(matches({ effectiveBefore: at - 1 }, ev({ extra: { effectiveAt: at } }))).toBe(false);
    });

    it('compare epoch ms and ISO strings on either side', () => {
      expect(matches({ effectiveAfter: iso }, ev({ extra: { effectiveAt: at } }))).toBe(true);
      expect(matches({ effectiveAfter: at }, ev({ extra: { effectiveAt: iso } }))).toBe(true);
      expect(matches({ effectiveBefore: '2024-01-14T23:59:59.999Z' }, ev({ extra: { effectiveAt: iso } }))).toBe(false);
      expect(matches({ effectiveAfter: '2024-01-15T00:00:00+01:00', effectiveBefore: iso }, ev({ extra: { effectiveAt: '2024-01-14T23:30:00Z' } }))).toBe(true);
    });

    it('a missing or unparseable effectiveAt never matches a dated predicate', () => {
      for (const extra of [undefined, {}, { effectiveAt: 'soon' }, { effectiveAt: Number.NaN }, { effectiveAt: Number.POSITIVE_INFINITY }, { effectiveAt: null }, { effectiveAt: {} }]) {
        expect(matches({ effectiveAfter: 0 }, ev({ extra }))).toBe(false);
        expect(matches({ effectiveBefore: at }, ev({ extra }))).toBe(false);
      }
      // …while an undated predicate does not care.
      expect(matches({}, ev({ extra: { effectiveAt: 'soon' } }))).toBe(true);
    });

    it('the compiled evaluator does not mix up consecutive events with different dates', () => {
      const test = compilePredicate({ effectiveBefore: iso });
      expect(test(ev({ extra: { effectiveAt: '2024-01-10T00:00:00Z' } }))).toBe(true);
      expect(test(ev({ extra: { effectiveAt: '2024-01-20T00:00:00Z' } }))).toBe(false);
      expect(test(ev({ extra: { effectiveAt: 'garbage' } }))).toBe(false);
      expect(test(ev({ extra: { effectiveAt: '2024-01-10T00:00:00Z' } }))).toBe(true);
    });
  });

  describe('edgeReach', () => {
    // a -cites-> b -cites-> c -links-> d ; e -cites-> a
    const graph = new PageGraph();
    graph.addEdge('a', 'b', 'cites');
    graph.addEdge('b', 'c', 'cites');
    graph.addEdge('c', 'd', 'links');
    graph.addEdge('e', 'a', 'cites');
    const at = (pageId: string) => ev({ pageId });

    it('matches pages within maxHops of the root, following edges in their direction', () => {
      const p: PagePredicate = { edgeReach: { root: 'a', maxHops: 2 } };
      expect(matches(p, at('b'), graph)).toBe(true);
      expect(matches(p, at('c'), graph)).toBe(true);
      expect(matches(p, at('d'), graph)).toBe(false); // 3 hops
      expect(matches(p, at('e'), graph)).toBe(false); // e → a, against the direction
      expect(matches({ edgeReach: { root: 'a', maxHops: 3 } }, at('d'), graph)).toBe(true);
    });

    it('the root itself matches (0 hops), even before it has edges', () => {
      expect(matches({ edgeReach: { root: 'a', maxHops: 1 } }, at('a'), graph)).toBe(true);
      expect(matches({ edgeReach: { root: 'lonely', maxHops: 1 } }, at('lonely'), new PageGraph())).toBe(true);
    });

    it('follows only the listed edge types', () => {
      expect(matches({ edgeReach: { root: 'a', maxHops: 5, edgeTypes: ['cites'] } }, at('c'), graph)).toBe(true);
      expect(matches({ edgeReach: { root: 'a', maxHops: 5, edgeTypes: ['cites'] } }, at('d'), graph)).toBe(false);
      expect(matches({ edgeReach: { root: 'c', maxHops: 1, edgeTypes: ['links'] } }, at('d'), graph)).toBe(true);
    });

    it('does not match without a graph, not even the root', () => {
      expect(matches({ edgeReach: { root: 'a', maxHops: 2 } }, at('b'))).toBe(false);
      expect(matches({ edgeReach: { root: 'a', maxHops: 2 } }, at('a'))).toBe(false);
    });

    it('without a root (maxHops <= 0) it is inert and needs no graph', () => {
      expect(matches({ edgeReach: { maxHops: 0 } }, at('zzz'))).toBe(true);
      expect(matches({ edgeReach: { maxHops: 0 }, dataType: 'img' }, at('zzz'))).toBe(false);
    });
  });

  it('anyOf: at least one branch must hold, on top of the other fields', () => {
    const p: PagePredicate = { scopeId: 's1', anyOf: [{ dataType: 'img' }, { pageIdPrefix: 'file:docs/' }] };
    expect(matches(p, ev())).toBe(true);
    expect(matches(p, ev({ pageId: 'file:src/x.ts' }))).toBe(false);
    expect(matches(p, ev({ pageId: 'file:src/x.ts', dataType: 'img' }))).toBe(true);
    expect(matches(p, ev({ scopeId: 's2' }))).toBe(false);
    const nested: PagePredicate = { anyOf: [{ anyOf: [{ kinds: ['page_invalidated'] }, { dataType: 'doc', kinds: ['page_replaced'] }] }] };
    expect(matches(nested, ev())).toBe(false);
    expect(matches(nested, ev({ kind: 'page_replaced', related: ['old'] }))).toBe(true);
  });

  it('property: the compiled form answers exactly like matchesPredicate', () => {
    fc.assert(
      fc.property(predicateArb, fc.array(eventArb, { minLength: 1, maxLength: 8 }), edgesArb, fc.boolean(), (predicate, events, edges, withGraph) => {
        const graph = withGraph ? graphOf(edges) : undefined;
        const compiled = compilePredicate(validatePredicate(predicate));
        for (const event of events) expect(compiled(event, graph)).toBe(matchesPredicate(predicate, event, graph));
      }),
      { numRuns: 1500, plugins: [fc.interruptAfterTimeLimit(20_000)] },
    );
  });

  it('a compiled predicate keeps the meaning it had when compiled', () => {
    const predicate: PagePredicate = { dataType: ['doc'], pageIdIn: ['file:docs/a.md'] };
    const compiled = compilePredicate(predicate);
    (predicate.dataType as string[])[0] = 'img';
    predicate.pageIdIn = ['other'];
    expect(compiled(ev())).toBe(true);
  });
});

describe('validatePredicate', () => {
  it('accepts every valid shape and returns a copy, not the caller’s object', () => {
    const input: PagePredicate = {
      dataType: ['doc', 'img'],
      sourcePrefix: 'file:',
      scopeId: 's1',
      pageIdIn: ['a'],
      pageIdPrefix: 'file:docs/',
      kinds: ['page_added'],
      effectiveAfter: 0,
      effectiveBefore: '2030-01-01T00:00:00Z',
      edgeReach: { root: 'a', maxHops: 2, edgeTypes: ['cites'] },
      anyOf: [{ dataType: 'doc' }, { anyOf: [{ kinds: ['page_replaced'] }] }],
    };
    const out = validatePredicate(input);
    expect(out).toEqual(input);
    expect(out).not.toBe(input);
    expect(out.dataType).not.toBe(input.dataType);
    expect(structuredClone(out)).toEqual(out); // plain data: crosses threads intact
    expect(validatePredicate({})).toEqual({});
  });

  it('property: every generated predicate is valid', () => {
    fc.assert(fc.property(predicateArb, (p) => void validatePredicate(p)), { numRuns: 500, plugins: [fc.interruptAfterTimeLimit(20_000)] });
  });

  it('edgeReach: maxHops > 0 without a root, or a root with maxHops <= 0, names the field', () => {
    expect(validationField(() => validatePredicate({ edgeReach: { maxHops: 2 } }))).toBe('predicate.edgeReach.root');
    expect(validationField(() => validatePredicate({ edgeReach: { maxHops: 1 } }))).toBe('predicate.edgeReach.root');
    expect(validatePredicate({ edgeReach: { maxHops: 0 } })).toEqual({ edgeReach: { maxHops: 0 } });
    expect(validatePredicate({ edgeReach: { root: 'a', maxHops: 1 } })).toEqual({ edgeReach: { root: 'a', maxHops: 1 } });
    expect(validationField(() => validatePredicate({ edgeReach: { root: 'a', maxHops: 0 } }))).toBe('predicate.edgeReach.maxHops');
    expect(validationField(() => validatePredicate({ edgeReach: { root: 'a', maxHops: -1 } }))).toBe('predicate.edgeReach.maxHops');
    expect(validationField(() => validatePredicate({ edgeReach: { root: 'a', maxHops: 1.5 } }))).toBe('predicate.edgeReach.maxHops');
    expect(validationField(() => validatePredicate({ edgeReach: { root: '', maxHops: 1 } }))).toBe('predicate.edgeReach.root');
    expect(validationField(() => validatePredicate({ edgeReach: { root: 'a', maxHops: 1, edgeTypes: [] } }))).toBe('predicate.edgeReach.edgeTypes');
    expect(validationField(() => validatePredicate({ edgeReach: { root: 'a', maxHops: 1, depth: 2 } }))).toBe('predicate.edgeReach.depth');
    expect(validationField(() => validatePredicate({ edgeReach: { root: 'a' } }))).toBe('predicate.edgeReach.maxHops');
  });

  it('names fields inside anyOf with their index', () => {
    expect(validationField(() => validatePredicate({ anyOf: [{}, { kinds: ['page_deleted'] }] }))).toMatch(/^predicate\.anyOf\[1\]\.kinds/);
    expect(validationField(() => validatePredicate({ anyOf: [{ anyOf: [{ edgeReach: { maxHops: 3 } }] }] }))).toBe('predicate.anyOf[0].anyOf[0].edgeReach.root');
  });

  it('rejects unknown fields by name, wrong types, empty lists and bad dates', () => {
    expect(validationField(() => validatePredicate({ dataTypes: ['doc'] }))).toBe('predicate.dataTypes');
    expect(validationField(() => validatePredicate({ dataType: 3 }))).toBe('predicate.dataType');
    expect(validationField(() => validatePredicate({ dataType: [] }))).toBe('predicate.dataType');
    expect(validationField(() => validatePredicate({ pageIdIn: [] }))).toBe('predicate.pageIdIn');
    expect(validationField(() => validatePredicate({ pageIdIn: ['a', ''] }))).toBe('predicate.pageIdIn[1]');
    expect(validationField(() => validatePredicate({ kinds: [] }))).toBe('predicate.kinds');
    expect(validationField(() => validatePredicate({ anyOf: [] }))).toBe('predicate.anyOf');
    expect(validationField(() => validatePredicate({ scopeId: '' }))).toBe('predicate.scopeId');
    expect(validationField(() => validatePredicate({ effectiveAfter: 'next tuesday-ish' }))).toBe('predicate.effectiveAfter');
    expect(validationField(() => validatePredicate({ effectiveBefore: Number.NaN }))).toBe('predicate.effectiveBefore');
    expect(validationField(() => validatePredicate({ effectiveAfter: 10, effectiveBefore: 9 }))).toBe('predicate.effectiveBefore');
    expect(validationField(() => validatePredicate(null))).toBe('predicate');
    expect(validationField(() => validatePredicate([]))).toBe('predicate');
    expect(validationField(() => validatePredicate({ dataType: 3 }, 'outputs[2]'))).toBe('outputs[2].dataType');
  });
});

describe('validateTolerance', () => {
  it('accepts absolute and relative tolerances', () => {
    expect(validateTolerance({ mode: 'absolute', value: 0.5 })).toEqual({ mode: 'absolute', value: 0.5 });
    expect(validateTolerance({ mode: 'relative', value: 0.01, epsilon: 1e-9 })).toEqual({ mode: 'relative', value: 0.01, epsilon: 1e-9 });
    expect(validateTolerance({ mode: 'relative', value: 0.01, epsilon: 0 })).toEqual({ mode: 'relative', value: 0.01, epsilon: 0 });
  });

  it('rejects a value that is not > 0, a bad mode, a negative epsilon and unknown fields, naming them', () => {
    expect(validationField(() => validateTolerance({ mode: 'absolute', value: 0 }))).toBe('tolerance.value');
    expect(validationField(() => validateTolerance({ mode: 'absolute', value: -1 }))).toBe('tolerance.value');
    expect(validationField(() => validateTolerance({ mode: 'absolute', value: Number.POSITIVE_INFINITY }))).toBe('tolerance.value');
    expect(validationField(() => validateTolerance({ mode: 'percent', value: 1 }))).toBe('tolerance.mode');
    expect(validationField(() => validateTolerance({ mode: 'relative', value: 1, epsilon: -1 }))).toBe('tolerance.epsilon');
    expect(validationField(() => validateTolerance({ mode: 'relative', value: 1, eps: 1 }))).toBe('tolerance.eps');
    expect(validationField(() => validateTolerance({ value: 1 }))).toBe('tolerance.mode');
    expect(validationField(() => validateTolerance({ mode: 'absolute', value: 0 }, 'sub.tolerance'))).toBe('sub.tolerance.value');
  });
});
