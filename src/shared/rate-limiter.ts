/**
 * The write rate limiter (DESIGN §2, §3): a token bucket per key (the engine uses `page:<id>`), so a
 * page that changes in a tight loop cannot flood its subscribers.
 */
import { ownString } from './own-string.js';

/** Options of {@link WriteRateLimiter}. */
export interface WriteRateLimiterOptions {
  /** Time for one token to refill, in ms; > 0. Default 1000. */
  minIntervalMs?: number;
  /** Bucket capacity: how many writes may pass back to back after a quiet period; an integer >= 1. Default 1. */
  burst?: number;
  /** Clock used when `allow` / `nextAllowedAt` get no explicit time. Default `Date.now`. */
  now?: () => number;
}

/** Every this many stored keys (at least), idle full buckets are swept. */
const MIN_SWEEP_THRESHOLD = 1024;

/**
 * Token bucket per key: capacity `burst`, one token back every `minIntervalMs`, continuously.
 *
 * Implemented as GCRA (the "virtual scheduling" form of the same bucket): per key only the
 * theoretical arrival time `tat` is stored — the instant at which the bucket would be full again.
 * A write at `now` passes iff `tat − now <= (burst − 1) · minIntervalMs`, and then pushes `tat` one
 * interval further. This is exactly a continuously refilling token bucket, but with integer clocks it
 * is exact (no fractional tokens accumulating rounding error) and needs one number per key.
 *
 * Memory: a key whose bucket is full again (`tat <= now`) is indistinguishable from a key never seen,
 * so it is dropped — on its next access, and by an amortised sweep whenever the number of stored keys
 * doubles. Keys held are therefore bounded by those written within the last `burst · minIntervalMs`.
 *
 * A clock that goes backwards never grants extra tokens: `tat` only moves forward.
 */
export class WriteRateLimiter {
  readonly #intervalMs: number;
  /** How far ahead of `now` the theoretical arrival time may be and a write still pass. */
  readonly #toleranceMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #tat = new Map<string, number>();
  #sweepAt = MIN_SWEEP_THRESHOLD;

  constructor(options: WriteRateLimiterOptions = {}) {
    const minIntervalMs = options.minIntervalMs ?? 1000;
    const burst = options.burst ?? 1;
    if (typeof minIntervalMs !== 'number' || !Number.isFinite(minIntervalMs) || minIntervalMs <= 0) {
      throw new RangeError(`WriteRateLimiter: minIntervalMs must be a finite number > 0, got ${String(minIntervalMs)}`);
    }
    if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1) {
      throw new RangeError(`WriteRateLimiter: burst must be an integer >= 1, got ${String(burst)}`);
    }
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new RangeError('WriteRateLimiter: now must be a function returning epoch milliseconds');
    }
    this.#intervalMs = minIntervalMs;
    this.#burst = burst;
    this.#toleranceMs = (burst - 1) * minIntervalMs;
    this.#now = options.now ?? Date.now;
  }

  /** The refill interval in ms. */
  get minIntervalMs(): number {
    return this.#intervalMs;
  }

  /** The bucket capacity. */
  get burst(): number {
    return this.#burst;
  }

  /** Number of keys whose bucket is not known to be full (memory held). */
  get size(): number {
    return this.#tat.size;
  }

  /** Takes a token for `key` if one is available at `nowMs`; returns whether the write may pass. */
  allow(key: string, nowMs: number = this.#now()): boolean {
    const stored = this.#tat.get(key);
    const tat = stored === undefined || stored < nowMs ? nowMs : stored;
    if (tat - nowMs > this.#toleranceMs) return false;
    if (stored === undefined) {
      if (this.#tat.size >= this.#sweepAt) this.#sweep(nowMs);
      // A new key is kept up to burst · minIntervalMs: a copy of its own, so that a page id sliced
      // out of a frame's string pool does not keep the whole pool alive (see own-string.ts).
      this.#tat.set(ownString(key), tat + this.#intervalMs);
    } else {
      this.#tat.set(key, tat + this.#intervalMs);
    }
    return true;
  }

  /**
   * The earliest time (epoch ms, >= `nowMs`) at which `allow(key)` will pass; `nowMs` itself when it
   * would pass now. The convergence worker schedules a trailing delivery for that instant.
   */
  nextAllowedAt(key: string, nowMs: number = this.#now()): number {
    const stored = this.#tat.get(key);
    if (stored === undefined) return nowMs;
    if (stored <= nowMs) {
      this.#tat.delete(key); // full again: same as never seen
      return nowMs;
    }
    return Math.max(nowMs, stored - this.#toleranceMs);
  }

  /** Refills one key's bucket, or every bucket when called without a key. */
  reset(key?: string): void {
    if (key === undefined) {
      this.#tat.clear();
      this.#sweepAt = MIN_SWEEP_THRESHOLD;
    } else {
      this.#tat.delete(key);
    }
  }

  /** Drops every key whose bucket is full at `nowMs`; returns how many were dropped. */
  sweep(nowMs: number = this.#now()): number {
    return this.#sweep(nowMs);
  }

  #sweep(nowMs: number): number {
    let dropped = 0;
    for (const [key, tat] of this.#tat) {
      if (tat <= nowMs) {
        this.#tat.delete(key);
        dropped++;
      }
    }
    // Amortised O(1) per insert: the next sweep waits until the live set has doubled.
    this.#sweepAt = Math.max(MIN_SWEEP_THRESHOLD, this.#tat.size * 2);
    return dropped;
  }
}
