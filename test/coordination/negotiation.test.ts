import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/shared/errors.js';
import { NegotiationProtocol } from '../../src/coordination/index.js';

describe('NegotiationProtocol', () => {
  it('records proposals and counter-proposals until one is accepted', async () => {
    let now = 100;
    const negotiation = new NegotiationProtocol({ now: () => now++ });
    const id = await negotiation.createSession('buyer', ['seller'], { price: 10 });
    expect(await negotiation.getSession(id)).toMatchObject({
      id,
      initiatorId: 'buyer',
      participants: ['buyer', 'seller'],
      state: 'proposed',
      currentProposal: { proposerId: 'buyer', content: { price: 10 }, timestamp: 100 },
      decidedBy: null,
    });
    expect(await negotiation.propose(id, 'seller', { price: 14 })).toBe(true);
    expect((await negotiation.getSession(id))?.state).toBe('countered');
    expect(await negotiation.propose(id, 'buyer', { price: 12 })).toBe(true);
    expect(await negotiation.accept(id, 'seller')).toBe(true);
    const session = await negotiation.getSession(id);
    expect(session?.state).toBe('accepted');
    expect(session?.decidedBy).toBe('seller');
    expect(session?.currentProposal?.content).toEqual({ price: 12 });
    expect(session?.history.map((p) => [p.proposerId, p.content])).toEqual([
      ['buyer', { price: 10 }],
      ['seller', { price: 14 }],
      ['buyer', { price: 12 }],
    ]);
  });

  it('refuses outsiders, self-acceptance and anything after the session ended', async () => {
    const negotiation = new NegotiationProtocol();
    const id = await negotiation.createSession('a', ['a', 'b', 'c'], 'offer');
    expect(await negotiation.propose(id, 'mallory', 'x')).toBe(false);
    expect(await negotiation.accept(id, 'mallory')).toBe(false);
    expect(await negotiation.reject(id, 'mallory')).toBe(false);
    expect(await negotiation.close(id, 'mallory')).toBe(false);
    expect(await negotiation.accept(id, 'a')).toBe(false); // a made the current proposal
    expect(await negotiation.reject(id, 'c')).toBe(true);
    expect(await negotiation.propose(id, 'b', 'after')).toBe(false);
    expect(await negotiation.accept(id, 'b')).toBe(false);
    expect(await negotiation.close(id, 'b')).toBe(false);
    expect((await negotiation.getSession(id))?.state).toBe('rejected');
    expect((await negotiation.getSession(id))?.history).toHaveLength(1);
  });

  it('counter: a participant’s counter-proposal becomes current; outsiders, closed and decided sessions are refused', async () => {
    let now = 1;
    const negotiation = new NegotiationProtocol({ now: () => now++ });
    const id = await negotiation.createSession('buyer', ['seller'], { price: 10 });
    expect(await negotiation.counter(id, 'seller', { price: 14 })).toBe(true);
    expect(await negotiation.getSession(id)).toMatchObject({ state: 'countered', currentProposal: { proposerId: 'seller', content: { price: 14 }, timestamp: 2 } });
    expect(await negotiation.counter(id, 'mallory', { price: 1 })).toBe(false);
    expect(await negotiation.counter('missing', 'seller', 1)).toBe(false);
    expect(await negotiation.counter(id, 'buyer', { price: 12 })).toBe(true);
    expect(await negotiation.accept(id, 'buyer')).toBe(false); // the proposer cannot accept its own counter
    expect(await negotiation.accept(id, 'seller')).toBe(true);
    expect(await negotiation.counter(id, 'buyer', { price: 11 })).toBe(false); // decided
    const closed = await negotiation.createSession('a', ['b'], 1);
    expect(await negotiation.close(closed, 'a')).toBe(true);
    expect(await negotiation.counter(closed, 'b', 2)).toBe(false);
    expect((await negotiation.getSession(closed))?.history).toHaveLength(1);
    expect((await negotiation.getSession(id))?.history.map((p) => p.content)).toEqual([{ price: 10 }, { price: 14 }, { price: 12 }]);
    await expect(negotiation.counter(id, '', 1)).rejects.toBeInstanceOf(ValidationError);
  });

  it('a closed session refuses proposals', async () => {
    const negotiation = new NegotiationProtocol();
    const id = await negotiation.createSession('a', ['b'], 1);
    expect(await negotiation.close(id, 'b')).toBe(true);
    expect(await negotiation.propose(id, 'a', 2)).toBe(false);
    expect(await negotiation.accept(id, 'b')).toBe(false);
    expect(await negotiation.getSession(id)).toMatchObject({ state: 'closed', decidedBy: 'b' });
  });

  it('handles unknown sessions and invalid input', async () => {
    const negotiation = new NegotiationProtocol();
    expect(await negotiation.getSession('missing')).toBeNull();
    expect(await negotiation.propose('missing', 'a', 1)).toBe(false);
    await expect(negotiation.createSession('a', ['a'], 1)).rejects.toMatchObject({ field: 'participants' });
    await expect(negotiation.createSession('a', ['b', ''], 1)).rejects.toMatchObject({ field: 'participants[1]' });
    await expect(negotiation.createSession('', ['b'], 1)).rejects.toBeInstanceOf(ValidationError);
  });

  it('hands out copies: mutating a returned session changes nothing', async () => {
    const negotiation = new NegotiationProtocol();
    const id = await negotiation.createSession('a', ['b'], 1);
    const copy = await negotiation.getSession(id);
    (copy!.history as unknown[]).push('forged');
    (copy!.participants as string[]).push('mallory');
    expect(await negotiation.propose(id, 'mallory', 2)).toBe(false);
    expect((await negotiation.getSession(id))?.history).toHaveLength(1);
  });
});
