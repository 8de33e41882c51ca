/**
 * Id generation for tasks, pools, sessions, delegations and auctions.
 *
 * Task ids sort by creation time: `claimNext` breaks priority ties by id, so time-ordered ids make
 * equal-priority tasks come out first-in, first-out on every store. The layout is
 * `<prefix>_<12 hex ms time><8 hex per-process counter><6 hex per-process random>`; the counter keeps
 * ids from one process strictly increasing within a millisecond, the random part keeps two processes
 * from colliding.
 */
import { randomBytes } from 'node:crypto';

const processTag = randomBytes(3).toString('hex');
let counter = 0;

/** A new time-ordered id such as `task_0193a1b2c3d40000002a9f31c2`. */
export function newId(prefix: string): string {
  counter = (counter + 1) >>> 0;
  return `${prefix}_${Date.now().toString(16).padStart(12, '0')}${counter.toString(16).padStart(8, '0')}${processTag}`;
}
