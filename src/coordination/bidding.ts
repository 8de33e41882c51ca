/**
 * Auctions for allocating a task or resource, with four real mechanisms:
 * - `first_price_sealed_bid`: one hidden bid per agent; the highest wins and pays its bid;
 * - `second_price_sealed_bid` (Vickrey): the highest wins and pays the second-highest bid (the reserve
 *   price, or its own bid when there is no reserve, if nobody else bid);
 * - `english`: open ascending; each bid must beat the standing one by at least `minIncrement` (and the
 *   first must reach `startPrice`); the last standing bid wins at its amount;
 * - `dutch`: open descending; the asking price starts at `startPrice` and drops by `decrement` on each
 *   `tick()` (never below the reserve); the first `accept` (or a bid at or above the asking price)
 *   wins at the asking price and ends the auction.
 * In every type a bid below `reservePrice` is refused. Ties go to the earlier bid. `resolve()` ends
 * the auction and returns the same result on every later call.
 */
import { z } from 'zod';
import { InvalidStateError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';
import { newId } from './ids.js';
import { parseId } from './schemas.js';

/** The four mechanisms. */
export type AuctionType = 'first_price_sealed_bid' | 'second_price_sealed_bid' | 'english' | 'dutch';

/** Every auction type, for validation and iteration. */
export const AUCTION_TYPES: readonly AuctionType[] = Object.freeze(['first_price_sealed_bid', 'second_price_sealed_bid', 'english', 'dutch']);

/** Options of {@link BiddingProtocol}. */
export interface BiddingOptions {
  /** Default `first_price_sealed_bid`. */
  readonly auctionType?: AuctionType;
  /** No sale below this; bids under it are refused. */
  readonly reservePrice?: number;
  /** English: how much a bid must beat the standing bid by (default 0: any higher bid). */
  readonly minIncrement?: number;
  /** English: lowest opening bid. Dutch (required): the first asking price. */
  readonly startPrice?: number;
  /** Dutch (required): how much the asking price drops per `tick()`. */
  readonly decrement?: number;
}

/** Who won and what they pay. */
export interface AuctionResult {
  readonly winner: string;
  readonly price: number;
}

/** An auction's public state. */
export interface AuctionStatus {
  readonly auctionType: AuctionType;
  readonly open: boolean;
  /** English: the standing bid (null before the first); Dutch: the asking price; sealed: null (bids are hidden). */
  readonly currentPrice: number | null;
  /** English: the standing bidder; otherwise null. */
  readonly leader: string | null;
  readonly bidCount: number;
}

/** One bid as recorded. */
export interface Bid {
  readonly agentId: string;
  readonly amount: number;
}

const Amount = z.number().finite().min(0);
const AuctionTypeSchema = z.enum(['first_price_sealed_bid', 'second_price_sealed_bid', 'english', 'dutch']);
const OptionsSchema = z
  .strictObject({
    auctionType: AuctionTypeSchema.default('first_price_sealed_bid'),
    reservePrice: Amount.optional(),
    minIncrement: Amount.optional(),
    startPrice: Amount.optional(),
    decrement: z.number().finite().positive().optional(),
  })
  .superRefine((options, ctx) => {
    const type = options.auctionType;
    const reject = (field: keyof BiddingOptions, message: string): void => void ctx.addIssue({ code: 'custom', path: [field], message });
    if (type === 'dutch') {
      if (options.startPrice === undefined) reject('startPrice', 'a dutch auction needs a startPrice');
      if (options.decrement === undefined) reject('decrement', 'a dutch auction needs a decrement');
      if (options.minIncrement !== undefined) reject('minIncrement', 'only english auctions take a minIncrement');
      if (options.startPrice !== undefined && options.reservePrice !== undefined && options.reservePrice > options.startPrice) {
        reject('reservePrice', 'must not exceed startPrice');
      }
    } else {
      if (options.decrement !== undefined) reject('decrement', 'only dutch auctions take a decrement');
      if (type !== 'english') {
        if (options.minIncrement !== undefined) reject('minIncrement', 'only english auctions take a minIncrement');
        if (options.startPrice !== undefined) reject('startPrice', 'sealed-bid auctions take no startPrice');
      }
    }
  });

/** One auction (DESIGN §5). */
export class BiddingProtocol {
  /** A generated `auction_…` id, for registries of auctions. */
  readonly id = newId('auction');
  readonly auctionType: AuctionType;
  readonly #reserve: number;
  readonly #hasReserve: boolean;
  readonly #minIncrement: number;
  readonly #startPrice: number | undefined;
  readonly #decrement: number;
  readonly #bids: Bid[] = [];
  #askingPrice: number;
  #open = true;
  #result: AuctionResult | null = null;

  /**
   * `options`: the options, or just the auction type (`new BiddingProtocol('english')`); nothing
   * runs a first-price sealed-bid auction.
   */
  constructor(options: BiddingOptions | AuctionType = {}) {
    const resolved = typeof options === 'string' ? parseInput(OptionsSchema, { auctionType: parseInput(AuctionTypeSchema, options, 'auctionType') }, 'options') : parseInput(OptionsSchema, options, 'options');
    this.auctionType = resolved.auctionType;
    this.#reserve = resolved.reservePrice ?? 0;
    this.#hasReserve = resolved.reservePrice !== undefined;
    this.#minIncrement = resolved.minIncrement ?? 0;
    this.#startPrice = resolved.startPrice;
    this.#decrement = resolved.decrement ?? 0;
    this.#askingPrice = resolved.startPrice ?? 0;
  }

  /**
   * Places a bid; false when the auction is closed or the bid is not admissible (below the reserve;
   * a second sealed bid from one agent; an english bid that does not beat the standing one by
   * `minIncrement`; a dutch bid below the asking price). A dutch bid at or above the asking price
   * wins at the asking price.
   */
  async submitBid(agentId: string, amount: number): Promise<boolean> {
    const agent = parseId(agentId, 'agentId');
    const value = parseInput(Amount, amount, 'amount');
    if (!this.#open || value < this.#reserve) return false;
    switch (this.auctionType) {
      case 'first_price_sealed_bid':
      case 'second_price_sealed_bid':
        if (this.#bids.some((bid) => bid.agentId === agent)) return false;
        break;
      case 'english': {
        const standing = this.#bids.at(-1);
        if (standing === undefined ? value < (this.#startPrice ?? 0) : value <= standing.amount || value < standing.amount + this.#minIncrement) return false;
        break;
      }
      case 'dutch':
        if (value < this.#askingPrice) return false;
        return this.#sell(agent);
    }
    this.#bids.push({ agentId: agent, amount: value });
    return true;
  }

  /** Dutch: lowers the asking price by `decrement` (not below the reserve) and returns it; null once closed. */
  async tick(): Promise<number | null> {
    if (this.auctionType !== 'dutch') throw new InvalidStateError(`tick() is for dutch auctions, this one is ${this.auctionType}`);
    if (!this.#open) return null;
    this.#askingPrice = Math.max(this.#reserve, this.#askingPrice - this.#decrement);
    return this.#askingPrice;
  }

  /** Dutch: takes the item at the asking price; only the first acceptance wins. */
  async accept(agentId: string): Promise<boolean> {
    const agent = parseId(agentId, 'agentId');
    if (this.auctionType !== 'dutch') throw new InvalidStateError(`accept() is for dutch auctions, this one is ${this.auctionType}`);
    return this.#open ? this.#sell(agent) : false;
  }

  /** Ends the auction and returns the winner and price, or null when nothing sold. */
  async resolve(): Promise<AuctionResult | null> {
    if (!this.#open) return this.#result;
    this.#open = false;
    this.#result = this.#outcome();
    return this.#result;
  }

  /** The auction's public state. */
  async status(): Promise<AuctionStatus> {
    const standing = this.auctionType === 'english' ? this.#bids.at(-1) : undefined;
    return {
      auctionType: this.auctionType,
      open: this.#open,
      currentPrice: this.auctionType === 'dutch' ? this.#askingPrice : (standing?.amount ?? null),
      leader: standing?.agentId ?? null,
      bidCount: this.#bids.length,
    };
  }

  /** The bids in submission order; sealed bids only once the auction is resolved. */
  async getBids(): Promise<readonly Bid[] | null> {
    if (this.#open && (this.auctionType === 'first_price_sealed_bid' || this.auctionType === 'second_price_sealed_bid')) return null;
    return this.#bids.map((bid) => ({ ...bid }));
  }

  #sell(agentId: string): boolean {
    this.#bids.push({ agentId, amount: this.#askingPrice });
    this.#open = false;
    this.#result = { winner: agentId, price: this.#askingPrice };
    return true;
  }

  #outcome(): AuctionResult | null {
    if (this.auctionType === 'dutch') return null; // Closed without an acceptance: no sale.
    if (this.auctionType === 'english') {
      const standing = this.#bids.at(-1);
      return standing === undefined ? null : { winner: standing.agentId, price: standing.amount };
    }
    // Sealed: highest first; the stable sort keeps earlier bids ahead on ties.
    const ranked = [...this.#bids].sort((a, b) => b.amount - a.amount);
    const [first, second] = ranked;
    if (first === undefined) return null;
    if (this.auctionType === 'first_price_sealed_bid') return { winner: first.agentId, price: first.amount };
    const fallback = this.#hasReserve ? this.#reserve : first.amount;
    return { winner: first.agentId, price: second?.amount ?? fallback };
  }
}
