/**
 * Framing: event batches survive encode → (SharedArrayBuffer) → decode exactly, for any events;
 * the bytes are plain msgpack; bad input is refused with coded errors naming what is wrong.
 */
import fc from 'fast-check';
import { Packr, unpack, unpackMultiple } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { ProtocolError, ValidationError } from '../../src/shared/errors.js';
import { PAGE_CHANGE_KINDS, type PageChangeEvent } from '../../src/shared/events.js';
import { EVENT_FIELDS, FrameDecoder, FrameEncoder, eventToTuple, packDispatchGroups, readDispatchGroups, readEvents, tupleToEvent, unpackDispatchGroups } from '../../src/shared/framing.js';
import { type DispatchGroup, DispatchTag, IngestTag } from '../../src/shared/protocol.js';

/** Copies bytes into a SharedArrayBuffer, as a ring would hold them. */
function shared(bytes: Uint8Array): Uint8Array {
  const view = new Uint8Array(new SharedArrayBuffer(bytes.length + 16), 8, bytes.length);
  view.set(bytes);
  return view;
}

function roundTrip(events: readonly PageChangeEvent[], encoder = new FrameEncoder(), decoder = new FrameDecoder()): PageChangeEvent[] {
  const frame = decoder.decode(shared(encoder.encodeEvents(1, { cause: 'sub_1' }, events)));
  expect(frame.slice(0, 2)).toEqual([1, { cause: 'sub_1' }]);
  return readEvents(frame[2]);
}

// Every number travels as itself, -0 and NaN included.
const number = fc.oneof(fc.integer(), fc.double(), fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), fc.constantFrom(2 ** 32, -(2 ** 31) - 1, 255, 256, 65_535, 65_536, -0, NaN, Infinity));
const text = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'grapheme-ascii', maxLength: 300 }), fc.constantFrom('', 'file:/work/monorepo', 'é', '日本語', '😀'));
const repeated = fc.oneof(fc.constantFrom('file:/repo', 'git:https://example.com/r.git@abc', 'design_monorepo_file', 'imports'), text);
// '__proto__' and 'constructor' keys have their own test: msgpackr renames a nested '__proto__',
// and toStrictEqual compares objects' `constructor` properties as their types.
const key = fc.oneof(fc.constantFrom('value', 'relativePath', 'effectiveAt', 'addedRecords', 'toString', ''), fc.string({ unit: 'grapheme', maxLength: 12 })).filter((k) => k !== '__proto__' && k !== 'constructor');
const nested: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    text,
    number,
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.uint8Array({ maxLength: 300 }),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(key, tie('value'), { maxKeys: 3, noNullPrototype: true }),
  ),
})).value;
const extra = fc.dictionary(key, fc.oneof(text, number, fc.boolean(), fc.constant(null), nested), { maxKeys: 20, noNullPrototype: true });

const event: fc.Arbitrary<PageChangeEvent> = fc.record(
  {
    kind: fc.constantFrom(...PAGE_CHANGE_KINDS),
    pageId: text,
    sourceId: repeated,
    dataType: repeated,
    scopeId: repeated,
    related: fc.array(text, { maxLength: 3 }),
    edgeType: repeated,
    reason: text,
    editDiff: text,
    extra,
    ts: number,
  },
  { requiredKeys: ['kind', 'pageId', 'sourceId'], noNullPrototype: true },
);

