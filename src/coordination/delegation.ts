/**
 * Delegation of authority between agents: `direct` to one agent, or `pooled` to a pool (any member
 * may act on it). Delegations are kept in memory; revoked ones stay on record, inactive.
 */
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';
import { newId } from './ids.js';
import type { PoolManager } from './pool-manager.js';
import { IdSchema, parseId } from './schemas.js';

/** `direct`: to an agent. `pooled`: to a pool id, for any of its members. */
export type DelegationType = 'direct' | 'pooled';

/** A delegation record (a copy). */
export interface Delegation {
  readonly id: string;
  readonly fromId: string;
  readonly toId: string;
  /** What is delegated, e.g. task topics or capability names. */
  readonly scope: readonly string[];
  readonly type: DelegationType;
  /** Epoch ms. */
  readonly createdAt: number;
  readonly revokedAt: number | null;
  readonly active: boolean;
}

/** `delegate`'s options. */
export interface DelegateOptions {
  readonly scope: string | readonly string[];
  /** Default `direct`. */
  readonly type?: DelegationType;
}

/** Options of {@link DelegationProtocol}. */
export interface DelegationOptions {
  /** Resolves pooled delegations: checks the pool exists and, in `isDelegated`, membership. */
  readonly pools?: PoolManager;
  /** Clock for `createdAt`/`revokedAt`. Default `Date.now`. */
  readonly now?: () => number;
}

const DelegateSchema = z.strictObject({
  scope: z.union([IdSchema, z.array(IdSchema).min(1, 'must name at least one scope')]),
  type: z.enum(['direct', 'pooled']).optional(),
});
const ListSchema = z.strictObject({ toId: IdSchema.optional(), fromId: IdSchema.optional(), includeRevoked: z.boolean().optional() });

interface DelegationRecord {
  readonly id: string;
  readonly fromId: string;
  readonly toId: string;
  readonly scope: readonly string[];
  readonly type: DelegationType;
  readonly createdAt: number;
  revokedAt: number | null;
}

/** Grants and revokes delegations (DESIGN §5). */
export class DelegationProtocol {
  readonly #delegations = new Map<string, DelegationRecord>();
  readonly #pools: PoolManager | undefined;
  readonly #now: () => number;

  constructor(options: DelegationOptions = {}) {
    this.#pools = options.pools;
    this.#now = options.now ?? Date.now;
  }

  /** Delegates `scope` from `fromId` to `toId` (an agent, or a pool for `pooled`); returns the delegation id. */
  async delegate(fromId: string, toId: string, options: DelegateOptions): Promise<string> {
    const from = parseId(fromId, 'fromId');
    const to = parseId(toId, 'toId');
    const { scope, type = 'direct' } = parseInput(DelegateSchema, options, 'options');
    if (type === 'direct' && from === to) throw new ValidationError('toId', 'an agent cannot delegate to itself');
    if (type === 'pooled' && this.#pools !== undefined && (await this.#pools.getPool(to)) === null) throw new NotFoundError('pool', to);
    const id = newId('dlg');
    this.#delegations.set(id, { id, fromId: from, toId: to, scope: [...new Set(typeof scope === 'string' ? [scope] : scope)], type, createdAt: this.#now(), revokedAt: null });
    return id;
  }

  /** Revokes an active delegation; false when unknown or already revoked. */
  async revoke(delegationId: string): Promise<boolean> {
    const record = this.#delegations.get(parseId(delegationId, 'delegationId'));
    if (record === undefined || record.revokedAt !== null) return false;
    record.revokedAt = this.#now();
    return true;
  }

  /** Whether the delegation exists and is not revoked. */
  async isActive(delegationId: string): Promise<boolean> {
    const record = this.#delegations.get(parseId(delegationId, 'delegationId'));
    return record !== undefined && record.revokedAt === null;
  }

  /** The delegation, or null. */
  async getDelegation(delegationId: string): Promise<Delegation | null> {
    const record = this.#delegations.get(parseId(delegationId, 'delegationId'));
    return record === undefined ? null : toDelegation(record);
  }

  /** Active delegations (all with `includeRevoked`), optionally to or from one id, oldest first. */
  async listDelegations(filter: { readonly toId?: string; readonly fromId?: string; readonly includeRevoked?: boolean } = {}): Promise<Delegation[]> {
    const { toId, fromId, includeRevoked = false } = parseInput(ListSchema, filter, 'filter');
    const out: Delegation[] = [];
    for (const record of this.#delegations.values()) {
      if (toId !== undefined && record.toId !== toId) continue;
      if (fromId !== undefined && record.fromId !== fromId) continue;
      if (!includeRevoked && record.revokedAt !== null) continue;
      out.push(toDelegation(record));
    }
    return out;
  }

  /**
   * Whether `agentId` may act for `fromId` on `scope`: through an active direct delegation to it, or
   * an active pooled delegation to a pool it belongs to (needs the `pools` option).
   */
  async isDelegated(agentId: string, fromId: string, scope: string): Promise<boolean> {
    const agent = parseId(agentId, 'agentId');
    const from = parseId(fromId, 'fromId');
    const item = parseId(scope, 'scope');
    let memberOf: readonly string[] | undefined;
    for (const record of this.#delegations.values()) {
      if (record.revokedAt !== null || record.fromId !== from || !record.scope.includes(item)) continue;
      if (record.type === 'direct' && record.toId === agent) return true;
      if (record.type === 'pooled' && this.#pools !== undefined) {
        memberOf ??= await this.#pools.getPoolsForAgent(agent);
        if (memberOf.includes(record.toId)) return true;
      }
    }
    return false;
  }
}

function toDelegation(record: DelegationRecord): Delegation {
  return { ...record, scope: [...record.scope], active: record.revokedAt === null };
}
