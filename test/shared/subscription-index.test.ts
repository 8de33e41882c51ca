import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DuplicateIdError, SubscriptionRegistryFullError, ValidationError } from '../../src/shared/errors.js';
import type { PageChangeEvent } from '../../src/shared/events.js';
import { PageGraph } from '../../src/shared/page-graph.js';
import { matchesPredicate, type PagePredicate } from '../../src/shared/predicates.js';
import { DEFAULT_SUBSCRIPTION_CAPACITY, SubscriptionIndex } from '../../src/shared/subscription-index.js';
import { edgesArb, eventArb, graphOf, PAGE_IDS, predicateArb } from './predicates.fixtures.js';

const event = (over: Partial<PageChangeEvent> = {}): PageChangeEvent => ({
  kind: 'page_added',
  pageId: 'file:docs/a.md',
  sourceId: 'file:/repo',
  dataType: 'doc',
  ...over,
});

const ids = (entries: readonly { id: string }[]) => entries.map((e) => e.id);

describe('SubscriptionIndex', () => {
  it('add, get, has, size, remove; entries keep their payload and identity', () => {
    const index = new SubscriptionIndex<{ handler: string }>();
    const entry = { id: 's1', predicate: { dataType: 'doc' }, handler: 'h1' };
    index.add(entry);
    expect(index.size).toBe(1);
    expect(index.has('s1')).toBe(true);
    expect(index.get('s1')).toBe(entry);
    expect(index.match(event())[0]).toBe(entry);
    expect(index.remove('s1')).toBe(true);
    expect(index.remove('s1')).toBe(false);
    expect(index.get('s1')).toBeUndefined();
    expect(index.size).toBe(0);
    expect(index.match(event())).toEqual([]);
  });

  it('a duplicate id is a DuplicateIdError and leaves the first entry in place', () => {
    const index = new SubscriptionIndex();
    const first = { id: 's1', predicate: { dataType: 'doc' } };
    index.add(first);
    expect(() => index.add({ id: 's1', predicate: {} })).toThrow(DuplicateIdError);
    try {
      index.add({ id: 's1', predicate: {} });
    } catch (error) {
      expect((error as DuplicateIdError).code).toBe('CONVERGE_DUPLICATE_ID');
    }
    expect(index.size).toBe(1);
    expect(index.get('s1')).toBe(first);
    expect(ids(index.match(event({ dataType: 'img' })))).toEqual([]);
  });

  it('over capacity is SubscriptionRegistryFullError (CONVERGE_REGISTRY_FULL); a removal makes room', () => {
    const index = new SubscriptionIndex({ capacity: 2 });
    index.add({ id: 'a', predicate: {} });
    index.add({ id: 'b', predicate: {} });
    let thrown: unknown;
    try {
      index.add({ id: 'c', predicate: {} });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(SubscriptionRegistryFullError);
    expect((thrown as SubscriptionRegistryFullError).code).toBe('CONVERGE_REGISTRY_FULL');
    expect((thrown as SubscriptionRegistryFullError).capacity).toBe(2);
    expect(index.size).toBe(2);
    index.remove('a');
    index.add({ id: 'c', predicate: {} });
    expect(ids(index.match(event()))).toEqual(['b', 'c']);
  });

  it('the default capacity is 100 000', () => {
    const index = new SubscriptionIndex();
    expect(index.capacity).toBe(DEFAULT_SUBSCRIPTION_CAPACITY);
    expect(DEFAULT_SUBSCRIPTION_CAPACITY).toBe(100_000);
    for (let i = 0; i < 100_000; i++) index.add({ id: `s${i}`, predicate: { pageIdIn: [`p${i}`] } });
    expect(() => index.add({ id: 'one-too-many', predicate: {} })).toThrow(SubscriptionRegistryFullError);
    expect(ids(index.match(event({ pageId: 'p99999' })))).toEqual(['s99999']);
  });

  it('rejects a bad capacity, a bad id and an invalid predicate with a ValidationError naming the field; nothing is added', () => {
    expect(() => new SubscriptionIndex({ capacity: 0 })).toThrow(ValidationError);
    const index = new SubscriptionIndex();
    const fieldOf = (fn: () => void): string => {
      try {
        fn();
      } catch (error) {
        expect(error).toBeInstanceOf(ValidationError);
        return (error as ValidationError).field;
      }
      throw new Error('expected a ValidationError');
    };
    expect(fieldOf(() => index.add({ id: 's1', predicate: { edgeReach: { maxHops: 2 } } }))).toBe('predicate.edgeReach.root');
    expect(fieldOf(() => index.add({ id: 's1', predicate: { anyOf: [{}, { kinds: ['nope' as never] }] } }))).toMatch(/^predicate\.anyOf\[1\]\.kinds/);
    expect(fieldOf(() => index.add({ id: '', predicate: {} }))).toBe('id');
    expect(fieldOf(() => index.add(null as never))).toBe('entry');
    expect(index.size).toBe(0);
  });

  it('compiles the predicate at add time: mutating the caller’s object later changes nothing', () => {
    const index = new SubscriptionIndex();
    const predicate: PagePredicate = { dataType: 'doc' };
    index.add({ id: 's1', predicate });
    predicate.dataType = 'img';
    expect(ids(index.match(event({ dataType: 'doc' })))).toEqual(['s1']);
    expect(ids(index.match(event({ dataType: 'img' })))).toEqual([]);
  });

  describe('candidatesFor', () => {
    it('never offers indexed subscriptions whose key the event cannot satisfy', () => {
      const index = new SubscriptionIndex();
      for (let i = 0; i < 1000; i++) index.add({ id: `img${i}`, predicate: { dataType: 'img' } });
      for (let i = 0; i < 1000; i++) index.add({ id: `git${i}`, predicate: { sourcePrefix: `git:remote${i}` } });
      for (let i = 0; i < 1000; i++) index.add({ id: `page${i}`, predicate: { pageIdIn: [`other${i}`] } });
      for (let i = 0; i < 1000; i++) index.add({ id: `scope${i}`, predicate: { scopeId: `scope${i}` } });
      for (let i = 0; i < 1000; i++) index.add({ id: `dir${i}`, predicate: { pageIdPrefix: `file:src${i}/` } });
      index.add({ id: 'doc', predicate: { dataType: 'doc' } });
      index.add({ id: 'repo', predicate: { sourcePrefix: 'file:/repo' } });
      index.add({ id: 'anything', predicate: { kinds: ['page_added'] } });
      expect(ids(index.candidatesFor(event()))).toEqual(['doc', 'repo', 'anything']);
      expect(ids(index.candidatesFor(event({ dataType: undefined, pageId: 'other7' })))).toEqual(['page7', 'repo', 'anything']);
      expect(ids(index.candidatesFor(event({ dataType: undefined, scopeId: 'scope3', pageId: 'file:src12/x' })))).toEqual(['scope3', 'dir12', 'repo', 'anything']);
    });

    it('visits exactly the stored prefixes that are prefixes of the source id', () => {
      const index = new SubscriptionIndex();
      const prefixes = ['f', 'file:', 'file:/', 'file:/re', 'file:/repo', 'file:/repo/', 'file:/repo2', 'file:/rep0', 'file:/a', 'git:', 'file:/repo/sub'];
      for (const p of prefixes) index.add({ id: p, predicate: { sourcePrefix: p } });
      expect(ids(index.candidatesFor(event({ sourceId: 'file:/repo' })))).toEqual(['f', 'file:', 'file:/', 'file:/re', 'file:/repo']);
      expect(ids(index.candidatesFor(event({ sourceId: 'file:/repo/sub/x' })))).toEqual(['f', 'file:', 'file:/', 'file:/re', 'file:/repo', 'file:/repo/', 'file:/repo/sub']);
      expect(ids(index.candidatesFor(event({ sourceId: 'manual' })))).toEqual([]);
    });

    it('is deduplicated: repeated keys in a predicate do not repeat the entry', () => {
      const index = new SubscriptionIndex();
      index.add({ id: 'ids', predicate: { pageIdIn: ['file:docs/a.md', 'file:docs/a.md', 'x'] } });
      index.add({ id: 'types', predicate: { dataType: ['doc', 'doc', 'img'] } });
      expect(ids(index.candidatesFor(event()))).toEqual(['ids', 'types']);
      expect(ids(index.match(event()))).toEqual(['ids', 'types']);
    });
  });

  it('match returns full matches in insertion order across every bucket', () => {
    const index = new SubscriptionIndex();
    index.add({ id: 'u1', predicate: {} });
    index.add({ id: 'd1', predicate: { dataType: 'doc' } });
    index.add({ id: 'p1', predicate: { sourcePrefix: 'file:' } });
    index.add({ id: 'i1', predicate: { pageIdIn: ['file:docs/a.md'] } });
    index.add({ id: 'd2', predicate: { dataType: 'doc', kinds: ['page_replaced'] } });
    index.add({ id: 'p2', predicate: { sourcePrefix: 'file:/repo' } });
    index.add({ id: 'u2', predicate: { anyOf: [{ dataType: 'img' }, { pageIdPrefix: 'file:docs/' }] } });
    index.add({ id: 'd3', predicate: { dataType: ['img', 'doc'] } });
    expect(ids(index.match(event()))).toEqual(['u1', 'd1', 'p1', 'i1', 'p2', 'u2', 'd3']);
    index.remove('d1');
    index.add({ id: 'd1', predicate: { dataType: 'doc' } }); // re-added: now the newest
    expect(ids(index.match(event()))).toEqual(['u1', 'p1', 'i1', 'p2', 'u2', 'd3', 'd1']);
    expect(ids([...index.entries()])).toEqual(['u1', 'p1', 'i1', 'd2', 'p2', 'u2', 'd3', 'd1']);
  });

  it('keeps insertion order when many hits come from many buckets', () => {
    const index = new SubscriptionIndex();
    const shapes: PagePredicate[] = [
      { dataType: 'doc' },
      { sourcePrefix: 'file:' },
      { sourcePrefix: 'file:/repo' },
      { pageIdIn: ['file:docs/a.md'] },
      { pageIdPrefix: 'file:docs/' },
      { scopeId: 's1' },
      { kinds: ['page_added'] },
      { dataType: 'img' }, // never matches
    ];
    for (let i = 0; i < 400; i++) index.add({ id: `s${i}`, predicate: shapes[(i * 5) % shapes.length]! });
    const expected = [...index.entries()].filter((e) => matchesPredicate(e.predicate, event({ scopeId: 's1' }))).map((e) => e.id);
    expect(expected.length).toBeGreaterThan(300);
    expect(ids(index.match(event({ scopeId: 's1' })))).toEqual(expected);
    expect(ids(index.candidatesFor(event({ scopeId: 's1' })))).toEqual(expected);
  });

  it('still checks every other field of a subscription filed under one of them', () => {
    const index = new SubscriptionIndex();
    for (let i = 0; i < 20; i++) index.add({ id: `crowd${i}`, predicate: { pageIdIn: ['x'] } });
    const both = { pageIdIn: ['x'], dataType: 'doc', sourcePrefix: 'file:/repo', kinds: ['page_added' as const] };
    index.add({ id: 'both', predicate: both });
    expect(index.keyOf('both')?.kind).not.toBe('pageIdIn');
    expect(ids(index.match(event({ pageId: 'x' })))).toContain('both');
    expect(ids(index.match(event({ pageId: 'y' })))).toEqual([]);
    expect(ids(index.match(event({ pageId: 'x', dataType: 'img' })))).not.toContain('both');
    expect(ids(index.match(event({ pageId: 'x', sourceId: 'git:x' })))).not.toContain('both');
    expect(ids(index.match(event({ pageId: 'x', kind: 'page_invalidated' })))).not.toContain('both');
    index.add({ id: 'dir', predicate: { pageIdPrefix: 'file:docs/', dataType: 'doc' } });
    expect(index.keyOf('dir')?.kind).toBe('pageIdPrefix');
    expect(ids(index.match(event({ pageId: 'file:docs/z' })))).toContain('dir');
    expect(ids(index.match(event({ pageId: 'file:docs/z', dataType: 'img' })))).not.toContain('dir');
    index.add({ id: 'scoped', predicate: { scopeId: 'team', dataType: 'doc' } });
    expect(index.keyOf('scoped')?.kind).toBe('scopeId');
    expect(ids(index.match(event({ scopeId: 'team' })))).toContain('scoped');
    expect(ids(index.match(event({ scopeId: 'team', dataType: 'img' })))).not.toContain('scoped');
    index.add({ id: 'typed', predicate: { pageIdIn: ['x'], dataType: 'doc2' } });
    expect(index.keyOf('typed')?.kind).toBe('dataType');
    expect(ids(index.match(event({ pageId: 'x', dataType: 'doc2' })))).toContain('typed');
    expect(ids(index.match(event({ pageId: 'y', dataType: 'doc2' })))).toEqual([]);
  });

  it('resolves edgeReach against the graph it is given, and never matches it without one', () => {
    const index = new SubscriptionIndex();
    index.add({ id: 'tree', predicate: { dataType: 'doc', edgeReach: { root: 'root', maxHops: 2 } } });
    const graph = new PageGraph();
    graph.addEdge('root', 'mid');
    graph.addEdge('mid', 'leaf');
    expect(ids(index.match(event({ pageId: 'leaf' }), graph))).toEqual(['tree']);
    expect(ids(index.match(event({ pageId: 'leaf' })))).toEqual([]);
    expect(ids(index.match(event({ pageId: 'elsewhere' }), graph))).toEqual([]);
  });

  it('files each subscription under its cheapest key', () => {
    const index = new SubscriptionIndex();
    index.add({ id: 'ids', predicate: { dataType: 'doc', sourcePrefix: 'file:', pageIdIn: ['a'] } });
    expect(index.keyOf('ids')).toEqual({ kind: 'pageIdIn', values: ['a'] });
    index.add({ id: 'dt', predicate: { dataType: 'doc', sourcePrefix: 'file:' } });
    expect(index.keyOf('dt')?.kind).toBe('sourcePrefix'); // a tie goes to the more selective kind
    index.add({ id: 'dt2', predicate: { dataType: 'doc', sourcePrefix: 'file:' } });
    expect(index.keyOf('dt2')?.kind).toBe('dataType'); // the prefix bucket is now the bigger one
    for (let i = 0; i < 40; i++) index.add({ id: `crowd${i}`, predicate: { sourcePrefix: 'file:/one', dataType: `type${i}` } });
    // 40 subscriptions on one source prefix, each on its own data type, do not pile into one bucket.
    expect(ids(index.candidatesFor(event({ sourceId: 'file:/one', dataType: 'type7' }))).length).toBeLessThan(5);
    index.add({ id: 'any', predicate: { anyOf: [{ dataType: 'doc' }] } });
    expect(index.keyOf('any')).toEqual({ kind: 'unindexed' });
    index.add({ id: 'empty-prefix', predicate: { sourcePrefix: '' } });
    expect(index.keyOf('empty-prefix')).toEqual({ kind: 'unindexed' });
  });

  it('clear removes everything', () => {
    const index = new SubscriptionIndex();
    index.add({ id: 'a', predicate: { sourcePrefix: 'x' } });
    index.add({ id: 'b', predicate: { dataType: 'doc' } });
    index.clear();
    expect(index.size).toBe(0);
    expect(index.candidatesFor(event({ sourceId: 'xyz' }))).toEqual([]);
    index.add({ id: 'a', predicate: { sourcePrefix: 'x' } });
    expect(ids(index.match(event({ sourceId: 'xyz' })))).toEqual(['a']);
  });

  describe('properties', () => {
    type Op = { op: 'add'; id: string; predicate: PagePredicate } | { op: 'remove'; id: string } | { op: 'match'; event: PageChangeEvent };
    const idArb = fc.constantFrom(...Array.from({ length: 24 }, (_, i) => `s${i}`));
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ op: fc.constant('add' as const), id: idArb, predicate: predicateArb }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), id: idArb }) },
      { weight: 4, arbitrary: fc.record({ op: fc.constant('match' as const), event: eventArb }) },
    );

    it('match equals a linear scan with matchesPredicate, in the same order, through any adds and removes', () => {
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 80 }), edgesArb, fc.boolean(), (ops, edges, withGraph) => {
          const graph = withGraph ? graphOf(edges) : undefined;
          const index = new SubscriptionIndex();
          const model: { id: string; predicate: PagePredicate }[] = []; // insertion order
          for (const o of ops) {
            if (o.op === 'add') {
              if (model.some((e) => e.id === o.id)) {
                expect(() => index.add({ id: o.id, predicate: o.predicate })).toThrow(DuplicateIdError);
              } else {
                index.add({ id: o.id, predicate: o.predicate });
                model.push({ id: o.id, predicate: o.predicate });
              }
            } else if (o.op === 'remove') {
              const at = model.findIndex((e) => e.id === o.id);
              expect(index.remove(o.id)).toBe(at >= 0);
              if (at >= 0) model.splice(at, 1);
            } else {
              const expected = model.filter((e) => matchesPredicate(e.predicate, o.event, graph)).map((e) => e.id);
              expect(ids(index.match(o.event, graph))).toEqual(expected);
              const candidates = ids(index.candidatesFor(o.event));
              expect(new Set(candidates).size).toBe(candidates.length);
              for (const id of expected) expect(candidates).toContain(id);
            }
            expect(index.size).toBe(model.length);
          }
        }),
        { numRuns: 600, plugins: [fc.interruptAfterTimeLimit(20_000)] },
      );
    });

    it('prefix lookup finds exactly the stored prefixes of a string, through adds and removes', () => {
      const str = fc.string({ unit: fc.constantFrom('a', 'b', '/'), maxLength: 6 });
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.boolean(), str), { maxLength: 120 }),
          fc.array(str, { minLength: 1, maxLength: 10 }),
          (changes, probes) => {
            const index = new SubscriptionIndex();
            const live = new Map<string, string>(); // id → prefix
            let n = 0;
            for (const [adding, prefix] of changes) {
              if (prefix === '') continue;
              const existing = [...live].find(([, p]) => p === prefix);
              if (adding || existing === undefined) {
                const id = `p${n++}`;
                index.add({ id, predicate: { sourcePrefix: prefix } });
                live.set(id, prefix);
              } else {
                index.remove(existing[0]);
                live.delete(existing[0]);
              }
              // Probe between changes too, so the lazily sorted prefix array is exercised mid-stream.
              const probe = probes[n % probes.length]!;
              const expected = [...live].filter(([, p]) => probe.startsWith(p)).map(([id]) => id);
              expect(ids(index.candidatesFor(event({ sourceId: probe || 'x', dataType: undefined })))).toEqual(
                probe === '' ? [...live].filter(([, p]) => 'x'.startsWith(p)).map(([id]) => id) : expected,
              );
            }
            for (const probe of probes) {
              if (probe === '') continue;
              const expected = [...live].filter(([, p]) => probe.startsWith(p)).map(([id]) => id);
              expect(ids(index.candidatesFor(event({ sourceId: probe, dataType: undefined })))).toEqual(expected);
            }
          },
        ),
        { numRuns: 400, plugins: [fc.interruptAfterTimeLimit(20_000)] },
      );
    });
  });

  it('prefixes whose probe hashes collide are told apart, and removing one keeps the other', () => {
    // 'src-270398/' and 'src-818116/' share a 30-bit FNV-1a hash (the prefix table's key).
    const index = new SubscriptionIndex();
    index.add({ id: 'a', predicate: { sourcePrefix: 'src-270398/' } });
    index.add({ id: 'b', predicate: { sourcePrefix: 'src-818116/' } });
    index.add({ id: 'c', predicate: { sourcePrefix: 'src-' } });
    expect(ids(index.match(event({ sourceId: 'src-270398/x' })))).toEqual(['a', 'c']);
    expect(ids(index.match(event({ sourceId: 'src-818116/x' })))).toEqual(['b', 'c']);
    expect(index.remove('a')).toBe(true);
    expect(ids(index.match(event({ sourceId: 'src-270398/x' })))).toEqual(['c']);
    expect(ids(index.match(event({ sourceId: 'src-818116/x' })))).toEqual(['b', 'c']);
    index.add({ id: 'a2', predicate: { sourcePrefix: 'src-270398/' } });
    expect(index.remove('b')).toBe(true);
    expect(ids(index.match(event({ sourceId: 'src-270398/x' })))).toEqual(['c', 'a2']);
    expect(ids(index.match(event({ sourceId: 'src-818116/x' })))).toEqual(['c']);
  });

  it('the same page id list over many subscriptions stays exact', () => {
    const index = new SubscriptionIndex();
    for (const [i, page] of PAGE_IDS.entries()) index.add({ id: `s${i}`, predicate: { pageIdIn: [page, 'shared'] } });
    expect(ids(index.match(event({ pageId: 'shared' })))).toEqual(PAGE_IDS.map((_, i) => `s${i}`));
    expect(ids(index.match(event({ pageId: 'ab' })))).toEqual([`s${PAGE_IDS.indexOf('ab')}`]);
  });
});

describe('source prefixes of many lengths', () => {
  // Up to MAX_PROBED_LENGTHS distinct lengths are probed by hash; more fall back to the sorted walk.
  for (const lengths of [5, 12, 13, 26]) {
    it(`finds exactly the stored prefixes of the source with ${lengths} distinct prefix lengths`, () => {
      const alphabet = 'abcdefghijklmnopqrstuvwxyz';
      const index = new SubscriptionIndex();
      for (let n = 1; n <= lengths; n++) {
        index.add({ id: `hit-${n}`, predicate: { sourcePrefix: alphabet.slice(0, n) } });
        index.add({ id: `miss-${n}`, predicate: { sourcePrefix: `${alphabet.slice(0, n - 1)}#` } });
      }
      const event = { kind: 'page_added' as const, pageId: 'p', sourceId: alphabet };
      const ids = index.match(event).map((s) => s.id);
      expect(ids).toEqual(Array.from({ length: lengths }, (_, i) => `hit-${i + 1}`));
      index.remove('hit-3');
      expect(index.match(event).map((s) => s.id)).not.toContain('hit-3');
      expect(index.match({ ...event, sourceId: 'zzz' })).toEqual([]);
    });
  }
});