describe('FrameEncoder.encodeEvents / readEvents', () => {
  it('round-trips any batch of events exactly (property)', () => {
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    fc.assert(
      fc.property(fc.array(event, { maxLength: 40 }), (events) => {
        // One encoder and decoder across runs: state carried between frames must never leak.
        expect(roundTrip(events, encoder, decoder)).toStrictEqual(events);
      }),
      { numRuns: 400 },
    );
  });

  it('round-trips batches whose events share or vary every field (constant and mixed columns)', () => {
    const base: PageChangeEvent = { kind: 'page_added', pageId: 'p', sourceId: 's', dataType: 'd', ts: 7, related: ['r'], extra: { value: 1 } };
    const batches: PageChangeEvent[][] = [
      [],
      [base],
      Array.from({ length: 300 }, (_, i) => ({ ...base, pageId: `p${i}` })),
      Array.from({ length: 300 }, (_, i) => ({ ...base, pageId: `p${i}`, sourceId: `s${i % 3}`, ts: i % 2 === 0 ? i : undefined, related: i % 5 === 0 ? undefined : [`a${i}`, `b${i}`].slice(0, i % 3) })),
      Array.from({ length: 200 }, (_, i) => ({ kind: PAGE_CHANGE_KINDS[i % 5]!, pageId: `p${i}`, sourceId: 's', extra: i % 2 === 0 ? { [`k${i}`]: i, value: `v${i}` } : { value: i } })),
    ].map((batch) => batch.map((e) => JSON.parse(JSON.stringify(e)) as PageChangeEvent));
    for (const batch of batches) expect(roundTrip(batch)).toStrictEqual(batch);
  });

  it('a dictionary column of mostly distinct strings goes to the pool from the next frame on, and back once they repeat', () => {
    // sourceId, dataType, scopeId and edgeType are dictionary columns; with many distinct values
    // (issue 10's mix: 40 k sources, 10 k types) the encoder writes them as pool slices instead.
    const distinct = (frame: number): PageChangeEvent[] =>
      Array.from({ length: 100 }, (_, i) => {
        const e: PageChangeEvent = { kind: PAGE_CHANGE_KINDS[i % 5]!, pageId: `p${frame}-${i}`, sourceId: `file:/repo-${frame}-${i}/é` };
        if (i % 7 !== 0) e.dataType = `type-${frame}-${i}`;
        e.scopeId = `scope-${frame}-${i}`;
        if (i % 3 === 0) e.related = [`r${i}`, `😀${i}`];
        if (i % 2 === 0) e.edgeType = `edge-${frame}-${i}`;
        if (i % 4 === 0) e.reason = `why ${i}`;
        if (i % 6 === 0) e.editDiff = `diff ${i}`;
        e.extra = { relativePath: `src/${i}.ts`, value: i };
        e.ts = 1000 + i;
        return e;
      });
    const repeating = (frame: number): PageChangeEvent[] =>
      Array.from({ length: 100 }, (_, i) => ({ kind: 'page_added', pageId: `q${frame}-${i}`, sourceId: `s${i % 3}`, dataType: `d${i % 2}`, scopeId: 'one', edgeType: i % 2 === 0 ? 'e' : undefined, ts: i }));
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const send = (events: PageChangeEvent[]): unknown[] => {
      const bytes = encoder.encodeEvents(1, null, events);
      expect(readEvents(decoder.decode(shared(bytes))[2])).toStrictEqual(JSON.parse(JSON.stringify(events)));
      return (unpack(Buffer.from(bytes)) as unknown[])[2] as unknown[];
    };
    const pooled = (column: unknown): boolean => Array.isArray(column) && column.length === 1 && Array.isArray(column[0]);
    // First frame: the dictionary (indexes); it learns that the columns are distinct.
    let columns = send(distinct(0));
    for (const index of [3, 4, 5, 7]) expect(pooled(columns[index])).toBe(false);
    // From then on: pool slices (nil where an event lacks the field).
    for (let frame = 1; frame < 4; frame++) {
      columns = send(distinct(frame));
      for (const index of [3, 4, 5, 7]) expect(pooled(columns[index])).toBe(true);
      expect((columns[4] as unknown[][])[0]![0]).toBeNull(); // event 0 has no dataType
    }
    // Repeating values: back to the dictionary within a retry period (32 frames), never wrong meanwhile.
    let frame = 4;
    while (pooled(send(repeating(frame))[3]) && frame < 40) frame++;
    expect(frame).toBeLessThan(40);
    columns = send(repeating(frame + 1));
    for (const index of [3, 4, 5, 7]) expect(pooled(columns[index])).toBe(false);
    expect(typeof columns[5]).toBe('number'); // a scalar: every event has scope 'one'
  });

  it('carries plain data losslessly: -0, NaN, BigInt, undefined, bytes as Uint8Array, null-prototype objects, many keys', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const manyKeys = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`key${i}`, i % 2 === 0 ? i : `v${i}`]));
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { x: -0 });
    const proto = JSON.parse('{"__proto__": {"polluted": true}, "plain": 1, "constructor": "c", "hasOwnProperty": 2}') as Record<string, unknown>;
    const events: PageChangeEvent[] = [
      { kind: 'page_added', pageId: 'a', sourceId: 's', extra: { nested: { deep: [1, { x: 'y' }] }, bytes, missing: undefined, z: -0, nan: NaN, big: 2n ** 64n - 1n, neg: -5n, bare } },
      { kind: 'page_added', pageId: 'b', sourceId: 's', extra: manyKeys },
      { kind: 'page_added', pageId: 'c', sourceId: 's', extra: proto },
      { kind: 'page_added', pageId: 'd', sourceId: 's', extra: {} },
    ];
    const decoder = new FrameDecoder();
    const back = roundTrip(events, new FrameEncoder(), decoder);
    const extra = back[0]!.extra!;
    // Null-prototype objects arrive as plain objects (a prototype is not data); everything else as sent.
    expect(extra).toStrictEqual({ ...events[0]!.extra, bare: { x: -0 } });
    expect(Object.getPrototypeOf(extra['bytes'])).toBe(Uint8Array.prototype);
    expect(Object.is(extra['z'], -0)).toBe(true);
    expect(back[1]!.extra).toStrictEqual(manyKeys);
    // A hostile own __proto__ key (validation refuses it; the decoder must still be safe) stays an own key.
    expect(Object.entries(back[2]!.extra!)).toEqual([['__proto__', { polluted: true }], ['plain', 1], ['constructor', 'c'], ['hasOwnProperty', 2]]);
    expect(Object.getPrototypeOf(back[2]!.extra)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(back[3]!.extra).toStrictEqual({});
    // Decoded bytes are the decoder's own, not a view of its scratch buffer that the next frame reuses.
    const kept = extra['bytes'] as Uint8Array;
    roundTrip([{ kind: 'page_added', pageId: 'z', sourceId: 's', extra: { bytes: new Uint8Array([9, 9, 9]) } }], new FrameEncoder(), decoder);
    expect([...kept]).toEqual([1, 2, 3]);
  });

  it.each([
    ['a Date', { when: new Date(0) }, 'events[1].extra.when'],
    ['a Set', { s: new Set([1]) }, 'events[1].extra.s'],
    ['a nested function', { a: [{ f: () => 1 }] }, 'events[1].extra.a[0].f'],
    ['a class instance as extra', new (class Thing {})(), 'events[1].extra'],
  ])('refuses extra holding %s (ValidationError naming it) instead of changing it in transit', (_what, extra, field) => {
    const encoder = new FrameEncoder();
    const ok: PageChangeEvent = { kind: 'page_added', pageId: 'a', sourceId: 's', extra: { v: 1 } };
    let error: unknown;
    try {
      encoder.encodeEvents(1, null, [ok, { ...ok, extra: extra as Record<string, unknown> }]);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(field);
    expect(roundTrip([ok], encoder)).toStrictEqual([ok]);
  });

  it('handles large batches and strings: 70,000 events, a 3 MB editDiff, frames larger than the encoder slab', () => {
    const many = Array.from({ length: 70_000 }, (_, i): PageChangeEvent => ({ kind: 'page_added', pageId: `p${i}`, sourceId: `s${i % 300}`, extra: { value: i } }));
    expect(roundTrip(many)).toStrictEqual(many);
    const big: PageChangeEvent[] = [
      { kind: 'page_replaced', pageId: 'x'.repeat(70_000), sourceId: 's', related: ['é'.repeat(40_000)], editDiff: '😀'.repeat(800_000), extra: { blob: 'ab'.repeat(100_000) } },
    ];
    expect(roundTrip(big)).toStrictEqual(big);
  });

  it('frames stay valid after later encodes (each is its own bytes)', () => {
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const batches = Array.from({ length: 300 }, (_, b) => Array.from({ length: 20 }, (_, i): PageChangeEvent => ({ kind: 'page_added', pageId: `b${b}-${i}`, sourceId: 's', reason: 'r'.repeat(b) })));
    const frames = batches.map((batch) => encoder.encodeEvents(1, null, batch));
    frames.forEach((frame, b) => expect(readEvents(decoder.decode(frame)[2])).toStrictEqual(batches[b]));
  });

  it('is plain msgpack: one value per frame, [tag, meta, columns], readable by any msgpack decoder', () => {
    const frame = new FrameEncoder().encodeEvents(7, { cause: 'sub' }, [
      { kind: 'page_replaced', pageId: 'new', sourceId: 'file:/r', related: ['old'], ts: 1_795_312_028_434 },
      { kind: 'page_invalidated', pageId: 'p', sourceId: 'file:/r', reason: 'gone', ts: 1_795_312_028_435 },
    ]);
    const values = unpackMultiple(Buffer.from(frame)) as unknown[];
    expect(values).toHaveLength(1);
    const [tag, meta, payload] = values[0] as [number, unknown, unknown[]];
    expect(tag).toBe(7);
    expect(meta).toEqual({ cause: 'sub' });
    expect(payload[0]).toBe(2);
    // The decoded structure is all a reader needs: readEvents works on any decoder's output.
    expect(readEvents(payload)).toStrictEqual([
      { kind: 'page_replaced', pageId: 'new', sourceId: 'file:/r', related: ['old'], ts: 1_795_312_028_434 },
      { kind: 'page_invalidated', pageId: 'p', sourceId: 'file:/r', reason: 'gone', ts: 1_795_312_028_435 },
    ]);
  });

  it('decodes from a shared view that the ring may overwrite right after', () => {
    const events: PageChangeEvent[] = [{ kind: 'page_added', pageId: 'file:src/a.ts', sourceId: 'file:/repo', extra: { relativePath: 'src/a.ts' } }];
    const view = shared(new FrameEncoder().encodeEvents(1, null, events));
    const frame = new FrameDecoder().decode(view);
    view.fill(0);
    expect(readEvents(frame[2])).toStrictEqual(events);
  });

  it.each([
    [{ kind: 'page_exploded', pageId: 'a', sourceId: 's' }, 'events[1].kind'],
    [{ kind: 'page_added', pageId: 42, sourceId: 's' }, 'events[1].pageId'],
    [{ kind: 'page_added', pageId: 'a' }, 'events[1].sourceId'],
    [{ kind: 'page_added', pageId: 'a', sourceId: 's', dataType: 5 }, 'events[1].dataType'],
    [{ kind: 'page_added', pageId: 'a', sourceId: 's', related: 'b' }, 'events[1].related'],
    [{ kind: 'page_added', pageId: 'a', sourceId: 's', related: ['b', 3] }, 'events[1].related[1]'],
    [{ kind: 'page_added', pageId: 'a', sourceId: 's', extra: [1] }, 'events[1].extra'],
    [{ kind: 'page_added', pageId: 'a', sourceId: 's', ts: '1' }, 'events[1].ts'],
    [null, 'events[1]'],
  ])('refuses %j with ValidationError naming %s, and the encoder stays usable', (bad, field) => {
    const encoder = new FrameEncoder();
    const good: PageChangeEvent = { kind: 'page_added', pageId: 'ok', sourceId: 's' };
    expect(() => encoder.encodeEvents(1, null, [good, bad as PageChangeEvent])).toThrow(expect.objectContaining({ name: 'ValidationError', code: 'CONVERGE_VALIDATION', field }));
    expect(() => encoder.encodeEvents(1, null, [good, bad as PageChangeEvent])).toThrow(ValidationError);
    expect(roundTrip([good], encoder)).toStrictEqual([good]);
  });

  it('treats null optional fields as absent, as eventToTuple does', () => {
    const withNulls = { kind: 'page_added', pageId: 'a', sourceId: 's', dataType: null, extra: null, ts: null } as unknown as PageChangeEvent;
    expect(roundTrip([withNulls])).toStrictEqual([{ kind: 'page_added', pageId: 'a', sourceId: 's' }]);
  });
});

