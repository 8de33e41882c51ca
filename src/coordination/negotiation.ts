/**
 * Negotiation sessions between agents: a proposal, counter-proposals, then acceptance, rejection or
 * closure. Only participants act; a decided (accepted, rejected) or closed session takes no further
 * proposals; nobody accepts their own proposal. Sessions live in memory.
 */
import { z } from 'zod';
import { ValidationError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';
import { newId } from './ids.js';
import { IdSchema, parseId } from './schemas.js';

/** `proposed` and `countered` are open; the others are final. */
export type NegotiationState = 'proposed' | 'countered' | 'accepted' | 'rejected' | 'closed';

/** One proposal in a session's history. */
export interface Proposal {
  readonly id: string;
  readonly proposerId: string;
  readonly content: unknown;
  /** Epoch ms. */
  readonly timestamp: number;
}

/** A session as callers see it (a copy). */
export interface NegotiationSession {
  readonly id: string;
  readonly initiatorId: string;
  readonly participants: readonly string[];
  /** Every proposal, oldest first. */
  readonly history: readonly Proposal[];
  readonly state: NegotiationState;
  readonly currentProposal: Proposal | null;
  /** The participant who accepted, rejected or closed the session; null while open. */
  readonly decidedBy: string | null;
}

/** Options of {@link NegotiationProtocol}. */
export interface NegotiationOptions {
  /** Clock for proposal timestamps. Default `Date.now`. */
  readonly now?: () => number;
}

interface SessionState {
  readonly id: string;
  readonly initiatorId: string;
  readonly participants: readonly string[];
  readonly history: Proposal[];
  state: NegotiationState;
  decidedBy: string | null;
}

const ParticipantsSchema = z.array(IdSchema);

/** Manages negotiation sessions (DESIGN §5). */
export class NegotiationProtocol {
  readonly #sessions = new Map<string, SessionState>();
  readonly #now: () => number;

  constructor(options: NegotiationOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  /**
   * Opens a session with `initialProposal` from `initiatorId`; returns its id. The initiator is a
   * participant whether listed or not; at least one other participant is required.
   */
  async createSession(initiatorId: string, participants: readonly string[], initialProposal: unknown): Promise<string> {
    const initiator = parseId(initiatorId, 'initiatorId');
    const listed = parseInput(ParticipantsSchema, participants, 'participants');
    const all = [...new Set([initiator, ...listed])];
    if (all.length < 2) throw new ValidationError('participants', 'needs at least one participant besides the initiator');
    const id = newId('neg');
    this.#sessions.set(id, { id, initiatorId: initiator, participants: all, history: [this.#proposal(initiator, initialProposal)], state: 'proposed', decidedBy: null });
    return id;
  }

  /** A counter-proposal by a participant of an open session: it becomes current, the state `countered`. */
  async propose(sessionId: string, agentId: string, content: unknown): Promise<boolean> {
    const session = this.#open(sessionId, agentId);
    if (session === undefined) return false;
    session.history.push(this.#proposal(parseId(agentId, 'agentId'), content));
    session.state = 'countered';
    return true;
  }

  /**
   * A counter-proposal (DESIGN §5: propose / counter / accept / reject / close): the same as
   * {@link propose}. True when recorded; false for a non-participant, an unknown session, or a
   * session that is closed or decided.
   */
  async counter(sessionId: string, agentId: string, content: unknown): Promise<boolean> {
    return this.propose(sessionId, agentId, content);
  }

  /** Accepts the current proposal; refused for outsiders, closed or decided sessions, and the proposer itself. */
  async accept(sessionId: string, agentId: string): Promise<boolean> {
    const session = this.#open(sessionId, agentId);
    if (session === undefined || session.history.at(-1)?.proposerId === agentId) return false;
    return this.#decide(session, 'accepted', agentId);
  }

  /** Rejects the current proposal, ending the session; refused for outsiders and closed or decided sessions. */
  async reject(sessionId: string, agentId: string): Promise<boolean> {
    const session = this.#open(sessionId, agentId);
    return session === undefined ? false : this.#decide(session, 'rejected', agentId);
  }

  /** Closes an open session without agreement; refused for outsiders and sessions already ended. */
  async close(sessionId: string, agentId: string): Promise<boolean> {
    const session = this.#open(sessionId, agentId);
    return session === undefined ? false : this.#decide(session, 'closed', agentId);
  }

  /** The session, or null. */
  async getSession(sessionId: string): Promise<NegotiationSession | null> {
    const session = this.#sessions.get(parseId(sessionId, 'sessionId'));
    if (session === undefined) return null;
    return {
      id: session.id,
      initiatorId: session.initiatorId,
      participants: [...session.participants],
      history: [...session.history],
      state: session.state,
      currentProposal: session.history.at(-1) ?? null,
      decidedBy: session.decidedBy,
    };
  }

  /** The session if it is open and `agentId` takes part in it. */
  #open(sessionId: string, agentId: string): SessionState | undefined {
    const session = this.#sessions.get(parseId(sessionId, 'sessionId'));
    const agent = parseId(agentId, 'agentId');
    if (session === undefined || !session.participants.includes(agent)) return undefined;
    return session.state === 'proposed' || session.state === 'countered' ? session : undefined;
  }

  #decide(session: SessionState, state: 'accepted' | 'rejected' | 'closed', agentId: string): boolean {
    session.state = state;
    session.decidedBy = agentId;
    return true;
  }

  #proposal(proposerId: string, content: unknown): Proposal {
    return Object.freeze({ id: newId('prop'), proposerId, content, timestamp: this.#now() });
  }
}
