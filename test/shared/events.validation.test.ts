/**
 * The hot path's event check (`isWellFormedEvent`) against the zod schema: over generated junk both
 * accept or both reject; and `extra` must be plain data, each refusal naming the nested field.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/shared/errors.js';
import { PAGE_CHANGE_KINDS, PageChangeEventSchema, eventWithDefaults, isWellFormedEvent, validateEvent, validateEvents } from '../../src/shared/events.js';
import { MAX_PLAIN_DEPTH, plainObjectProblem } from '../../src/shared/validation.js';

class Point {
  constructor(
    readonly x = 1,
    readonly y = 2,
  ) {}
}

function circular(): Record<string, unknown> {
  const o: Record<string, unknown> = { a: 1 };
  o['self'] = o;
  return o;
}

function deep(levels: number): Record<string, unknown> {
  let o: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) o = { d: o };
  return o;
}

const LONE = '\ud800';
/** Values that are not plain data, or are at its edges. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    new Set([1]),
    new Map([[1, 2]]),
    new Date(0),
    () => 1,
    Symbol('s'),
    new Point(),
    2n ** 64n,
    -(2n ** 63n) - 1n,
    2n ** 64n - 1n,
    -(2n ** 63n),
    5n,
    new Uint8Array([1, 2]),
    Buffer.from([1]),
    Object.create(null) as unknown,
    NaN,
    -0,
    Infinity,
    undefined,
    null,
    LONE,
    `a${LONE}b`,
    '\udc00\ud800',
    '😀',
    [1, [2, [3]]],
    JSON.parse('{"__proto__": 1}') as unknown,
    { [`k${LONE}`]: 1 },
    /re/,
    new Error('e'),
    Promise.resolve(1),
    new Int32Array(1),
  ),
  fc.constant(0).map(() => circular()),
  fc.integer({ min: MAX_PLAIN_DEPTH - 1, max: MAX_PLAIN_DEPTH + 1 }).map(deep),
  fc.anything({ withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withTypedArray: true, withSparseArray: true }),
);

const plainish: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    oddValue,
    fc.string(),
    fc.double(),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom('__proto__', LONE, 'constructor')), tie('value'), { maxKeys: 3 }),
  ),
})).value;

const text = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('', LONE, `x${LONE}`, '日本', '😀'));
const field = (valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> => fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: oddValue });

/** Events near the boundary: mostly right, some field wrong, sometimes an unknown key. */
const junkEvent: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 1, arbitrary: oddValue },
  {
    weight: 9,
    arbitrary: fc
      .record(
        {
          kind: field(fc.constantFrom(...PAGE_CHANGE_KINDS, 'page_exploded')),
          pageId: field(text),
          sourceId: field(text),
          dataType: field(text),
          scopeId: field(text),
          related: field(fc.array(text, { maxLength: 2 })),
          edgeType: field(text),
          reason: field(text),
          editDiff: field(text),
          extra: fc.oneof(fc.dictionary(fc.string({ maxLength: 3 }), plainish, { maxKeys: 4 }), oddValue),
          ts: field(fc.oneof(fc.double(), fc.nat())),
          pageID: fc.string(),
        },
        { requiredKeys: [] },
      )
      .map((e) => e as Record<string, unknown>),
  },
);

function refusal(fn: () => unknown): ValidationError | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
}

describe('isWellFormedEvent is exactly as strict as PageChangeEventSchema', () => {
  it('both accept or both reject generated junk (property)', () => {
    fc.assert(
      fc.property(junkEvent, (value) => {
        expect(isWellFormedEvent(value)).toBe(PageChangeEventSchema.safeParse(value).success);
      }),
      { numRuns: 2_000 },
    );
  });

  it('a refused event in a batch is named by its index and the same field zod names', () => {
    fc.assert(
      fc.property(fc.array(junkEvent, { minLength: 1, maxLength: 4 }), (batch) => {
        const bad = batch.findIndex((e) => !PageChangeEventSchema.safeParse(e).success);
        const error = refusal(() => validateEvents(batch));
        // No `return expect(...)`: fast-check fails a property whose predicate returns anything but
        // undefined or true, and an all-valid batch (about 1 run in 300) once failed CI that way.
        if (bad < 0) {
          expect(error).toBeUndefined();
          return;
        }
        const issue = PageChangeEventSchema.safeParse(batch[bad]).error!.issues[0]!;
        expect(error?.field.startsWith(`events[${bad}]`)).toBe(true);
        expect(error?.message).toContain(issue.message);
      }),
      // The all-valid batch that failed CI (seed 2127144011) is always tried first.
      { numRuns: 1_000, examples: [[[{ kind: 'page_added', pageId: ' ', sourceId: ' ' }]]] },
    );
  });
});

