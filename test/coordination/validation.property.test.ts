/**
 * The submit hot path skips the schema for inputs its inline check accepts; that check must never
 * accept what the schema refuses. Ids must sort in creation order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SubmitTaskSchema, isPlainHolderOptions, isPlainSubmitInput, HolderOptionsSchema } from '../../src/coordination/schemas.js';
import { newId } from '../../src/coordination/ids.js';

const anyValue = fc.oneof(fc.anything(), fc.integer({ min: -(2 ** 32), max: 2 ** 32 }), fc.double(), fc.string({ maxLength: 300 }), fc.constant(null), fc.constant(undefined));
const submitLike = fc.record(
  {
    id: anyValue,
    payload: fc.anything(),
    poolId: anyValue,
    topic: anyValue,
    requiredCapabilities: fc.oneof(fc.array(anyValue, { maxLength: 3 }), anyValue),
    priority: anyValue,
    claimTtlMs: anyValue,
  },
  { requiredKeys: [] },
);

describe('inline validation agrees with the schemas', () => {
  it('isPlainSubmitInput accepts nothing SubmitTaskSchema refuses', () => {
    fc.assert(
      fc.property(fc.oneof(submitLike, anyValue), (input) => {
        if (isPlainSubmitInput(input)) expect(SubmitTaskSchema.safeParse(input).success).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('isPlainHolderOptions accepts nothing HolderOptionsSchema refuses', () => {
    fc.assert(
      fc.property(fc.oneof(fc.record({ fencingToken: anyValue }, { requiredKeys: [] }), anyValue), (input) => {
        if (isPlainHolderOptions(input)) expect(HolderOptionsSchema.safeParse(input).success).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts the common valid inputs without the schema', () => {
    expect(isPlainSubmitInput({ payload: 1 })).toBe(true);
    expect(isPlainSubmitInput({ id: 'x', payload: {}, poolId: null, topic: 't', requiredCapabilities: ['a'], priority: -3, claimTtlMs: 10 })).toBe(true);
    expect(isPlainHolderOptions({ fencingToken: 3 })).toBe(true);
  });
});

describe('newId', () => {
  it('sorts in creation order, within and across milliseconds', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 2, maxLength: 200 }), (steps) => {
        let now = 1_700_000_000_000;
        const ids = steps.map((step) => newId('task', (now += step)));
        expect([...ids].sort()).toEqual(ids);
        expect(new Set(ids).size).toBe(ids.length);
      }),
    );
  });
});
