import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Consensus } from '../../src/coordination/index.js';

describe('Consensus', () => {
  it('majorityVote needs strictly more than half of all votes', async () => {
    expect(await Consensus.majorityVote(['a', 'a', 'b'])).toBe('a');
    expect(await Consensus.majorityVote(['a', 'a', 'b', 'b'])).toBeNull();
    expect(await Consensus.majorityVote(['a', 'b', 'c'])).toBeNull();
    expect(await Consensus.majorityVote([])).toBeNull();
    expect(await Consensus.majorityVote({ alice: 'yes', bob: 'yes', carol: 'no' })).toBe('yes');
    expect(await Consensus.majorityVote(new Map([['x', 1], ['y', 2], ['z', 1]]))).toBe(1);
  });

  it('pluralityVote takes the most votes, and null on a tie for first or no votes', async () => {
    expect(await Consensus.pluralityVote(['a', 'b', 'b', 'c'])).toBe('b');
    expect(await Consensus.pluralityVote(['a', 'b', 'c', 'a', 'b'])).toBeNull();
    expect(await Consensus.pluralityVote(['a', 'a', 'b', 'b', 'c', 'c', 'c'])).toBe('c');
    expect(await Consensus.pluralityVote([])).toBeNull();
    expect(await Consensus.pluralityVote({})).toBeNull();
  });

  it('groups object votes by value, whatever the key order', async () => {
    const winner = await Consensus.majorityVote([{ plan: 'x', n: 1 }, { n: 1, plan: 'x' }, { plan: 'y', n: 1 }]);
    expect(winner).toEqual({ plan: 'x', n: 1 });
    expect(await Consensus.pluralityVote([[1, 2], [1, 2], '[1,2]'])).toEqual([1, 2]);
  });

  it('rejects votes that are not a list or a map of votes', async () => {
    await expect(Consensus.majorityVote('abc' as never)).rejects.toMatchObject({ field: 'votes' });
    await expect(Consensus.pluralityVote(42 as never)).rejects.toMatchObject({ field: 'votes' });
  });

  it('agrees with a direct count (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 40 }), async (votes) => {
        const counts = new Map<string, number>();
        for (const vote of votes) counts.set(vote, (counts.get(vote) ?? 0) + 1);
        const sorted = [...counts.entries()].sort((x, y) => y[1] - x[1]);
        const [first, second] = sorted;
        const majority = first !== undefined && first[1] * 2 > votes.length ? first[0] : null;
        const plurality = first === undefined || (second !== undefined && second[1] === first[1]) ? null : first[0];
        expect(await Consensus.majorityVote(votes)).toBe(majority);
        expect(await Consensus.pluralityVote(votes)).toBe(plurality);
      }),
    );
  });
});
