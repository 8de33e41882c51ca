/**
 * Voting. Votes come as a list (one entry per voter) or keyed by voter (a record or a map). Equal
 * votes are grouped by value: primitives by identity (SameValueZero), objects and arrays by their
 * canonical JSON (key order does not matter). The winning value is returned as first cast.
 */
import { z } from 'zod';
import { parseInput } from '../shared/validation.js';

/** Votes: one per voter. */
export type Votes<T> = readonly T[] | ReadonlyMap<string, T> | Readonly<Record<string, T>>;

const VotesSchema = z.union([z.array(z.unknown()), z.map(z.string(), z.unknown()), z.record(z.string(), z.unknown())], {
  error: 'must be an array of votes, or a record or Map from voter to vote',
});

/** Majority and plurality voting (DESIGN §5). */
export class Consensus {
  /** The value with strictly more than half of all votes, else null. */
  static async majorityVote<T>(votes: Votes<T>): Promise<T | null> {
    const { tally, total } = count(votes);
    for (const { value, n } of tally.values()) if (n * 2 > total) return value;
    return null;
  }

  /** The value with the most votes; null when there are no votes or the lead is tied. */
  static async pluralityVote<T>(votes: Votes<T>): Promise<T | null> {
    const { tally } = count(votes);
    let best: { value: T; n: number } | undefined;
    let tied = false;
    for (const entry of tally.values()) {
      if (best === undefined || entry.n > best.n) {
        best = entry;
        tied = false;
      } else if (entry.n === best.n) {
        tied = true;
      }
    }
    return best === undefined || tied ? null : best.value;
  }
}

function count<T>(votes: Votes<T>): { tally: Map<unknown, { value: T; n: number }>; total: number } {
  parseInput(VotesSchema, votes, 'votes');
  const values: Iterable<T> = Array.isArray(votes) ? votes : votes instanceof Map ? votes.values() : Object.values(votes as Record<string, T>);
  const tally = new Map<unknown, { value: T; n: number }>();
  // Objects are keyed by a symbol per canonical JSON, so no primitive vote can collide with them.
  const objectKeys = new Map<string, symbol>();
  let total = 0;
  for (const value of values) {
    total += 1;
    const key = voteKey(value, objectKeys);
    const entry = tally.get(key);
    if (entry === undefined) tally.set(key, { value, n: 1 });
    else entry.n += 1;
  }
  return { tally, total };
}

function voteKey(value: unknown, objectKeys: Map<string, symbol>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const json = canonicalJson(value);
  let key = objectKeys.get(json);
  if (key === undefined) objectKeys.set(json, (key = Symbol(json)));
  return key;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
