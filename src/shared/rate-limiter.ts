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
 * so it may be dropped. Keys live in two generations of 2 I each (I = `minIntervalMs`): the current
 * one takes every write; at each rotation it becomes the previous one, and of the old previous one
 * only the keys with `tat > now − I` are carried over. A key written once (the common case in a
 * storm of distinct pages) has `tat = t + I` and is never carried, so a stream of such keys holds
 * only those of the last 4 I, whatever the burst. Decisions are exact as long as the clock never goes
 * back more than I behind the latest time it was given. (Generations of 2 · burst · I dropped whole
 * held up to 8 · burst · I of keys: ~16 s of distinct pages at the engine's defaults, most of a 2 M
 * event backlog; a sweep over every key whenever their number doubled cost ~40 % of the limiter
 * under issue 10's ingest mix.)
 *
 * A clock that goes backwards never grants extra tokens: `tat` only moves forward.
 */
export class WriteRateLimiter {
  readonly #intervalMs: number;
  /** How far ahead of `now` the theoretical arrival time may be and a write still pass. */
  readonly #toleranceMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  /** A generation's length: two `minIntervalMs`. */
  readonly #generationMs: number;
  /** How far the clock may go back with decisions still exact: one `minIntervalMs`. */
  readonly #slackMs: number;
  /** The generation that takes writes, and the one before it (see the class comment). */
  #tat = new Map<string, number>();
  #previous = new Map<string, number>();
  /** Clock time at which the generations rotate next. */
  #rotateAt = -Infinity;

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
    this.#generationMs = 2 * minIntervalMs;
    this.#slackMs = minIntervalMs;
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
    return this.#tat.size + this.#previous.size;
  }

  /** Takes a token for `key` if one is available at `nowMs`; returns whether the write may pass. */
  allow(key: string, nowMs: number = this.#now()): boolean {
    if (nowMs >= this.#rotateAt) this.#rotate(nowMs);
    const stored = this.#stored(key);
    const tat = stored === undefined || stored < nowMs ? nowMs : stored;
    if (tat - nowMs > this.#toleranceMs) return false;
    // A key new to the current generation is stored as a copy of its own, so that a page id sliced
    // out of a frame's string pool does not keep the whole pool alive (see own-string.ts); an
    // existing entry keeps the key it was stored with.
    this.#tat.set(stored === undefined ? ownString(key) : key, tat + this.#intervalMs);
    return true;
  }

  /** The key's `tat`, moved into the current generation if it was in the previous one. */
  #stored(key: string): number | undefined {
    const stored = this.#tat.get(key);
    if (stored !== undefined || this.#previous.size === 0) return stored;
    const old = this.#previous.get(key);
    if (old !== undefined) {
      this.#previous.delete(key);
      this.#tat.set(ownString(key), old);
    }
    return old;
  }

  /**
   * Starts a new generation: the current one becomes the previous one, and of the old previous one
   * only the keys whose bucket may not be full yet (`tat` after `nowMs − slack`) are carried over —
   * rarely any in a storm of distinct pages, whose keys are written once.
   */
  #rotate(nowMs: number): void {
    const old = this.#previous;
    const current = this.#tat;
    // A whole generation late (a pause), the current generation is as old as the previous one.
    const late = nowMs >= this.#rotateAt + this.#generationMs;
    const previous = (this.#previous = late ? new Map() : current);
    this.#tat = new Map();
    const horizon = nowMs - this.#slackMs;
    const carry = (from: Map<string, number>): void => {
      for (const [key, tat] of from) if (tat > horizon && !previous.has(key)) previous.set(key, tat);
    };
    carry(old);
    if (late) carry(current);
    this.#rotateAt = nowMs + this.#generationMs;
  }

  /**
   * The earliest time (epoch ms, >= `nowMs`) at which `allow(key)` will pass; `nowMs` itself when it
   * would pass now. The convergence worker schedules a trailing delivery for that instant.
   */
  nextAllowedAt(key: string, nowMs: number = this.#now()): number {
    const stored = this.#stored(key);
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
      this.#tat = new Map();
      this.#previous = new Map();
      this.#rotateAt = -Infinity;
    } else {
      this.#tat.delete(key);
      this.#previous.delete(key);
    }
  }

  /** Drops every key whose bucket is full at `nowMs`; returns how many were dropped. */
  sweep(nowMs: number = this.#now()): number {
    let dropped = 0;
    for (const map of [this.#tat, this.#previous]) {
      for (const [key, tat] of map) {
        if (tat <= nowMs) {
          map.delete(key);
          dropped++;
        }
      }
    }
    return dropped;
  }
}
