/**
 * The rate limiter keeps a key per recently written page for up to burst · minIntervalMs. A page id
 * decoded from a ring frame is a V8 sliced string of the frame's whole string pool: stored as is,
 * each key would keep its pool alive (~6 MB of pools in the convergence worker under a 100k-file
 * storm). Keys are stored as copies of their own.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ownString } from '../../src/shared/own-string.js';
import { WriteRateLimiter } from '../../src/shared/rate-limiter.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const PARENT = 1024 * 1024;
const KEYS = 40;

/** Heap used after a full collection. */
function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** `KEYS` page ids, each sliced out of a 1 MB parent string that nothing else holds. */
function slicedIds(): string[] {
  const ids: string[] = [];
  for (let i = 0; i < KEYS; i++) {
    const parent = `${String(i).padStart(PARENT, 'p')}file:dir/page-${i}.txt`;
    ids.push(parent.slice(PARENT));
  }
  return ids;
}

describe('rate limiter memory', () => {
  it('ownString copies a slice without its parent', () => {
    const before = heapUsed();
    const copies = slicedIds().map(ownString);
    expect(heapUsed() - before).toBeLessThan((KEYS * PARENT) / 8);
    expect(copies[3]).toBe('file:dir/page-3.txt');
  });

  it('the keys it holds do not keep the strings they were sliced from', () => {
    const limiter = new WriteRateLimiter({ minIntervalMs: 60_000, burst: 4 });
    const before = heapUsed();
    for (const id of slicedIds()) expect(limiter.allow(id, 1_000)).toBe(true);
    expect(limiter.size).toBe(KEYS);
    // Without the copy: KEYS parents of 1 MB (2 MB as UTF-16 when not one-byte) stay reachable.
    expect(heapUsed() - before).toBeLessThan((KEYS * PARENT) / 8);
    // The copies are the same keys.
    for (let i = 0; i < KEYS; i++) expect(limiter.nextAllowedAt(`file:dir/page-${i}.txt`, 1_000)).toBe(1_000);
    for (let i = 0; i < 3; i++) expect(limiter.allow(`file:dir/page-7.txt`, 1_000)).toBe(true);
    expect(limiter.allow(`file:dir/page-7.txt`, 1_000)).toBe(false);
  });
});
