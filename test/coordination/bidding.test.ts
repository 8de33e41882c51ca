import { describe, expect, it } from 'vitest';
import { InvalidStateError } from '../../src/shared/errors.js';
import { BiddingProtocol } from '../../src/coordination/index.js';

describe('BiddingProtocol', () => {
  describe('first-price sealed bid', () => {
    it('the highest bid wins and pays its own bid; ties go to the earlier bid', async () => {
      const auction = new BiddingProtocol({ auctionType: 'first_price_sealed_bid' });
      expect(await auction.submitBid('a', 10)).toBe(true);
      expect(await auction.submitBid('b', 25)).toBe(true);
      expect(await auction.submitBid('c', 25)).toBe(true);
      expect(await auction.getBids()).toBeNull(); // sealed until resolved
      expect(await auction.resolve()).toEqual({ winner: 'b', price: 25 });
    });

    it('takes one bid per agent, none below the reserve and none after closing', async () => {
      const auction = new BiddingProtocol({ auctionType: 'first_price_sealed_bid', reservePrice: 5 });
      expect(await auction.submitBid('a', 4)).toBe(false);
      expect(await auction.submitBid('a', 6)).toBe(true);
      expect(await auction.submitBid('a', 9)).toBe(false);
      expect(await auction.resolve()).toEqual({ winner: 'a', price: 6 });
      expect(await auction.submitBid('b', 100)).toBe(false);
      expect(await auction.resolve()).toEqual({ winner: 'a', price: 6 });
      expect(await auction.getBids()).toEqual([{ agentId: 'a', amount: 6 }]);
    });

    it('resolves to null without bids', async () => {
      expect(await new BiddingProtocol({ auctionType: 'first_price_sealed_bid' }).resolve()).toBeNull();
    });
  });

  describe('second-price sealed bid', () => {
    it('the highest bid wins and pays the second-highest bid', async () => {
      const auction = new BiddingProtocol({ auctionType: 'second_price_sealed_bid' });
      await auction.submitBid('a', 10);
      await auction.submitBid('b', 30);
      await auction.submitBid('c', 17);
      expect(await auction.resolve()).toEqual({ winner: 'b', price: 17 });
    });

    it('a lone bidder pays the reserve, or its bid without one', async () => {
      const withReserve = new BiddingProtocol({ auctionType: 'second_price_sealed_bid', reservePrice: 8 });
      await withReserve.submitBid('a', 20);
      expect(await withReserve.resolve()).toEqual({ winner: 'a', price: 8 });
      const without = new BiddingProtocol({ auctionType: 'second_price_sealed_bid' });
      await without.submitBid('a', 20);
      expect(await without.resolve()).toEqual({ winner: 'a', price: 20 });
    });

    it('a tie at the top pays the tied amount', async () => {
      const auction = new BiddingProtocol({ auctionType: 'second_price_sealed_bid' });
      await auction.submitBid('a', 12);
      await auction.submitBid('b', 12);
      expect(await auction.resolve()).toEqual({ winner: 'a', price: 12 });
    });
  });

  describe('english', () => {
    it('each bid must beat the standing one by minIncrement; the last standing bid wins', async () => {
      const auction = new BiddingProtocol({ auctionType: 'english', startPrice: 10, minIncrement: 5 });
      expect(await auction.submitBid('a', 9)).toBe(false); // below the opening price
      expect(await auction.submitBid('a', 10)).toBe(true);
      expect(await auction.submitBid('b', 14)).toBe(false); // beats by 4 < 5
      expect(await auction.submitBid('b', 15)).toBe(true);
      expect(await auction.status()).toMatchObject({ open: true, currentPrice: 15, leader: 'b', bidCount: 2 });
      expect(await auction.submitBid('a', 22)).toBe(true);
      expect(await auction.resolve()).toEqual({ winner: 'a', price: 22 });
      expect(await auction.submitBid('b', 100)).toBe(false);
      expect(await auction.getBids()).toEqual([
        { agentId: 'a', amount: 10 },
        { agentId: 'b', amount: 15 },
        { agentId: 'a', amount: 22 },
      ]);
    });

    it('without minIncrement any strictly higher bid wins the lead', async () => {
      const auction = new BiddingProtocol({ auctionType: 'english' });
      expect(await auction.submitBid('a', 1)).toBe(true);
      expect(await auction.submitBid('b', 1)).toBe(false);
      expect(await auction.submitBid('b', 1.01)).toBe(true);
      expect(await auction.resolve()).toEqual({ winner: 'b', price: 1.01 });
    });
  });

  describe('dutch', () => {
    it('the price descends per tick and the first acceptance wins at the current price', async () => {
      const auction = new BiddingProtocol({ auctionType: 'dutch', startPrice: 100, decrement: 15, reservePrice: 50 });
      expect((await auction.status()).currentPrice).toBe(100);
      expect(await auction.tick()).toBe(85);
      expect(await auction.tick()).toBe(70);
      expect(await auction.submitBid('low', 60)).toBe(false); // below the asking price
      expect(await auction.accept('first')).toBe(true);
      expect(await auction.accept('second')).toBe(false);
      expect(await auction.tick()).toBeNull();
      expect(await auction.resolve()).toEqual({ winner: 'first', price: 70 });
    });

    it('never goes below the reserve, and a bid at the asking price buys at the asking price', async () => {
      const auction = new BiddingProtocol({ auctionType: 'dutch', startPrice: 20, decrement: 8, reservePrice: 10 });
      expect(await auction.tick()).toBe(12);
      expect(await auction.tick()).toBe(10);
      expect(await auction.tick()).toBe(10);
      expect(await auction.submitBid('b', 11)).toBe(true);
      expect(await auction.resolve()).toEqual({ winner: 'b', price: 10 });
    });

    it('resolves to null when nobody accepted', async () => {
      const auction = new BiddingProtocol({ auctionType: 'dutch', startPrice: 5, decrement: 1 });
      await auction.tick();
      expect(await auction.resolve()).toBeNull();
      expect(await auction.accept('late')).toBe(false);
    });
  });

  it('defaults to a first-price sealed-bid auction, and takes a bare auction type', async () => {
    const byDefault = new BiddingProtocol();
    expect(byDefault.auctionType).toBe('first_price_sealed_bid');
    await byDefault.submitBid('a', 10);
    await byDefault.submitBid('b', 7);
    expect(await byDefault.getBids()).toBeNull();
    expect(await byDefault.resolve()).toEqual({ winner: 'a', price: 10 });
    expect(new BiddingProtocol({}).auctionType).toBe('first_price_sealed_bid');
    expect(new BiddingProtocol({ reservePrice: 3 }).auctionType).toBe('first_price_sealed_bid');
    const vickrey = new BiddingProtocol('second_price_sealed_bid');
    await vickrey.submitBid('a', 10);
    await vickrey.submitBid('b', 7);
    expect(await vickrey.resolve()).toEqual({ winner: 'a', price: 7 });
    expect(new BiddingProtocol('english').auctionType).toBe('english');
    expect(new BiddingProtocol('first_price_sealed_bid').auctionType).toBe('first_price_sealed_bid');
    expect(() => new BiddingProtocol('vickrey' as never)).toThrow(expect.objectContaining({ field: 'auctionType' }));
    // A dutch auction still needs its prices.
    expect(() => new BiddingProtocol('dutch')).toThrow(expect.objectContaining({ field: 'options.startPrice' }));
  });

  it('validates the options for each type', () => {
    expect(() => new BiddingProtocol({ auctionType: 'dutch', decrement: 1 })).toThrow(expect.objectContaining({ field: 'options.startPrice' }));
    expect(() => new BiddingProtocol({ auctionType: 'dutch', startPrice: 5 })).toThrow(expect.objectContaining({ field: 'options.decrement' }));
    expect(() => new BiddingProtocol({ auctionType: 'english', decrement: 1 })).toThrow(expect.objectContaining({ field: 'options.decrement' }));
    expect(() => new BiddingProtocol({ auctionType: 'first_price_sealed_bid', minIncrement: 1 })).toThrow(expect.objectContaining({ field: 'options.minIncrement' }));
    expect(() => new BiddingProtocol({ auctionType: 'vickrey' as never })).toThrow(expect.objectContaining({ field: 'options.auctionType' }));
    expect(() => new BiddingProtocol({ auctionType: 'english', reservePrice: -1 })).toThrow(expect.objectContaining({ field: 'options.reservePrice' }));
  });

  it('tick and accept belong to dutch auctions; bad amounts are refused', async () => {
    const auction = new BiddingProtocol({ auctionType: 'english' });
    await expect(auction.tick()).rejects.toBeInstanceOf(InvalidStateError);
    await expect(auction.accept('a')).rejects.toBeInstanceOf(InvalidStateError);
    await expect(auction.submitBid('a', Number.NaN)).rejects.toMatchObject({ field: 'amount' });
    await expect(auction.submitBid('', 1)).rejects.toMatchObject({ field: 'agentId' });
  });
});
