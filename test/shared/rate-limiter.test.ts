import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WriteRateLimiter } from '../../src/shared/rate-limiter.js';

describe('WriteRateLimiter', () => {
  it('defaults to one write per 1000 ms (burst 1)', () => {
    const limiter = new WriteRateLimiter();
    expect(limiter.minIntervalMs).toBe(1000);
    expect(limiter.burst).toBe(1);
    expect(limiter.allow('page:a', 0)).toBe(true);
    expect(limiter.allow('page:a', 1)).toBe(false);
    expect(limiter.allow('page:a', 999)).toBe(false);
    expect(limiter.allow('page:a', 1000)).toBe(true);
    expect(limiter.allow('page:a', 1500)).toBe(false);
    expect(limiter.allow('page:a', 2000)).toBe(true);
  });

  it('burst lets that many writes through back to back, then refills one token per interval', () => {
    const limiter = new WriteRateLimiter({ minIntervalMs: 1000, burst: 4 });
    expect([0, 0, 0, 0, 0].map(() => limiter.allow('k', 0))).toEqual([true, true, true, true, false]);
    expect(limiter.allow('k', 999)).toBe(false);
    expect(limiter.allow('k', 1000)).toBe(true);
    expect(limiter.allow('k', 1000)).toBe(false);
    // A long pause refills the bucket to `burst`, never beyond.
    expect(Array.from({ length: 6 }, () => limiter.allow('k', 60_000))).toEqual([true, true, true, true, false, false]);
  });

  it('refills continuously: half an interval twice is one token', () => {
    const limiter = new WriteRateLimiter({ minIntervalMs: 1000, burst: 2 });
    expect(limiter.allow('k', 0)).toBe(true);
    expect(limiter.allow('k', 0)).toBe(true);
    expect(limiter.allow('k', 500)).toBe(false);
    expect(limiter.allow('k', 1000)).toBe(true);
  });

  it('keys are independent', () => {
    const limiter = new WriteRateLimiter();
    expect(limiter.allow('page:a', 0)).toBe(true);
    expect(limiter.allow('page:b', 0)).toBe(true);
    expect(limiter.allow('page:a', 0)).toBe(false);
  });

  it('uses the injected clock when no time is passed', () => {
    let now = 10_000;
    const limiter = new WriteRateLimiter({ minIntervalMs: 100, now: () => now });
    expect(limiter.allow('k')).toBe(true);
    expect(limiter.allow('k')).toBe(false);
    expect(limiter.nextAllowedAt('k')).toBe(10_100);
    now += 100;
    expect(limiter.allow('k')).toBe(true);
  });

  it('nextAllowedAt is the exact instant the next write passes', () => {
    const limiter = new WriteRateLimiter({ minIntervalMs: 1000, burst: 3 });
    expect(limiter.nextAllowedAt('k', 5)).toBe(5); // nothing seen: now
    for (let i = 0; i < 3; i++) limiter.allow('k', 100);
    expect(limiter.nextAllowedAt('k', 100)).toBe(1100);
    expect(limiter.nextAllowedAt('k', 700)).toBe(1100);
    expect(limiter.allow('k', 1099)).toBe(false);
    expect(limiter.allow('k', 1100)).toBe(true);
    expect(limiter.nextAllowedAt('k', 1100)).toBe(2100);
    expect(limiter.nextAllowedAt('k', 5000)).toBe(5000);
  });

  it('a clock that goes backwards grants no extra writes', () => {
    const limiter = new WriteRateLimiter({ minIntervalMs: 1000 });
    expect(limiter.allow('k', 5000)).toBe(true);
    expect(limiter.allow('k', 0)).toBe(false);
    expect(limiter.allow('k', 5999)).toBe(false);
    expect(limiter.allow('k', 6000)).toBe(true);
  });

  it('reset(key) refills one bucket; reset() refills all', () => {
    const limiter = new WriteRateLimiter();
    limiter.allow('a', 0);
    limiter.allow('b', 0);
    limiter.reset('a');
    expect(limiter.allow('a', 1)).toBe(true);
    expect(limiter.allow('b', 1)).toBe(false);
    limiter.reset();
    expect(limiter.size).toBe(0);
    expect(limiter.allow('a', 2)).toBe(true);
    expect(limiter.allow('b', 2)).toBe(true);
  });

  it('rejects minIntervalMs <= 0 and burst < 1 (or non-finite, or fractional) with a RangeError naming the option', () => {
    for (const minIntervalMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '10' as never]) {
      expect(() => new WriteRateLimiter({ minIntervalMs })).toThrow(RangeError);
      expect(() => new WriteRateLimiter({ minIntervalMs })).toThrow(/minIntervalMs/);
    }
    for (const burst of [0, -1, 0.5, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new WriteRateLimiter({ burst })).toThrow(RangeError);
      expect(() => new WriteRateLimiter({ burst })).toThrow(/burst/);
    }
    expect(() => new WriteRateLimiter({ minIntervalMs: 0.5, burst: 1 })).not.toThrow();
  });

  it('holds no memory for keys whose bucket is full again', () => {
    const limiter = new WriteRateLimiter({ minIntervalMs: 10, burst: 2 });
    limiter.allow('k', 0);
    expect(limiter.size).toBe(1);
    expect(limiter.nextAllowedAt('k', 10)).toBe(10); // full again at 10: dropped on access
    expect(limiter.size).toBe(0);

    // A stream of distinct keys over time keeps only the recent ones.
    for (let t = 0; t < 20_000; t++) limiter.allow(`page:${t}`, t);
    expect(limiter.size).toBeLessThanOrEqual(2048);
    expect(limiter.sweep(20_008)).toBeGreaterThan(0); // page:19999 (full again at 20_009) is kept
    expect(limiter.size).toBe(1);
    limiter.sweep(20_009);
    expect(limiter.size).toBe(0);
  });

  it('property: forgetting full buckets (two generations, survivors carried) never changes a decision while the clock goes back at most minIntervalMs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.tuple(fc.integer({ min: -120, max: 200 }), fc.integer({ min: 0, max: 6 }), fc.boolean()), { maxLength: 200 }),
        (interval, burst, steps) => {
          const limiter = new WriteRateLimiter({ minIntervalMs: interval, burst });
          // Reference: the same GCRA with every key kept forever.
          const tats = new Map<string, number>();
          let now = 1_000;
          let latest = now;
          for (const [gap, k, ask] of steps) {
            // The clock may go backwards too, by up to one interval behind the latest time.
            now = Math.max(now + gap, latest - interval);
            latest = Math.max(latest, now);
            const key = `page:${k}`;
            const stored = tats.get(key);
            const tat = stored === undefined || stored < now ? now : stored;
            const pass = tat - now <= (burst - 1) * interval;
            if (ask) {
              expect(limiter.nextAllowedAt(key, now)).toBe(pass ? now : Math.max(now, tat - (burst - 1) * interval));
            }
            expect(limiter.allow(key, now)).toBe(pass);
            if (pass) tats.set(key, tat + interval);
          }
        },
      ),
      { numRuns: 1000, plugins: [fc.interruptAfterTimeLimit(20_000)] },
    );
  });

  it('keeps only keys written once within the last four intervals, whatever the burst', () => {
    const limiter = new WriteRateLimiter({ minIntervalMs: 100, burst: 4 });
    for (let t = 0; t < 10_000; t++) {
      limiter.allow(`page:${t}`, t);
      // Was up to 8 · burst · interval (3,200 here) with generations of 2 · burst · interval.
      expect(limiter.size).toBeLessThanOrEqual(4 * 100 + 1);
    }
    // A long pause: everything held is full again, and goes at the next write.
    limiter.allow('late', 20_000);
    expect(limiter.size).toBe(1);
  });

  it('property: decisions equal an exact token bucket (capacity burst, one token per interval)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.constantFrom('a', 'b')), { maxLength: 80 }),
        (interval, burst, steps) => {
          const limiter = new WriteRateLimiter({ minIntervalMs: interval, burst });
          // Reference: tokens scaled by `interval` so integer times keep it exact.
          const buckets = new Map<string, { scaled: number; at: number }>();
          let now = 0;
          for (const [gap, key] of steps) {
            now += gap;
            const b = buckets.get(key) ?? { scaled: burst * interval, at: now };
            b.scaled = Math.min(burst * interval, b.scaled + (now - b.at));
            b.at = now;
            const expected = b.scaled >= interval;
            if (expected) b.scaled -= interval;
            buckets.set(key, b);
            const next = limiter.nextAllowedAt(key, now);
            expect(next === now).toBe(expected);
            expect(limiter.allow(key, now)).toBe(expected);
            if (!expected) {
              // …and the promised instant really is the first one that passes.
              expect(next).toBe(now + (interval - b.scaled));
            }
          }
        },
      ),
      { numRuns: 1000, plugins: [fc.interruptAfterTimeLimit(20_000)] },
    );
  });
});