describe('FrameDecoder and readEvents on bad input', () => {
  const decoder = new FrameDecoder();
  const packr = new Packr({ useRecords: false });
  const good = new FrameEncoder().encodeEvents(1, null, [{ kind: 'page_added', pageId: 'a', sourceId: 's', related: ['b'], extra: { v: 'x' } }]);
  const payload = (): unknown[] => structuredClone(unpack(Buffer.from(good)) as unknown[])[2] as unknown[];

  it('a frame that is not msgpack, truncated, or not a tagged array → ProtocolError', () => {
    for (const bytes of [new Uint8Array([0xc1]), good.subarray(0, good.length - 3), packr.pack({ not: 'an array' }), packr.pack(['tag?'])]) {
      expect(() => decoder.decode(shared(bytes))).toThrow(ProtocolError);
    }
  });

  it('corrupt event columns → ProtocolError, never wrong events', () => {
    const corruptions: ((p: unknown[]) => void)[] = [
      (p) => p.pop(),
      (p) => (p[0] = -1),
      (p) => (p[2] = [1, 2]),
      (p) => (p[3] = 99),
      (p) => (p[1] = 42),
      (p) => (p[1] = [7]),
      (p) => (p[14] = 'x'),
      (p) => (p[14] = `${p[14] as string}extra`),
      (p) => (p[10] = [[5, 'x']]),
      (p) => (p[13] = 'not a list'),
    ];
    for (const corrupt of corruptions) {
      const p = payload();
      corrupt(p);
      expect(() => readEvents(p)).toThrow(ProtocolError);
    }
    expect(() => readEvents('nope')).toThrow(expect.objectContaining({ code: 'CONVERGE_PROTOCOL' }));
  });

  it('corrupt pooled dictionary columns → ProtocolError, never wrong events', () => {
    const encoder = new FrameEncoder();
    const batch = (frame: number): PageChangeEvent[] => Array.from({ length: 64 }, (_, i) => ({ kind: 'page_added', pageId: `p${i}`, sourceId: `s${frame}-${i}`, dataType: `d${frame}-${i}`, ts: 1 }));
    encoder.encodeEvents(1, null, batch(0));
    const good = encoder.encodeEvents(1, null, batch(1));
    const pooledPayload = (): unknown[] => structuredClone(unpack(Buffer.from(good)) as unknown[])[2] as unknown[];
    expect(readEvents(pooledPayload())).toStrictEqual(batch(1));
    const corruptions: ((p: unknown[]) => void)[] = [
      (p) => ((p[3] as number[][])[0]![0]! += 1), // slices no longer add up to the pool
      (p) => ((p[4] as number[][])[0]![5]! -= 1),
      (p) => ((p[3] as unknown[][])[0]![1] = 'x'),
      (p) => ((p[3] as unknown[][])[0]![1] = null), // sourceId is required
      (p) => ((p[4] as unknown[][])[0]![2] = 'x'),
      (p) => ((p[3] as unknown[][])[0]!.pop()),
      (p) => (p[4] = [[1, 2]]),
    ];
    for (const corrupt of corruptions) {
      const p = pooledPayload();
      corrupt(p);
      expect(() => readEvents(p)).toThrow(ProtocolError);
    }
  });
});

