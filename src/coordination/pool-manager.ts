/**
 * Agent pools: named groups with optional topics, an admission policy and a trust threshold. Pools
 * and memberships live in the store (so managers in several processes sharing a SQLite or PostgreSQL
 * store see the same pools); admission policies and trust providers are functions and live in the
 * manager that was given them. A pool created with an admission policy refuses joins through any
 * manager that does not hold that policy (fail closed); give other processes the policy with
 * {@link PoolManager.attachPolicy}.
 *
 * Membership decides what an agent may claim (DESIGN §5): a task with a pool is visible to, and
 * claimable by, the pool's members only — through `claim`, `claimNext` with or without a filter, and
 * `listPendingTasksForAgent`. Give the TaskManager and the PoolManager the same store for the store
 * to check membership itself; with separate stores, pass the agent's pools as the filter's `poolIds`
 * (e.g. `await pools.getPoolsForAgent(agent)`), which then decide alone.
 */
import { z } from 'zod';
import { ClosedError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';
import { newId } from './ids.js';
import { MemoryStore } from './memory-store.js';
import { IdSchema, parseId } from './schemas.js';
import type { PoolRecord, TaskStore } from './task-store.js';

/** A pool as callers see it. */
export interface Pool {
  readonly id: string;
  readonly topics: readonly string[];
  /** Agent ids in join order. */
  readonly members: readonly string[];
  /** Minimum trust to join; null when there is none. */
  readonly trustThreshold: number | null;
  /** Whether joins go through an admission policy. */
  readonly hasAdmissionPolicy: boolean;
}

/** What an admission policy is told about a join. */
export interface AdmissionContext {
  readonly pool: Pool;
  /** The agent's trust from the trust provider, or null without one. */
  readonly trust: number | null;
}

/** Decides who may join a pool. */
export interface AdmissionPolicy {
  canAdmit(agentId: string, context: AdmissionContext): boolean | Promise<boolean>;
}

/** Tells how much an agent is trusted (compared with a pool's `trustThreshold`). */
export interface TrustProvider {
  getTrust(agentId: string): number | Promise<number>;
}

/** `createPool`'s argument. */
export interface CreatePoolInput {
  /** Default: a generated `pool_…` id. */
  readonly id?: string;
  readonly topics?: readonly string[];
  readonly admissionPolicy?: AdmissionPolicy;
  /** Agents whose trust is below this (or unknown) are refused. */
  readonly trustThreshold?: number;
  /** Trust source for this pool; default the manager's. */
  readonly trust?: TrustProvider;
}

/** Options of {@link PoolManager}. */
export interface PoolManagerOptions {
  /** Where pools live. Default: a new MemoryStore owned by this manager. */
  readonly store?: TaskStore;
  /** Trust source for pools that have none of their own. */
  readonly trust?: TrustProvider;
}

interface Policies {
  admissionPolicy?: AdmissionPolicy | undefined;
  trust?: TrustProvider | undefined;
}

const isFunctionHolder = <K extends string>(key: K) =>
  z.custom<Record<K, (...args: never[]) => unknown>>((value) => typeof value === 'object' && value !== null && typeof (value as Record<string, unknown>)[key] === 'function', `must have a ${key}() method`);

const AdmissionPolicySchema = isFunctionHolder('canAdmit');
const TrustSchema = isFunctionHolder('getTrust');
const CreatePoolSchema = z.strictObject({
  id: IdSchema.optional(),
  topics: z.array(IdSchema).optional(),
  admissionPolicy: AdmissionPolicySchema.optional(),
  trustThreshold: z.number().finite().optional(),
  trust: TrustSchema.optional(),
});
const PoliciesSchema = z.strictObject({ admissionPolicy: AdmissionPolicySchema.optional(), trust: TrustSchema.optional() });
const OptionsSchema = z.strictObject({
  store: z.custom<TaskStore>((value) => typeof value === 'object' && value !== null && typeof (value as TaskStore).insertPool === 'function', 'must be a TaskStore').optional(),
  trust: TrustSchema.optional(),
});

/** Creates pools and manages their membership (DESIGN §5). All methods async and validated. */
export class PoolManager {
  readonly #store: TaskStore;
  readonly #ownsStore: boolean;
  readonly #trust: TrustProvider | undefined;
  readonly #policies = new Map<string, Policies>();
  #closed = false;

  constructor(options: PoolManagerOptions = {}) {
    const resolved = parseInput(OptionsSchema, options, 'options');
    this.#ownsStore = resolved.store === undefined;
    this.#store = resolved.store ?? new MemoryStore();
    this.#trust = options.trust;
  }

  /** Creates a pool. A taken id → `DuplicateIdError`. */
  async createPool(input: CreatePoolInput = {}): Promise<Pool> {
    this.#assertOpen();
    parseInput(CreatePoolSchema, input, 'input');
    const id = input.id ?? newId('pool');
    const record = await this.#store.insertPool({
      id,
      topics: [...new Set(input.topics ?? [])],
      trustThreshold: input.trustThreshold ?? null,
      hasAdmissionPolicy: input.admissionPolicy !== undefined,
    });
    if (input.admissionPolicy !== undefined || input.trust !== undefined) this.#policies.set(id, { admissionPolicy: input.admissionPolicy, trust: input.trust });
    return toPool(record);
  }

  /**
   * Gives this manager the admission policy and trust provider of a pool created elsewhere (another
   * process sharing the store). False when the pool does not exist.
   */
  async attachPolicy(poolId: string, policies: { readonly admissionPolicy?: AdmissionPolicy; readonly trust?: TrustProvider }): Promise<boolean> {
    this.#assertOpen();
    const id = parseId(poolId, 'poolId');
    parseInput(PoliciesSchema, policies, 'policies');
    if ((await this.#store.getPool(id)) === null) return false;
    this.#policies.set(id, { admissionPolicy: policies.admissionPolicy, trust: policies.trust });
    return true;
  }

  /**
   * Adds `agentId` to the pool. False when the pool does not exist, its admission policy refuses, the
   * agent's trust is below the pool's threshold (or unknown), or the pool has a policy this manager
   * does not hold. True when the agent is (or already was) a member.
   */
  async joinPool(poolId: string, agentId: string): Promise<boolean> {
    this.#assertOpen();
    const id = parseId(poolId, 'poolId');
    const agent = parseId(agentId, 'agentId');
    const record = await this.#store.getPool(id);
    if (record === null) return false;
    if (record.members.includes(agent)) return true;
    const policies = this.#policies.get(id) ?? {};
    if (record.hasAdmissionPolicy && policies.admissionPolicy === undefined) return false;
    const provider = policies.trust ?? this.#trust;
    const trust = provider === undefined ? null : await provider.getTrust(agent);
    if (record.trustThreshold !== null && (typeof trust !== 'number' || !(trust >= record.trustThreshold))) return false;
    if (policies.admissionPolicy !== undefined && (await policies.admissionPolicy.canAdmit(agent, { pool: toPool(record), trust })) !== true) return false;
    return this.#store.addPoolMember(id, agent);
  }

  /** Removes `agentId` from the pool; true when it was a member. */
  async leavePool(poolId: string, agentId: string): Promise<boolean> {
    this.#assertOpen();
    return this.#store.removePoolMember(parseId(poolId, 'poolId'), parseId(agentId, 'agentId'));
  }

  /** The pool, or null. */
  async getPool(poolId: string): Promise<Pool | null> {
    this.#assertOpen();
    const record = await this.#store.getPool(parseId(poolId, 'poolId'));
    return record === null ? null : toPool(record);
  }

  /** Every pool, in creation order. */
  async listPools(): Promise<Pool[]> {
    this.#assertOpen();
    return (await this.#store.listPools()).map(toPool);
  }

  /** Ids of the pools `agentId` has joined, in pool creation order. */
  async getPoolsForAgent(agentId: string): Promise<string[]> {
    this.#assertOpen();
    return this.#store.getPoolsForAgent(parseId(agentId, 'agentId'));
  }

  /** Stops the manager; closes the store only if the manager created it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsStore) await this.#store.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('PoolManager');
  }
}

function toPool(record: PoolRecord): Pool {
  return { id: record.id, topics: [...record.topics], members: [...record.members], trustThreshold: record.trustThreshold, hasAdmissionPolicy: record.hasAdmissionPolicy };
}
