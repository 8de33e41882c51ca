/**
 * Bad input through the engine: refused whole with an error naming the field, nothing written,
 * nothing changed in transit (issue 7 §3).
 */
import { describe, expect, it } from 'vitest';
import { FrameTooLargeError, PageChange, type PageChangeEvent, RingFullError, ValidationError } from '../../src/main/index.js';
import { useEngines } from '../helpers/engines.js';

const engine = useEngines();

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a refusal');
}

const event = (i: number, extra?: Record<string, unknown>): PageChangeEvent => PageChange.added(`p${i}`, { sourceId: 'test', dataType: 'doc', ts: 1, ...(extra === undefined ? {} : { extra }) });

describe('engine input', () => {
  it("onFull 'throw': a batch larger than the ring goes in whole or not at all (a retry duplicates nothing)", async () => {
    const e = await engine({ ringBytes: 64 * 1024, onFull: 'throw' });
    const received: string[] = [];
    await e.subscribe({ predicate: { dataType: 'doc' }, handler: (ev) => void received.push(ev.pageId) });
    const batch = Array.from({ length: 20_000 }, (_, i) => event(i));
    expect(await refusal(e.dispatchChange(batch))).toBeInstanceOf(RingFullError);
    const report = await e.waitForQuiescence({ timeoutMs: 20_000 });
    expect(report?.counters.eventsReceived ?? 0).toBe(0);
    expect((await e.getStatus()).counters.eventsReceived).toBe(0);
    expect(received).toEqual([]);
    // A batch that fits still goes in whole.
    await e.dispatchChange(batch.slice(0, 500));
    await e.waitForQuiescence({ timeoutMs: 20_000 });
    expect(received).toHaveLength(500);
  });

  it('an event too large for the ring is refused naming its index, nothing of the batch written', async () => {
    const e = await engine({ ringBytes: 64 * 1024 });
    const batch = [event(0), event(1), event(2, { blob: 'x'.repeat(100_000) }), event(3)];
    const error = await refusal(e.dispatchChange(batch));
    expect(error).toBeInstanceOf(FrameTooLargeError);
    expect(error).toMatchObject({ code: 'CONVERGE_FRAME_TOO_LARGE', field: 'events[2]' });
    await e.waitForQuiescence({ timeoutMs: 20_000 });
    expect((await e.getStatus()).counters.eventsReceived).toBe(0);
  });

  it('non-plain extra and lone surrogates are refused naming the field, nothing written', async () => {
    const e = await engine();
    const cases: [PageChangeEvent[], string][] = [
      [[event(0), { ...event(1), extra: { tags: new Set(['a']) } }], 'events[1].extra.tags'],
      [[event(0), { ...event(1), extra: { nested: { f: () => 1 } } }], 'events[1].extra.nested.f'],
      [[{ ...event(0), pageId: 'a\ud800' }], 'events[0].pageId'],
    ];
    for (const [batch, field] of cases) {
      const error = await refusal(e.dispatchChange(batch));
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field).toBe(field);
    }
    await e.waitForQuiescence({ timeoutMs: 20_000 });
    expect((await e.getStatus()).counters.eventsReceived).toBe(0);
  });
});

describe('accepted as DESIGN types it', () => {
  it('a page_replaced without related (DESIGN: related?) is a page replaced in place: delivered, damped', async () => {
    const e = await engine();
    const values: number[] = [];
    await e.subscribe({ predicate: { dataType: 'metric' }, tolerance: { mode: 'absolute', value: 0.5 }, handler: (ev) => void values.push(ev.extra!['value'] as number) });
    const metric = (value: number, ts: number): PageChangeEvent => ({ kind: 'page_replaced', pageId: 'cpu', sourceId: 'test', dataType: 'metric', ts, extra: { value } });
    // Event times far apart: the rate limiter lets each through; the damper decides.
    await e.dispatchChange([1.0, 1.4, 1.8, 2.2].map((v, i) => metric(v, 10_000 * (i + 1))));
    const report = await e.waitForQuiescence({ timeoutMs: 20_000 });
    expect(report?.counters.eventsReceived).toBe(4);
    expect(values).toEqual([1.0, 1.8]);
    expect(report?.counters.dispatchesDamped).toBe(2);
  });
});

describe('nothing changed in transit', () => {
  it('extra arrives exactly as sent on the direct path and on the rate-limited (re-encoded) path', async () => {
    const e = await engine({ rateLimit: { minIntervalMs: 1000, burst: 1, trailing: true } });
    const got: PageChangeEvent[] = [];
    await e.subscribe({ predicate: { dataType: 'doc' }, handler: (ev) => void got.push(ev) });
    const extra = (n: number): Record<string, unknown> => ({
      n,
      z: -0,
      nan: NaN,
      big: 2n ** 64n - 1n,
      bytes: new Uint8Array([1, 2, n]),
      nothing: undefined,
      nested: { list: [1, 'two', null, { deep: -0 }] },
      text: 'é😀',
    });
    // Same page, same event time: the second is limited and delivered later as a trailing delivery.
    const first = { ...event(0, extra(1)), ts: 1_000 };
    const second = { ...event(0, extra(2)), ts: 1_000 };
    await e.dispatchChange([first, second]);
    const report = await e.waitForQuiescence({ timeoutMs: 20_000 });
    expect(report?.counters.dispatchesDeferred).toBe(1);
    expect(got).toHaveLength(2);
    expect(got[0]).toStrictEqual(first);
    expect(got[1]).toStrictEqual(second);
    expect(got[1]).not.toBe(second); // it was re-encoded, not referred to
    expect(Object.getPrototypeOf(got[1]!.extra!['bytes'])).toBe(Uint8Array.prototype);
    expect(Object.is(got[1]!.extra!['z'], -0)).toBe(true);
  });
});