describe('tuples and generic frames', () => {
  it('eventToTuple / tupleToEvent round-trip, dropping trailing absent fields; readEvents accepts tuple arrays', () => {
    const event: PageChangeEvent = { kind: 'page_replaced', pageId: 'n', sourceId: 's', related: ['o'] };
    const tuple = eventToTuple(event);
    expect(tuple).toEqual([1, 'n', 's', null, null, ['o']]);
    expect(EVENT_FIELDS[5]).toBe('related');
    expect(tupleToEvent(tuple)).toStrictEqual(event);
    expect(readEvents([tuple, eventToTuple({ kind: 'page_added', pageId: 'a', sourceId: 's', ts: 3 })])).toStrictEqual([event, { kind: 'page_added', pageId: 'a', sourceId: 's', ts: 3 }]);
    expect(readEvents([])).toEqual([]);
    expect(() => tupleToEvent([9, 'a', 's'])).toThrow(ProtocolError);
    expect(() => tupleToEvent(['a'])).toThrow(ProtocolError);
  });

  it('a re-encoded event (a dispatch frame) arrives exactly as sent: -0, BigInt, bytes, undefined, nesting', () => {
    const event: PageChangeEvent = {
      kind: 'page_added',
      pageId: 'p',
      sourceId: 's',
      ts: 0,
      extra: { z: -0, big: -(2n ** 63n), bytes: new Uint8Array([7]), u: undefined, nested: [{ a: [NaN, -0] }], s: '😀' },
    };
    const encoder = new FrameEncoder();
    const frame = new FrameDecoder().decode(shared(encoder.encode([10, 'ep', 1, [[eventToTuple(event), [3]]]])));
    const [tuple, handles] = (frame[3] as [unknown, number[]][])[0]!;
    expect(handles).toEqual([3]);
    const back = tupleToEvent(tuple);
    expect(back).toStrictEqual(event);
    expect(Object.getPrototypeOf(back.extra!['bytes'])).toBe(Uint8Array.prototype);
  });

  it('encode/decode carries any tagged frame', () => {
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const frame = [3, 17, { id: 'sub_1', handle: 2, predicate: { dataType: ['a', 'b'] }, target: 'main' }];
    expect(decoder.decode(shared(encoder.encode(frame)))).toEqual(frame);
    expect(decoder.decode(shared(encoder.encode([6])))).toEqual([6]);
  });
});

