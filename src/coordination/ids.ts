/**
 * Id generation for tasks, pools, sessions, delegations and auctions.
 *
 * Ids sort by creation time: `claimNext` breaks priority ties by id, so time-ordered ids make
 * equal-priority tasks come out first-in, first-out on every store, across processes too. Layout:
 * `<prefix>_<9 base-36 ms time><4 base-36 per-process random><10 decimal per-process counter>`. The
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
// The counter is decimal, written as 10^9 + counter: exactly ten digits, the first always "1", the
// other nine the counter itself (so a store can read it back as a number from the id's end).
const COUNTER_SPAN = 1_000_000_000;
const CLOCK_READS_EVERY = 1024;

const processTag = randomInt(BASE ** 4).toString(BASE).padStart(4, '0');
let counter = 0;
let cachedMs = Number.NaN;
let cachedPrefix = '';
let cachedHead = '';
/**
 * Character codes of `cachedHead` followed by room for the ten counter digits. An id is made from
 * these with one `String.fromCharCode` call, which yields one flat string; `head + digits` would
 * make a concatenation (cons) string plus a digit string, and the first character read by a store
 * flattens it into a third. A task's id lives as long as the task, so this is fewer and smaller
 * objects for the young-generation GC to copy on the claim hot path.
 */
const idCodes: number[] = [];
const COUNTER_DIGITS = 10;
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

/** A new time-ordered id such as `task_0mh3k2x1aq7z31000000001`; `nowMs` defaults to (nearly) now. */
export function newId(prefix: string, nowMs: number = coarseNow()): string {
  // Never step back (a clock adjusted backwards): ids of this process stay increasing.
  if (nowMs > cachedMs || Number.isNaN(cachedMs) || prefix !== cachedPrefix) {
    cachedMs = Math.max(nowMs, Number.isNaN(cachedMs) ? nowMs : cachedMs);
    cachedPrefix = prefix;
    cachedHead = `${prefix}_${Math.max(0, Math.trunc(cachedMs)).toString(BASE).padStart(TIME_WIDTH, '0')}${processTag}`;
    idCodes.length = 0;
    for (let index = 0; index < cachedHead.length; index++) idCodes.push(cachedHead.charCodeAt(index));
    idCodes.push(49); // the leading "1" of 10^9 + counter
    for (let index = 1; index < COUNTER_DIGITS; index++) idCodes.push(48);
  }
  counter = (counter + 1) % COUNTER_SPAN;
  // The nine digits below the leading "1", in small-integer arithmetic (counter < 10^9 < 2^31).
  let rest = counter;
  for (let index = idCodes.length - 1; index > idCodes.length - COUNTER_DIGITS; index--) {
    const next = (rest / 10) | 0;
    idCodes[index] = 48 + rest - next * 10;
    rest = next;
  }
  return String.fromCharCode.apply(null, idCodes);
}

/**
 * The head of the id {@link newId} returned last: every character before its ten counter digits.
 * Ids with the same head differ only in their counter, so they sort as their last nine digits do as
 * numbers; the memory store's heaps use that to order generated ids without comparing strings.
 */
export function lastIdHead(): string {
  return cachedHead;
}
