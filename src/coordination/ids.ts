/**
 * Id generation for tasks, pools, sessions, delegations and auctions.
 *
 * Ids sort by creation time: `claimNext` breaks priority ties by id, so time-ordered ids make
 * equal-priority tasks come out first-in, first-out on every store, across processes too. Layout:
 * `<prefix>_<9 base-36 ms time><4 base-36 per-process random><6 base-36 per-process counter>`. The
 * counter keeps ids of one process strictly increasing, whatever the clock does; the random part
 * keeps two processes apart.
 *
 * Without an explicit time the clock is read at most once per event-loop turn and per 1024 ids: this
 * runs once per submitted task, and a clock read costs ~100 ns on some virtual machines. The time
 * part only orders ids of different processes, so a reading a few microseconds old is as good.
 */
import { randomInt } from 'node:crypto';

const BASE = 36;
const TIME_WIDTH = 9; // 36^9 ms ≈ year 5188
const COUNTER_WIDTH = 6;
const COUNTER_OFFSET = BASE ** COUNTER_WIDTH;
const COUNTER_SPAN = BASE ** COUNTER_WIDTH;
const CLOCK_READS_EVERY = 1024;

const processTag = randomInt(BASE ** 4).toString(BASE).padStart(4, '0');
let counter = 0;
let cachedMs = Number.NaN;
let cachedTime = '';
let coarseMs = 0;
let coarseUses = CLOCK_READS_EVERY;
let coarseFresh = false;

function coarseNow(): number {
  if (!coarseFresh || coarseUses >= CLOCK_READS_EVERY) {
    coarseMs = Date.now();
    coarseUses = 0;
    if (!coarseFresh) {
      coarseFresh = true;
      setImmediate(expireCoarse).unref();
    }
  }
  coarseUses += 1;
  return coarseMs;
}

function expireCoarse(): void {
  coarseFresh = false;
}

/** A new time-ordered id such as `task_mh3k2x1a0q7z3000001`; `nowMs` defaults to (nearly) now. */
export function newId(prefix: string, nowMs: number = coarseNow()): string {
  // Never step back (a clock adjusted backwards): ids of this process stay increasing.
  if (nowMs > cachedMs || Number.isNaN(cachedMs)) {
    cachedMs = nowMs;
    cachedTime = Math.max(0, Math.trunc(nowMs)).toString(BASE).padStart(TIME_WIDTH, '0') + processTag;
  }
  counter = (counter + 1) % COUNTER_SPAN;
  // The offset makes every counter exactly COUNTER_WIDTH digits after the leading "1" is dropped.
  return `${prefix}_${cachedTime}${(COUNTER_OFFSET + counter).toString(BASE).slice(1)}`;
}
