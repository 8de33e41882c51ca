/**
 * Id generation for tasks, pools, sessions, delegations and auctions.
 *
 * Ids sort by creation time: `claimNext` breaks priority ties by id, so time-ordered ids make
 * equal-priority tasks come out first-in, first-out on every store, across processes too. The layout
 * is `<prefix>_<12 hex ms time><6 hex per-process random><9 base-36 per-process counter>`; the counter
 * keeps ids from one process strictly increasing within a millisecond, the random part keeps two
 * processes from colliding. The time part is formatted once per millisecond: this runs once per
 * submitted task.
 */
import { randomBytes } from 'node:crypto';

const processTag = randomBytes(3).toString('hex');
// 36^8 offset: the counter always formats to 9 base-36 digits, so ids of one millisecond sort by it.
const COUNTER_OFFSET = 36 ** 8;
const COUNTER_SPAN = 36 ** 9 - COUNTER_OFFSET;
let counter = 0;
let cachedMs = Number.NaN;
let cachedPrefix = '';
let cachedTime = '';

/** A new time-ordered id such as `task_019a2b3c4d5e7f31c21000000a3`; `nowMs` defaults to `Date.now()`. */
export function newId(prefix: string, nowMs: number = Date.now()): string {
  if (nowMs !== cachedMs || prefix !== cachedPrefix) {
    cachedMs = nowMs;
    cachedPrefix = prefix;
    cachedTime = `${prefix}_${Math.max(0, Math.trunc(nowMs)).toString(16).padStart(12, '0')}${processTag}`;
  }
  counter = (counter + 1) % COUNTER_SPAN;
  return cachedTime + (COUNTER_OFFSET + counter).toString(36);
}
