import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConvergenceDamper } from '../../src/shared/damper.js';
import type { NumericTolerance } from '../../src/shared/predicates.js';

const abs = (value: number): NumericTolerance => ({ mode: 'absolute', value });
const rel = (value: number, epsilon?: number): NumericTolerance => (epsilon === undefined ? { mode: 'relative', value } : { mode: 'relative', value, epsilon });

/** Feeds values for one (subscription, page) and returns those that would be dispatched. */
function dispatched(values: readonly unknown[], tolerance?: NumericTolerance, damper = new ConvergenceDamper()): unknown[] {
  return values.filter((v) => !damper.shouldSkip('sub', 'page', v, tolerance));
}

describe('ConvergenceDamper', () => {
  it('compares against the last value actually dispatched: 1.0, 1.4, 1.8, 2.2 with absolute 0.5 dispatches 1.0 and 1.8', () => {
    expect(dispatched([1.0, 1.4, 1.8, 2.2], abs(0.5))).toEqual([1.0, 1.8]);
  });

  it('the first value is always dispatched, and the bound is inclusive', () => {
    expect(dispatched([5, 5.5, 6.0001], abs(0.5))).toEqual([5, 6.0001]);
  });

  it('relative: |a−b| <= value · max(|a|, |b|, epsilon)', () => {
    // 105.2 vs 100: 5.2 <= 0.05 · 105.2 = 5.26 (the larger magnitude sets the scale); 106 is not.
    expect(dispatched([100, 104, 105.2, 106, 94], rel(0.05))).toEqual([100, 106, 94]);
    // At zero the scale is epsilon: tiny noise is damped, anything real is not.
    expect(dispatched([0, 1e-14, 1e-3], rel(0.5, 1e-12))).toEqual([0, 1e-3]);
    // The default epsilon is 1e-12.
    expect(dispatched([0, 4e-13, 1e-9], rel(0.5))).toEqual([0, 1e-9]);
  });

  it('booleans compare as 1 and 0', () => {
    expect(dispatched([true, true, false, 0, 1], abs(0.5))).toEqual([true, false, 1]);
  });

  it('numeric arrays compare per component (L∞), not by Euclidean distance', () => {
    expect(dispatched([[1, 2], [1.1, 2.1], [1, 2.6]], abs(0.5))).toEqual([[1, 2], [1, 2.6]]);
    // Each component moved 0.15 (L2 distance 0.21): within an absolute 0.2 under L∞.
    expect(dispatched([[0, 0], [0.15, 0.15]], abs(0.2))).toEqual([[0, 0]]);
    expect(dispatched([[100, 1], [104, 1.04], [104, 1.2]], rel(0.05))).toEqual([[100, 1], [104, 1.2]]);
    expect(dispatched([Float64Array.of(1, 2), [1.1, 2], new Int32Array([1, 2])], abs(0.5))).toHaveLength(1);
  });

  it('a shape change is never damped', () => {
    expect(dispatched([1, [1], [1, 1], [1], 1, 1], abs(10))).toEqual([1, [1], [1, 1], [1], 1]);
    expect(dispatched([[], []], abs(1))).toEqual([[]]);
  });

  it('non-numeric values are never damped and clear the reference', () => {
    expect(dispatched([1, 'one', 'one', { v: 1 }, null, undefined, [1, 'x'], 1], abs(10))).toEqual([1, 'one', 'one', { v: 1 }, null, undefined, [1, 'x'], 1]);
    const damper = new ConvergenceDamper();
    damper.shouldSkip('sub', 'page', 1, abs(1));
    expect(damper.size).toBe(1);
    expect(damper.shouldSkip('sub', 'page', 'text', abs(1))).toBe(false);
    expect(damper.size).toBe(0);
    expect(damper.shouldSkip('sub', 'page', 1.2, abs(1))).toBe(false); // fresh start after the clear
  });

  it('NaN and infinities are never within tolerance', () => {
    expect(dispatched([Number.NaN, Number.NaN, 1, Number.NaN], abs(1e9))).toHaveLength(4);
    expect(dispatched([Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, 5, Number.POSITIVE_INFINITY], rel(0.5))).toHaveLength(4);
    expect(dispatched([[1, Number.NaN], [1, Number.NaN]], abs(1))).toHaveLength(2);
  });

  it('without a tolerance it never skips, but records what was dispatched', () => {
    const damper = new ConvergenceDamper();
    expect(damper.shouldSkip('sub', 'page', 1.0)).toBe(false);
    expect(damper.shouldSkip('sub', 'page', 1.0)).toBe(false);
    expect(damper.size).toBe(1);
    expect(damper.shouldSkip('sub', 'page', 1.3, abs(0.5))).toBe(true);
    expect(damper.shouldSkip('sub', 'page', 1.6, abs(0.5))).toBe(false);
  });

  it('keeps one reference per (subscription, page)', () => {
    const damper = new ConvergenceDamper();
    expect(damper.shouldSkip('s1', 'p1', 1, abs(1))).toBe(false);
    expect(damper.shouldSkip('s1', 'p2', 1, abs(1))).toBe(false);
    expect(damper.shouldSkip('s2', 'p1', 1, abs(1))).toBe(false);
    expect(damper.shouldSkip('s1', 'p1', 1.5, abs(1))).toBe(true);
    expect(damper.size).toBe(3);
  });

  it('stores its own copy of a vector reference', () => {
    const damper = new ConvergenceDamper();
    const v = [1, 2];
    damper.shouldSkip('sub', 'page', v, abs(0.5));
    v[0] = 100;
    expect(damper.shouldSkip('sub', 'page', [1.2, 2], abs(0.5))).toBe(true);
  });

  it('reset forgets all, one subscription, one pair, or one page across subscriptions', () => {
    const damper = new ConvergenceDamper();
    const t = abs(1);
    const fill = () => {
      damper.reset();
      for (const s of ['s1', 's2']) for (const p of ['p1', 'p2']) damper.shouldSkip(s, p, 0, t);
    };
    const skips = (s: string, p: string) => damper.shouldSkip(s, p, 0.1, t);

    fill();
    damper.reset('s1', 'p1');
    expect(damper.size).toBe(3);
    expect([skips('s1', 'p1'), skips('s1', 'p2'), skips('s2', 'p1')]).toEqual([false, true, true]);

    fill();
    damper.reset('s1');
    expect(damper.size).toBe(2);
    expect([skips('s1', 'p1'), skips('s1', 'p2'), skips('s2', 'p1')]).toEqual([false, false, true]);

    fill();
    damper.reset(undefined, 'p2');
    expect(damper.size).toBe(2);
    expect([skips('s1', 'p2'), skips('s2', 'p2'), skips('s2', 'p1')]).toEqual([false, false, true]);

    fill();
    damper.reset();
    expect(damper.size).toBe(0);
    expect(skips('s2', 'p2')).toBe(false);
  });

  it('forgetSubscription frees a removed subscription’s references', () => {
    const damper = new ConvergenceDamper();
    for (let i = 0; i < 100; i++) damper.shouldSkip('gone', `p${i}`, i, abs(1));
    damper.shouldSkip('kept', 'p0', 0, abs(1));
    damper.forgetSubscription('gone');
    expect(damper.size).toBe(1);
    expect(damper.shouldSkip('gone', 'p0', 0, abs(1))).toBe(false);
    expect(damper.shouldSkip('kept', 'p0', 0, abs(1))).toBe(true);
  });

  describe('properties', () => {
    // Bounds a failing run's shrinking: a property that found a bug must report it, not spin for minutes.
    const limits = { plugins: [fc.interruptAfterTimeLimit(20_000)] };
    const toleranceArb: fc.Arbitrary<NumericTolerance> = fc.oneof(
      fc.double({ min: 1e-3, max: 10, noNaN: true }).map(abs),
      fc.double({ min: 1e-3, max: 0.5, noNaN: true }).map((v) => rel(v)),
    );
    const within = (a: number, b: number, t: NumericTolerance) =>
      t.mode === 'absolute' ? Math.abs(a - b) <= t.value : Math.abs(a - b) <= t.value * Math.max(Math.abs(a), Math.abs(b), t.epsilon ?? 1e-12);
    /**
     * A random walk whose steps are between -2 and 2 tolerances, so that values land inside and
     * outside the band of the last dispatched value about equally often (uniform random values would
     * almost never be within tolerance of each other, and the property would test nothing).
     */
    const walk = (t: NumericTolerance, start: number, steps: readonly number[]): number[] => {
      const out = [start];
      let v = start;
      for (const step of steps) {
        v += (step / 10) * t.value * (t.mode === 'absolute' ? 1 : Math.max(Math.abs(v), 1));
        out.push(v);
      }
      return out;
    };
    const stepsArb = fc.array(fc.integer({ min: -20, max: 20 }), { minLength: 1, maxLength: 60 });

    it('no value more than the tolerance away from the last dispatched one is ever skipped, and every skip is within it', () => {
      fc.assert(
        fc.property(toleranceArb, fc.integer({ min: -1000, max: 1000 }), stepsArb, (tolerance, start, steps) => {
          const damper = new ConvergenceDamper();
          let last: number | undefined;
          for (const value of walk(tolerance, start, steps)) {
            const skipped = damper.shouldSkip('sub', 'page', value, tolerance);
            if (last === undefined) expect(skipped).toBe(false);
            else expect(skipped).toBe(within(last, value, tolerance));
            if (!skipped) last = value;
          }
        }),
        { numRuns: 1000, ...limits },
      );
    });

    it('slow drift cannot hide: a monotone walk in small steps is dispatched at least every time it leaves the band', () => {
      fc.assert(
        fc.property(fc.double({ min: 0.01, max: 5, noNaN: true }), fc.array(fc.integer({ min: 0, max: 10 }), { minLength: 1, maxLength: 100 }), (band, steps) => {
          const damper = new ConvergenceDamper();
          let value = 0;
          let last = Number.NaN;
          for (const step of steps) {
            value += (step / 10) * band; // every step is within the tolerance of the previous value
            if (!damper.shouldSkip('sub', 'page', value, abs(band))) last = value;
            expect(Math.abs(value - last)).toBeLessThanOrEqual(band);
          }
        }),
        { numRuns: 500, ...limits },
      );
    });

    it('vectors: a vector is skipped exactly when every component is within the tolerance of the last dispatched one', () => {
      fc.assert(
        fc.property(toleranceArb, fc.array(fc.tuple(stepsArb, fc.integer({ min: -100, max: 100 })), { minLength: 3, maxLength: 3 }), (tolerance, components) => {
          const walks = components.map(([steps, start]) => walk(tolerance, start, steps));
          const length = Math.min(...walks.map((w) => w.length));
          const damper = new ConvergenceDamper();
          let last: number[] | undefined;
          for (let i = 0; i < length; i++) {
            const value = walks.map((w) => w[i]!);
            const skipped = damper.shouldSkip('sub', 'page', value, tolerance);
            const close = last !== undefined && value.every((x, c) => within(last![c]!, x, tolerance));
            expect(skipped).toBe(close);
            if (!skipped) last = value;
          }
        }),
        { numRuns: 500, ...limits },
      );
    });
  });
});