describe('typed ingest and dispatch frames', () => {
  const encoder = new FrameEncoder();
  const decoder = new FrameDecoder();

  it('control and dispatch frames round-trip through their typed encode/decode', () => {
    const control = [
      [IngestTag.ACKS, 3, []],
      [IngestTag.SUBSCRIBE, 1, { id: 's', handle: 0, predicate: {}, target: 'main' }],
      [IngestTag.UNSUBSCRIBE, 2, ['s']],
      [IngestTag.AWAIT_QUIESCENCE, 4],
      [IngestTag.CANCEL_WAIT, 4],
      [IngestTag.QUERY, 5, 'feed', 10],
      [IngestTag.CLOSE],
    ] as const;
    for (const frame of control) expect(decoder.decodeIngest(shared(encoder.encodeIngest(frame as never)))).toEqual(frame);
    const events: PageChangeEvent[] = [{ kind: 'page_added', pageId: 'p', sourceId: 's' }];
    const [tag, meta, packed] = decoder.decodeIngest(shared(encoder.encodeEvents(IngestTag.EVENTS, { seq: 1 }, events)));
    expect([tag, meta]).toEqual([IngestTag.EVENTS, { seq: 1 }]);
    expect(readEvents(packed)).toEqual(events);
    const groups: DispatchGroup[] = [[-1, [1, 2]], [eventToTuple(events[0]!), [3]], [-(2 ** 40), [4]]];
    const { groups: words, events: tuples } = packDispatchGroups(groups);
    const dispatch = decoder.decodeDispatch(shared(encoder.encodeDispatch([DispatchTag.DISPATCH, 'ep', 7, words, tuples])));
    expect(dispatch.slice(0, 3)).toEqual([DispatchTag.DISPATCH, 'ep', 7]);
    expect(unpackDispatchGroups(dispatch)).toEqual(groups);
    const visited: unknown[] = [];
    readDispatchGroups(dispatch, (ref, handle, id) => visited.push([ref, handle, id]));
    expect(visited).toEqual([[-1, 1, 7], [-1, 2, 8], [eventToTuple(events[0]!), 3, 9], [-(2 ** 40), 4, 10]]);
  });

  it('refuses DISPATCH groups that overrun the frame or name a missing event, before running any', () => {
    const bad: [string, number[], unknown[][]][] = [
      ['a count past the end', [-1, 3, 1, 2], []],
      ['an event index with no tuple', [0, 1, 1], []],
      ['a fractional ref', [0.5, 1, 1], [[0, 'p', 's']]],
      ['a negative count', [-1, -1], []],
    ];
    for (const [what, words, tuples] of bad) {
      const bytes = new Uint8Array(new Float64Array(words).buffer);
      const frame = decoder.decodeDispatch(shared(encoder.encodeDispatch([DispatchTag.DISPATCH, 'ep', 1, bytes, tuples])));
      let calls = 0;
      expect(() => readDispatchGroups(frame, () => void calls++), what).toThrow(ProtocolError);
      expect(calls, what).toBe(0);
    }
  });

  it.each([
    ['an unknown ingest tag', [99, 1], 'ingest'],
    ['an ACKS frame without a count', [IngestTag.ACKS, 'x', []], 'ingest'],
    ['a SUBSCRIBE frame without a spec', [IngestTag.SUBSCRIBE, 1], 'ingest'],
    ['a QUERY frame without a kind', [IngestTag.QUERY, 1], 'ingest'],
    ['an EVENTS frame without events', [IngestTag.EVENTS, {}, 'x'], 'ingest'],
    ['an unknown dispatch tag', [IngestTag.ACKS, 1, []], 'dispatch'],
    ['a DISPATCH frame without groups', [DispatchTag.DISPATCH, 'ep', 1], 'dispatch'],
    ['a DISPATCH frame with groups as an array', [DispatchTag.DISPATCH, 'ep', 1, [[-1, [1]]], []], 'dispatch'],
    ['a DISPATCH frame whose groups are not whole words', [DispatchTag.DISPATCH, 'ep', 1, new Uint8Array(12), []], 'dispatch'],
  ])('%s → ProtocolError', (_what, frame, ring) => {
    const bytes = shared(encoder.encode(frame));
    expect(() => (ring === 'ingest' ? decoder.decodeIngest(bytes) : decoder.decodeDispatch(bytes))).toThrow(ProtocolError);
  });
});