describe('extra must be plain data', () => {
  const ok = { kind: 'page_added', pageId: 'a', sourceId: 's' } as const;

  it.each([
    ['a Set', { tags: new Set(['x']) }, 'events[1].extra.tags', /Set/],
    ['a Map', { m: new Map() }, 'events[1].extra.m', /Map/],
    ['a Date', { when: new Date(0) }, 'events[1].extra.when', /Date/],
    ['a function', { f: () => 1 }, 'events[1].extra.f', /function/],
    ['a class instance', { p: new Point() }, 'events[1].extra.p', /Point/],
    ['a symbol', { s: Symbol('s') }, 'events[1].extra.s', /symbol/],
    ['a BigInt beyond 64 bits', { big: 2n ** 64n }, 'events[1].extra.big', /64 bits/],
    ['a negative BigInt beyond 64 bits', { big: -(2n ** 63n) - 1n }, 'events[1].extra.big', /64 bits/],
    ['a circular object', { nested: circular() }, 'events[1].extra.nested.self', /circular/],
    ['a nested Set', { a: [1, { b: new Set() }] }, 'events[1].extra.a[1].b', /Set/],
    ['a lone surrogate', { s: `x${LONE}` }, 'events[1].extra.s', /UTF-16/],
    ['a lone surrogate in a key', { [`k${LONE}`]: 1 }, `events[1].extra.k${LONE}`, /UTF-16/],
    ['an own __proto__ key', JSON.parse('{"a": {"__proto__": 1}}') as object, 'events[1].extra.a.__proto__', /__proto__|prototype/],
    ['a Buffer', { b: Buffer.from([1]) }, 'events[1].extra.b', /Buffer/],
    ['nesting too deep', { d: deep(MAX_PLAIN_DEPTH) }, `events[1].extra${'.d'.repeat(MAX_PLAIN_DEPTH)}`, /deeper/],
  ])('%s → ValidationError naming it', (_what, extra, field, message) => {
    const error = refusal(() => validateEvents([ok, { ...ok, extra }]));
    expect(error?.code).toBe('CONVERGE_VALIDATION');
    expect(error?.field).toBe(field);
    expect(error?.message).toMatch(message);
  });

  it('accepts plain data at its edges', () => {
    const extra = {
      n: [NaN, Infinity, -Infinity, -0, 1.5],
      b: [2n ** 64n - 1n, -(2n ** 63n), 0n],
      bytes: new Uint8Array([1, 2]),
      nothing: [null, undefined],
      bare: Object.assign(Object.create(null) as object, { x: 1 }),
      emoji: '😀',
      d: deep(MAX_PLAIN_DEPTH - 1),
      shared: (() => {
        const leaf = { x: 1 };
        return [leaf, leaf];
      })(),
    };
    const event = { ...ok, extra };
    // Valid events come back as themselves: the fast check accepted them, zod never copied them.
    expect(validateEvent(event)).toBe(event);
    expect(plainObjectProblem(extra)).toBeUndefined();
  });

  it('a deep circular structure never throws a raw RangeError', () => {
    const a: unknown[] = [];
    let cur = a;
    for (let i = 0; i < 100_000; i++) {
      const next: unknown[] = [];
      cur.push(next);
      cur = next;
    }
    const error = refusal(() => validateEvent({ ...ok, extra: { a } }));
    expect(error?.code).toBe('CONVERGE_VALIDATION');
    expect(error?.message).toMatch(/deeper/);
  });
});

describe('strings must be well-formed UTF-16 (refused, never turned into U+FFFD)', () => {
  it.each([
    ['pageId', { kind: 'page_added', pageId: `p${LONE}`, sourceId: 's' }, 'event.pageId'],
    ['sourceId', { kind: 'page_added', pageId: 'p', sourceId: LONE }, 'event.sourceId'],
    ['related', { kind: 'page_replaced', pageId: 'p', sourceId: 's', related: ['\udc00'] }, 'event.related[0]'],
    ['reason', { kind: 'page_invalidated', pageId: 'p', sourceId: 's', reason: `r${LONE}` }, 'event.reason'],
    ['editDiff', { kind: 'page_added', pageId: 'p', sourceId: 's', editDiff: LONE }, 'event.editDiff'],
    ['dataType', { kind: 'page_added', pageId: 'p', sourceId: 's', dataType: LONE }, 'event.dataType'],
  ])('a lone surrogate in %s → ValidationError', (_name, event, field) => {
    const error = refusal(() => validateEvent(event));
    expect(error?.field).toBe(field);
    expect(error?.message).toMatch(/UTF-16/);
  });

  it('a surrogate pair is fine', () => {
    expect(validateEvent({ kind: 'page_added', pageId: '😀', sourceId: 's' }).pageId).toBe('😀');
  });
});

describe('eventWithDefaults', () => {
  it('is the spread copy with sourceId and ts filled in, minus keys whose value is undefined (property)', () => {
    fc.assert(
      fc.property(junkEvent, fc.option(fc.string({ minLength: 1 }), { nil: undefined }), (value, sourceId) => {
        if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
        const event = value as Record<string, unknown>;
        const before = { ...event };
        const copy = eventWithDefaults(event as never, sourceId, 42) as unknown as Record<string, unknown>;
        const spread: Record<string, unknown> = { ...event, sourceId: event['sourceId'] ?? sourceId, ts: event['ts'] ?? 42 };
        const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
        expect(defined(copy)).toStrictEqual(defined(spread));
        expect(Object.entries(event)).toEqual(Object.entries(before));
        // Same verdict (and so the same error) as the spread copy would get.
        expect(isWellFormedEvent(copy)).toBe(isWellFormedEvent(spread));
      }),
      { numRuns: 1_000 },
    );
  });
});
