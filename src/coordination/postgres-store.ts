/**
 * A store on PostgreSQL for many processes on many machines. Claims are single conditional
 * statements: `claimTask` updates `WHERE state = 'pending'` (row locks serialise racers and the loser
 * re-checks the predicate and updates nothing), `claimNext` picks its row with `FOR UPDATE SKIP
 * LOCKED` so concurrent claimers never wait on each other's rows. Claim-holder calls (report, fail,
 * renew, start) are one conditional update on (id, agent, claimed state, fencing token); only when it
 * matches nothing does the store read the row to say why.
 *
 * Terminal transitions `pg_notify` the task id in the same statement; `waitUntilDone` LISTENs on a
 * dedicated connection and falls back to a bounded poll (a notification can be lost while the LISTEN
 * connection reconnects). The schema (default `converge`) is created on first use under a
 * transaction-scoped advisory lock, so that several processes starting at once do not collide.
 * `leaderLock(name)` elects one leader among replicas with session advisory locks.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ClosedError, DuplicateIdError, NotFoundError, StoreError, TimeoutError, ValidationError } from '../shared/errors.js';
import { StoreConnectionError } from './errors.js';
import { parseInput } from '../shared/validation.js';
import { DonePoller } from './done-poller.js';
import { DoneWaiters } from './done-waiters.js';
import { encodeJson } from './json-codec.js';
import { LeaderLock, type LeaderLockOptions } from './leader-lock.js';
import { loadPg, type PgClient, type PgConfig, type PgPool, type PgQueryResult } from './optional-deps.js';
import { PendingWakers, type PendingWake } from './pending-wake.js';
import { PgListener } from './postgres-listener.js';
import {
  DDL_LOCK_NAME,
  PG_SCHEMA_VERSION,
  SCHEMA_NAME_PATTERN,
  doneChannel,
  idleRegistrationSql,
  pendingChannel,
  pgRowToPool,
  pgArrayToTask,
  pgRowToTask,
  pgStatements,
  quoteIdent,
  schemaDdl,
  type NamedStatement,
  type PgPoolRow,
  type PgTaskRow,
} from './postgres-schema.js';
import { IdSchema } from './schemas.js';
import {
  claimHolderError,
  compareClaimOrder,
  failDecision,
  isTerminalState,
  pendingTask,
  settleDecision,
  type ClaimHolder,
  type NewTask,
  type SettleOutcome,
  type Settlement,
  type Task,
  type TaskFilter,
} from './task.js';
import type { PendingQuery, PoolRecord, SettledAndClaimed, TaskStore } from './task-store.js';

/**
 * A node-postgres `Pool` (`new pg.Pool(...)`) of yours, described structurally so that these
 * declarations do not need `@types/pg`. The store queries it, never closes it, and opens its LISTEN
 * and leader-lock connections with the pool's `options`.
 */
export interface PostgresPoolLike {
  query(...args: never[]): unknown;
  connect(...args: never[]): unknown;
  readonly options?: object;
}

/** Options of {@link PostgresStore}: a connection string or a pool of yours (never closed by the store). */
export interface PostgresStoreOptions {
  /** `postgres://user:password@host:5432/database`. */
  readonly connectionString?: string;
  readonly pool?: PostgresPoolLike;
  /** Schema holding the tables; created on first use. Default `converge`. */
  readonly schema?: string;
  /** Size of the pool the store creates from `connectionString`. Default 10. */
  readonly max?: number;
  /**
   * A connection attempt that gets no answer within this long fails with `StoreConnectionError`
   * (code `CONVERGE_STORE_CONNECTION`). Default 10 000 ms. Applies to connections the store opens
   * (its pool from `connectionString`, LISTEN and leader-lock connections), not to a pool you give.
   */
  readonly connectTimeoutMs?: number;
  /**
   * A statement with no answer within this long fails with `TimeoutError` (`CONVERGE_TIMEOUT`); the
   * server cancels it too (`statement_timeout`). Default 30 000 ms. Like `connectTimeoutMs`, for
   * connections the store opens.
   */
  readonly queryTimeoutMs?: number;
  /** Fallback poll of `waitUntilDone` when a notification is missed. Default 1 000 ms. */
  readonly pollIntervalMs?: number;
  /** Receives background failures (LISTEN connection, poll). Default: `process.emitWarning`. */
  readonly onError?: (error: unknown) => void;
}

const TimeoutOption = z.number().int().min(1).max(2_147_483_647);
const OptionsSchema = z
  .strictObject({
    connectionString: z.string().min(1, 'is empty: the PostgreSQL URL is missing').optional(),
    pool: z
      .custom<PostgresPoolLike>(
        (value) => typeof value === 'object' && value !== null && typeof (value as PgPool).query === 'function' && typeof (value as PgPool).connect === 'function',
        'must be a pg.Pool (an object with query() and connect())',
      )
      .optional(),
    schema: z.string().regex(SCHEMA_NAME_PATTERN, 'must be an identifier of at most 48 characters ([A-Za-z_][A-Za-z0-9_]*)').optional(),
    max: z.number().int().min(1).max(1000).optional(),
    pollIntervalMs: z.number().int().min(1).max(3_600_000).optional(),
    connectTimeoutMs: TimeoutOption.optional(),
    queryTimeoutMs: TimeoutOption.optional(),
    onError: z.custom<(error: unknown) => void>((value) => typeof value === 'function', 'must be a function').optional(),
  })
  .refine((options) => (options.connectionString === undefined) !== (options.pool === undefined), {
    message: 'give exactly one of connectionString (a postgres:// URL) and pool',
    path: ['connectionString'],
  });

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

const DEFAULT_SCHEMA = 'converge';
const DEFAULT_POOL_SIZE = 10;
const DEFAULT_POLL_INTERVAL_MS = 1_000;
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';
/** How long a `waiters` row outlives its wait, in case the process dies without removing it. */
const WAITER_GRACE_MS = 60_000;
/** Rounds of conditional update + diagnosis before a holder call gives up (only under heavy churn). */
const MAX_HELD_ATTEMPTS = 5;
/**
 * How long an idle registration lasts. A live idle claimer re-registers whenever it arms a wake
 * again; a dead one stops costing submits their NOTIFY when this runs out.
 */
const IDLE_REGISTRATION_MS = 60_000;
/** How long an idle registration outlives the claimer's going busy (see `#setIdle`). */
const IDLE_LINGER_MS = 1_000;

/** PostgreSQL-backed {@link TaskStore}. */
export class PostgresStore implements TaskStore {
  readonly kind = 'postgres';
  /** The schema holding this store's tables. */
  readonly schema: string;
  /** The pool: the caller's, or created with the driver on first use. */
  #pool: PgPool | undefined;
  readonly #ownsPool: boolean;
  /** Settings of every connection the store opens (pool, LISTEN, leader locks). */
  readonly #clientConfig: PgConfig;
  readonly #poolSize: number;
  readonly #queryTimeoutMs: number;
  readonly #sql: ReturnType<typeof pgStatements>;
  readonly #waiters = new DoneWaiters((id) => this.#removeWaiterRow(id));
  /** This instance's name in the `waiters` table. */
  readonly #waiterId = randomUUID();
  readonly #poller: DonePoller;
  readonly #listener: PgListener;
  readonly #locks = new Set<LeaderLock>();
  /** Idle claimers of this instance; while there are some, the instance is registered in `idle_claimers`. */
  readonly #wakers = new PendingWakers((idle) => this.#setIdle(idle));
  /** Idle registrations and removals, in order (so a removal never overtakes a later registration). */
  #idleOps: Promise<void> = Promise.resolve();
  readonly #onError: (error: unknown) => void;
  #schemaReady = false;
  #schemaPromise: Promise<void> | undefined;
  #closed = false;

  constructor(options: PostgresStoreOptions) {
    if (typeof options === 'object' && options !== null && 'connectionString' in options && options.connectionString === undefined && options.pool === undefined) {
      throw new ValidationError('options.connectionString', 'is undefined: the PostgreSQL URL is missing (is the environment variable that should hold it set?)');
    }
    const resolved = parseInput(OptionsSchema, options, 'options');
    this.schema = resolved.schema ?? DEFAULT_SCHEMA;
    this.#onError = resolved.onError ?? ((error: unknown) => process.emitWarning(`PostgresStore: ${String(error)}`));
    this.#poolSize = resolved.max ?? DEFAULT_POOL_SIZE;
    this.#queryTimeoutMs = resolved.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    const timeouts = {
      connectionTimeoutMillis: resolved.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      query_timeout: this.#queryTimeoutMs,
      statement_timeout: this.#queryTimeoutMs,
    };
    if (resolved.pool !== undefined) {
      this.#pool = resolved.pool as unknown as PgPool;
      this.#ownsPool = false;
      this.#clientConfig = { ...timeouts, ...((resolved.pool as { options?: object }).options ?? {}) };
    } else {
      this.#clientConfig = { connectionString: resolved.connectionString, ...timeouts };
      this.#ownsPool = true;
    }
    this.#sql = pgStatements(this.schema);
    this.#poller = new DonePoller(this.#waiters, (ids) => this.#fetchDone(ids), resolved.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, this.#onError);
    const done = doneChannel(this.schema);
    this.#listener = new PgListener((extra) => this.#newClient(extra), [done, pendingChannel(this.schema)], {
      onNotify: (channel, payload) => (channel === done ? this.#onNotify(payload) : this.#wakers.notify()),
      onError: this.#onError,
      onReconnect: () => void this.#poller.pollNow(),
    });
  }

  async insertTask(task: NewTask): Promise<Task> {
    await this.#query(this.#sql.insert, [task.id, encodeJson(task.payload, 'payload'), task.poolId, task.topic, task.requiredCapabilities, task.priority, task.claimTtlMs]);
    return pendingTask(task);
  }

  async insertTasks(tasks: readonly NewTask[]): Promise<Task[]> {
    if (tasks.length === 0) return [];
    // Payloads go as one JSON array (one native stringify here, one parse there, instead of one
    // stringify per payload and an escaped array literal); a column that holds only its default
    // (no pool, no topic, no capabilities, priority 0, no TTL) goes as NULL: the statement fills it in.
    let pools: (string | null)[] | null = null;
    let topics: (string | null)[] | null = null;
    let capabilities: (string | null)[] | null = null;
    let priorities: number[] | null = null;
    let ttls: (number | null)[] | null = null;
    for (const task of tasks) {
      if (task.poolId !== null) pools ??= tasks.map((each) => each.poolId);
      if (task.topic !== null) topics ??= tasks.map((each) => each.topic);
      if (task.requiredCapabilities.length > 0) capabilities ??= tasks.map((each) => (each.requiredCapabilities.length > 0 ? JSON.stringify(each.requiredCapabilities) : null));
      if (task.priority !== 0) priorities ??= tasks.map((each) => each.priority);
      if (task.claimTtlMs !== null) ttls ??= tasks.map((each) => each.claimTtlMs);
    }
    await this.#query(this.#sql.insertMany, [
      tasks.map((task) => task.id),
      encodePayloads(tasks),
      pools,
      topics,
      capabilities,
      priorities,
      ttls,
    ]);
    return tasks.map(pendingTask);
  }

  async getTask(id: string): Promise<Task | null> {
    const row = (await this.#query<PgTaskRow>(this.#sql.get, [id])).rows[0];
    return row === undefined ? null : pgRowToTask(row);
  }

  async claimTask(id: string, agentId: string, nowMs: number): Promise<Task | null> {
    const row = (await this.#query<PgTaskRow>(this.#sql.claim, [id, agentId, nowMs])).rows[0];
    return row === undefined ? null : pgRowToTask(row);
  }

  async claimTasks(ids: readonly string[], agentId: string, nowMs: number): Promise<(Task | null)[]> {
    const { rows } = await this.#query<PgTaskRow>(this.#sql.claimMany, [ids, agentId, nowMs]);
    const claimed = new Map(rows.map((row) => [row.id, pgRowToTask(row)]));
    return ids.map((id) => claimed.get(id.toWellFormed()) ?? null);
  }

  async claimNext(agentId: string, filter: TaskFilter, nowMs: number): Promise<Task | null> {
    const row = (await this.#query<PgTaskRow>(this.#sql.claimNext, [agentId, nowMs, filter.poolIds ?? null, filter.capabilities ?? null, filter.topics ?? null, filter.topicRequired === true])).rows[0];
    return row === undefined ? null : pgRowToTask(row);
  }

  async claimNextBatch(agentId: string, filter: TaskFilter, nowMs: number, max: number): Promise<Task[]> {
    const { rows } = await this.#query<{ tasks: string | null }>(this.#sql.claimBatch, [agentId, nowMs, filter.poolIds ?? null, filter.capabilities ?? null, filter.topics ?? null, max, filter.topicRequired === true]);
    const json = rows[0]?.tasks;
    if (json === undefined || json === null) return [];
    return (JSON.parse(json) as unknown[][]).map(pgArrayToTask).sort(compareClaimOrder);
  }

  async settleTasks(agentId: string, items: readonly Settlement[]): Promise<SettleOutcome[]> {
    const outcomes: (SettleOutcome | undefined)[] = new Array<SettleOutcome | undefined>(items.length).fill(undefined);
    let open = items.map((_, index) => index);
    for (let attempt = 0; open.length > 0; attempt++) {
      if (attempt === MAX_HELD_ATTEMPTS) throw new StoreError(`${open.length} tasks kept changing under ${MAX_HELD_ATTEMPTS} attempts to settle them`);
      const { rows } = await this.#query<{ applied: number; ids: string[] | null }>(
        this.#sql.settle,
        settleValues(agentId, open.length === items.length ? items : open.map((index) => items[index]!)),
      );
      const { applied: count, ids } = rows[0]!;
      if (count === open.length) {
        for (const index of open) outcomes[index] = true;
        break;
      }
      // Ids as stored: the driver sends a lone surrogate as U+FFFD (toWellFormed does the same).
      const applied = new Set(ids ?? []);
      const missed: number[] = [];
      for (const index of open) {
        if (applied.has(items[index]!.id.toWellFormed())) outcomes[index] = true;
        else missed.push(index);
      }
      if (missed.length === 0) break;
      // Say why, from the rows as they are now (one read for all of them); one that now looks
      // settleable changed in between and goes round again.
      const current = new Map((await this.#query<PgTaskRow>(this.#sql.getMany, [missed.map((index) => items[index]!.id)])).rows.map((row) => [row.id, pgRowToTask(row)]));
      open = [];
      for (const index of missed) {
        const task = current.get(items[index]!.id.toWellFormed());
        const decision = task === undefined ? false : settleDecision(task, agentId, items[index]!);
        if (decision === 'apply') open.push(index);
        else outcomes[index] = decision;
      }
    }
    return outcomes as SettleOutcome[];
  }

  async settleAndClaimNext(agentId: string, items: readonly Settlement[], filter: TaskFilter, nowMs: number, max: number): Promise<SettledAndClaimed> {
    const { rows } = await this.#query<{ applied: number; ids: string[] | null; tasks: string | null }>(this.#sql.settleClaim, [
      ...settleValues(agentId, items),
      nowMs,
      filter.poolIds ?? null,
      filter.capabilities ?? null,
      filter.topics ?? null,
      max,
      filter.topicRequired === true,
    ]);
    const row = rows[0]!;
    const tasks = row.tasks === null ? [] : (JSON.parse(row.tasks) as unknown[][]).map(pgArrayToTask).sort(compareClaimOrder);
    if (row.applied === items.length) return { outcomes: items.map(() => true), tasks };
    // Some were not applied: say why (and retry those that changed in between) as settleTasks does.
    // The claim has committed, so a failure here becomes those items' outcome, not the call's.
    const applied = new Set(row.ids ?? []);
    const missed = items.filter((item) => !applied.has(item.id.toWellFormed()));
    let rest: SettleOutcome[];
    try {
      rest = await this.settleTasks(agentId, missed);
    } catch (error) {
      rest = missed.map(() => (error instanceof Error ? error : new StoreError(String(error))));
    }
    const outcomeOf = new Map(missed.map((item, index) => [item, rest[index]!]));
    return { outcomes: items.map((item) => outcomeOf.get(item) ?? true), tasks };
  }

  pendingWake(timeoutMs: number): PendingWake {
    if (this.#closed) return this.#wakers.arm(timeoutMs, Promise.reject(new ClosedError('PostgresStore')));
    // Arming the first wake registers this instance as idle (after LISTEN is up), so submits NOTIFY.
    this.#idleTimeoutMs = Math.max(this.#idleTimeoutMs, Math.min(timeoutMs, 24 * 3_600_000));
    const wake = this.#wakers.arm(timeoutMs);
    return { ready: this.#idleReady, woken: wake.woken, cancel: wake.cancel };
  }

  /** Resolves once this instance is registered as idle (and LISTENing); rejects if that failed. */
  #idleReady: Promise<void> = Promise.resolve();
  #everIdle = false;
  /** The longest wake armed so far: a registration outlives it, so an idle claimer stays registered. */
  #idleTimeoutMs = 0;

  async #registerIdle(durationMs: number): Promise<void> {
    this.#assertOpen();
    if (!this.#schemaReady) await this.#ensureSchema();
    const client = await this.#pool!.connect();
    try {
      await client.query(idleRegistrationSql(this.schema, this.#waiterId, durationMs));
      client.release();
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release(error instanceof Error ? error : true);
      throw this.#translate(error, 'cannot register an idle claimer');
    }
  }

  #setIdle(idle: boolean): void {
    if (this.#closed) return;
    if (idle) {
      this.#everIdle = true;
      clearTimeout(this.#idleLinger);
      this.#idleLinger = undefined;
      if (Date.now() < this.#registeredUntil) {
        // Still registered (the claimer was busy only briefly): every submit since the registration
        // has seen it and notified, and LISTEN is up again once `ready` resolves. No lock, no write.
        const ready = this.#listener.ready();
        this.#idleReady = ready;
        ready.catch(() => undefined);
        return;
      }
      const registered = this.#idleOps.then(async () => {
        await this.#listener.ready();
        const durationMs = this.#idleTimeoutMs + IDLE_REGISTRATION_MS;
        const from = Date.now();
        await this.#registerIdle(durationMs);
        // Half the duration: a margin for the database's clock (the row expires by it) and ours.
        this.#registeredUntil = from + durationMs / 2;
      });
      this.#idleReady = registered;
      registered.catch(() => undefined); // reported to whoever awaits `ready`
      this.#idleOps = registered.catch(() => undefined);
    } else {
      // Busy again. The registration lingers a little: a claimer on a shallow queue goes idle again
      // within milliseconds, and re-registering each time takes a lock every submit waits for.
      // Held longer, it would make every submit of a busy system NOTIFY.
      clearTimeout(this.#idleLinger);
      this.#idleLinger = setTimeout(() => {
        this.#idleLinger = undefined;
        this.#registeredUntil = 0;
        this.#idleOps = this.#idleOps
          .then(() => (this.#closed ? undefined : this.#query(this.#sql.removeIdle, [this.#waiterId])))
          .then(
            () => undefined,
            (error: unknown) => {
              if (!this.#closed) this.#onError(error);
            },
          );
      }, IDLE_LINGER_MS);
      this.#idleLinger.unref();
    }
  }

  /** Until when (local epoch ms, with a margin) this instance's idle registration surely holds. */
  #registeredUntil = 0;
  /** Removes the registration once the instance has stayed busy for IDLE_LINGER_MS. */
  #idleLinger: NodeJS.Timeout | undefined;

  async startTask(id: string, holder: ClaimHolder): Promise<Task | null> {
    const row = await this.#held(this.#sql.start, id, holder, []);
    return row === null ? null : pgRowToTask(row);
  }

  async completeTask(id: string, holder: ClaimHolder, result: unknown): Promise<boolean> {
    const row = await this.#held(this.#sql.complete, id, holder, [encodeJson(result, 'result')]);
    if (row === null) return false;
    this.#waiters.notify(pgRowToTask(row));
    return true;
  }

  async failTask(id: string, reason: unknown, holder: ClaimHolder | undefined): Promise<boolean> {
    const json = encodeJson(reason, 'reason');
    let row: PgTaskRow | null | undefined;
    if (holder === undefined) {
      row = (await this.#query<PgTaskRow>(this.#sql.fail, [id, json])).rows[0];
    } else {
      row = await this.#held(this.#sql.failHeld, id, holder, [json], (task) => {
        const decision = failDecision(task, holder);
        return decision === 'fail' ? null : decision;
      });
    }
    if (row === undefined || row === null) return false;
    this.#waiters.notify(pgRowToTask(row));
    return true;
  }

  async cancelTask(id: string): Promise<boolean> {
    const row = (await this.#query<PgTaskRow>(this.#sql.cancel, [id])).rows[0];
    if (row === undefined) return false;
    this.#waiters.notify(pgRowToTask(row));
    return true;
  }

  async renewClaim(id: string, holder: ClaimHolder, nowMs: number): Promise<Task | null> {
    const row = await this.#held(this.#sql.renew, id, holder, [nowMs]);
    return row === null ? null : pgRowToTask(row);
  }

  async releaseExpiredClaims(nowMs: number): Promise<string[]> {
    return (await this.#query<{ id: string }>(this.#sql.release, [nowMs])).rows.map((row) => row.id);
  }

  async listPendingTasks(query: PendingQuery): Promise<Task[]> {
    const filter = query.filter ?? {};
    const statement = query.sortByPriority ? this.#sql.pendingByPriority : this.#sql.pendingBySeq;
    const result = await this.#query<PgTaskRow>(statement, [filter.poolIds ?? null, filter.capabilities ?? null, filter.topics ?? null, query.agentId ?? null]);
    return result.rows.map(pgRowToTask);
  }

  async waitUntilDone(id: string, timeoutMs: number): Promise<Task | null> {
    this.#assertOpen();
    if (timeoutMs <= 0) {
      const task = await this.getTask(id);
      return task !== null && isTerminalState(task.state) ? task : null;
    }
    // Listen, then say who waits (so terminal transitions notify), then look: a completion after
    // the look is notified; one racing the registration is caught by the look or by the poll.
    await this.#listener.ready().catch((error: unknown) => this.#onError(error));
    const fresh = !this.#waiters.has(id);
    const waiting = this.#waiters.wait(id, timeoutMs);
    let task: Task | null;
    try {
      if (fresh) await this.#query(this.#sql.addWaiter, [id, this.#waiterId, Date.now() + timeoutMs + WAITER_GRACE_MS, Date.now()]);
      task = await this.getTask(id);
    } catch (error) {
      waiting.settle(null);
      throw error;
    }
    if (task === null || isTerminalState(task.state)) {
      waiting.settle(task);
      return task;
    }
    this.#poller.schedule();
    return waiting.promise;
  }

  /**
   * Tries to become leader for `name` (e.g. `source:<id>`) among every process using this schema.
   * Always resolves with a handle: check `isLeader`, retry with `tryAcquire()`, watch `signal`,
   * and `release()` it (closing the store releases it too).
   */
  async leaderLock(name: string, options: LeaderLockOptions = {}): Promise<LeaderLock> {
    this.#assertOpen();
    const lockName = parseInput(IdSchema, name, 'name');
    const checked = parseInput(z.strictObject({ checkIntervalMs: z.number().int().min(10).max(3_600_000).optional() }), options, 'options');
    const lock = new LeaderLock(lockName, `${this.schema}:${lockName}`, (extra) => this.#newClient(extra), checked, (released) => this.#locks.delete(released));
    this.#locks.add(lock);
    try {
      await lock.tryAcquire();
    } catch (error) {
      await lock.release();
      throw error;
    }
    return lock;
  }

  /** Drops the schema and everything in it. For tests and teardown; the store stays usable (it recreates the schema). */
  async dropSchema(): Promise<void> {
    this.#assertOpen();
    const pool = await this.#ensurePool();
    try {
      await pool.query(`DROP SCHEMA IF EXISTS ${quoteIdent(this.schema)} CASCADE`);
    } catch (error) {
      throw this.#translate(error, 'cannot drop the schema');
    }
    this.#schemaReady = false;
    this.#schemaPromise = undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#poller.stop();
    this.#waiters.closeAll('PostgresStore');
    this.#wakers.notify();
    clearTimeout(this.#idleLinger);
    await this.#idleOps;
    if (this.#everIdle) await this.#pool?.query({ text: this.#sql.removeIdle.text, values: [this.#waiterId] }).catch(() => undefined);
    await Promise.all([...this.#locks].map((lock) => lock.release()));
    await this.#listener.close();
    await this.#schemaPromise?.catch(() => undefined);
    await this.#poolPromise?.catch(() => undefined);
    if (this.#ownsPool) await this.#pool?.end().catch((error: unknown) => this.#onError(error));
  }

  async insertPool(pool: Omit<PoolRecord, 'members'>): Promise<PoolRecord> {
    const result = await this.#query(this.#sql.insertPool, [pool.id, pool.topics, pool.trustThreshold, pool.hasAdmissionPolicy]);
    if (result.rowCount === 0) throw new DuplicateIdError('pool', pool.id);
    return { ...pool, members: [] };
  }

  async getPool(id: string): Promise<PoolRecord | null> {
    const row = (await this.#query<PgPoolRow>(this.#sql.getPool, [id])).rows[0];
    return row === undefined ? null : pgRowToPool(row);
  }

  async listPools(): Promise<PoolRecord[]> {
    return (await this.#query<PgPoolRow>(this.#sql.listPools, [])).rows.map(pgRowToPool);
  }

  async addPoolMember(poolId: string, agentId: string): Promise<boolean> {
    try {
      await this.#query(this.#sql.addMember, [poolId, agentId]);
      return true;
    } catch (error) {
      if ((error as StoreError).cause instanceof Error && ((error as StoreError).cause as { code?: string }).code === FOREIGN_KEY_VIOLATION) return false;
      throw error;
    }
  }

  async removePoolMember(poolId: string, agentId: string): Promise<boolean> {
    return ((await this.#query(this.#sql.removeMember, [poolId, agentId])).rowCount ?? 0) > 0;
  }

  async getPoolsForAgent(agentId: string): Promise<string[]> {
    return (await this.#query<{ id: string }>(this.#sql.poolsForAgent, [agentId])).rows.map((row) => row.id);
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('PostgresStore');
  }

  async #query<R = Record<string, unknown>>(statement: NamedStatement, values: unknown[]): Promise<PgQueryResult<R>> {
    this.#assertOpen();
    if (!this.#schemaReady) await this.#ensureSchema();
    try {
      return await this.#pool!.query<R>({ name: statement.name, text: statement.text, values });
    } catch (error) {
      const inserting = statement === this.#sql.insert || statement === this.#sql.insertMany;
      if ((error as { code?: string }).code === UNIQUE_VIOLATION && inserting) {
        throw new DuplicateIdError('task', duplicateKey(error) ?? String(values[0]));
      }
      if ((error as { code?: string }).code === FOREIGN_KEY_VIOLATION && inserting) {
        throw new NotFoundError('pool', missingPool(error) ?? 'of a task');
      }
      throw this.#translate(error, 'failed');
    }
  }

  /** A driver error as the store reports it: connection failures and timeouts get their own classes. */
  #translate(error: unknown, what: string): Error {
    if (isConvergeError(error)) return error;
    const message = error instanceof Error ? error.message : String(error);
    if (isQueryTimeout(error)) {
      const timeout = new TimeoutError(`PostgreSQL store (${this.schema}): a statement got no answer within queryTimeoutMs (${this.#queryTimeoutMs} ms): ${message}`);
      Object.defineProperty(timeout, 'cause', { value: error, configurable: true, writable: true });
      return timeout;
    }
    if (isConnectionFailure(error)) {
      return new StoreConnectionError(`PostgreSQL store (${this.schema}): cannot connect to ${describeTarget(this.#clientConfig)}: ${connectionReason(error)}`, { cause: error });
    }
    return new StoreError(`PostgreSQL store (${this.schema}) ${what}: ${message}`, { cause: error });
  }

  /** A new dedicated connection (LISTEN, leader lock) with the store's settings and `extra`. */
  async #newClient(extra: PgConfig): Promise<PgClient> {
    const { Client } = await loadPg();
    return new Client({ ...this.#clientConfig, ...extra });
  }

  #poolPromise: Promise<PgPool> | undefined;

  /** The pool, created (with the driver loaded) on first use. */
  #ensurePool(): Promise<PgPool> {
    if (this.#pool !== undefined) return Promise.resolve(this.#pool);
    this.#poolPromise ??= loadPg().then(({ Pool }) => {
      const pool = new Pool({ ...this.#clientConfig, max: this.#poolSize });
      // An idle pooled connection that dies must not crash the process; the next query reconnects.
      pool.on('error', (error) => this.#onError(this.#translate(error, 'lost an idle connection')));
      if (this.#closed) {
        void pool.end().catch(() => undefined);
        throw new ClosedError('PostgresStore');
      }
      this.#pool = pool;
      return pool;
    });
    return this.#poolPromise;
  }

  /**
   * The holder's conditional update. When it matches nothing, reads the row to say why: null for an
   * unknown id or when `explain` says to skip, the error `explain` gives otherwise (default: the
   * claim-holder rule). If the row has meanwhile become one the holder holds, tries again.
   */
  async #held(
    statement: NamedStatement,
    id: string,
    holder: ClaimHolder,
    extra: unknown[],
    explain: (task: Task) => Error | 'skip' | null = (task) => claimHolderError(task, holder),
  ): Promise<PgTaskRow | null> {
    for (let attempt = 0; attempt < MAX_HELD_ATTEMPTS; attempt++) {
      const row = (await this.#query<PgTaskRow>(statement, [id, holder.agentId, holder.fencingToken ?? null, ...extra])).rows[0];
      if (row !== undefined) return row;
      const current = await this.getTask(id);
      if (current === null) return null;
      const why = explain(current);
      if (why === 'skip') return null;
      if (why !== null) throw why;
    }
    throw new StoreError(`task ${JSON.stringify(id)} kept changing under ${MAX_HELD_ATTEMPTS} attempts to update it`);
  }

  #ensureSchema(): Promise<void> {
    this.#schemaPromise ??= this.#createSchema().then(
      () => {
        this.#schemaReady = true;
      },
      (error: unknown) => {
        this.#schemaPromise = undefined;
        throw isConvergeError(error) ? error : this.#translate(error, `cannot create schema ${this.schema}`);
      },
    );
    return this.#schemaPromise;
  }

  async #createSchema(): Promise<void> {
    const pool = await this.#ensurePool();
    let client;
    try {
      client = await pool.connect();
    } catch (error) {
      throw this.#translate(error, 'cannot connect');
    }
    try {
      await client.query('BEGIN');
      // CREATE … IF NOT EXISTS is not safe against a concurrent CREATE (it can fail on the catalog's
      // unique index); every process takes this lock first, so DDL runs one process at a time.
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [DDL_LOCK_NAME]);
      await client.query(schemaDdl(this.schema));
      const version = await client.query<{ value: string }>(`SELECT value FROM ${quoteIdent(this.schema)}.meta WHERE key = 'schema_version'`);
      await client.query('COMMIT');
      const found = version.rows[0]?.value;
      if (Number(found) !== PG_SCHEMA_VERSION) {
        throw new StoreError(`schema ${this.schema} has coordination schema version ${String(found)}; this build reads version ${PG_SCHEMA_VERSION}`);
      }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      // A broken or timed-out connection must not go back to the pool.
      client.release(error instanceof Error && !(error instanceof StoreError) ? error : undefined);
      throw error instanceof StoreError ? error : this.#translate(error, `cannot create schema ${this.schema}`);
    }
    client.release();
  }

  async #fetchDone(ids: string[]): Promise<Task[]> {
    // A poll is also the moment to restore a LISTEN connection that dropped.
    void this.#listener.ready().catch(() => undefined);
    return (await this.#query<PgTaskRow>(this.#sql.done, [ids])).rows.map(pgRowToTask);
  }

  #removeWaiterRow(id: string): void {
    if (this.#closed) return;
    this.#query(this.#sql.removeWaiter, [id, this.#waiterId]).catch((error: unknown) => {
      if (!this.#closed) this.#onError(error);
    });
  }

  #onNotify(id: string): void {
    if (!this.#waiters.has(id) || this.#closed) return;
    this.getTask(id).then(
      (task) => {
        if (task !== null) this.#waiters.notify(task);
      },
      (error: unknown) => this.#onError(error),
    );
  }
}

/** The settle statement's parameters: the agent, then each column as one JSON array (one native stringify each, no escaped array literals). */
function settleValues(agentId: string, items: readonly Settlement[]): unknown[] {
  return [
    agentId,
    encodeIds(items.map((item) => item.id)),
    JSON.stringify(items.map((item) => item.fencingToken ?? null)),
    JSON.stringify(items.map((item) => item.state)),
    encodeResults(items.map((item) => (item.state === 'pending' ? null : item.result))),
  ];
}

/**
 * Ids as one JSON array. A lone surrogate (which JSON escapes as `\udXXX`, and PostgreSQL refuses
 * to unescape into text) becomes U+FFFD first, as the driver's UTF-8 encoding makes it everywhere else.
 */
function encodeIds(ids: readonly string[]): string {
  const json = JSON.stringify(ids);
  return json.includes('\\ud') ? JSON.stringify(ids.map((id) => id.toWellFormed())) : json;
}

/** Results as one JSON array; one JSON cannot hold is refused like {@link encodeJson} refuses it, naming its item. */
function encodeResults(results: readonly unknown[]): string {
  try {
    return JSON.stringify(results);
  } catch (error) {
    results.forEach((result, index) => encodeJson(result, `items[${index}].result`));
    throw new ValidationError('items', `must hold JSON values (${error instanceof Error ? error.message : String(error)})`, { cause: error });
  }
}

/** The payloads of `tasks` as one JSON array; a payload JSON cannot hold is refused like {@link encodeJson} refuses it. */
function encodePayloads(tasks: readonly NewTask[]): string {
  const payloads = tasks.map((task) => task.payload);
  try {
    return JSON.stringify(payloads);
  } catch (error) {
    for (const payload of payloads) encodeJson(payload, 'payload');
    throw new ValidationError('payload', `must be a JSON value (${error instanceof Error ? error.message : String(error)})`, { cause: error });
  }
}

/** The pool id in a foreign key violation's detail: `Key (pool_id)=(p) is not present in table "pools".` */
function missingPool(error: unknown): string | undefined {
  const detail = (error as { detail?: unknown }).detail;
  return typeof detail === 'string' ? /^Key \(pool_id\)=\((.*)\) is not present/.exec(detail)?.[1] : undefined;
}

/** The id in a unique violation's detail: `Key (id)=(task_1) already exists.` */
function duplicateKey(error: unknown): string | undefined {
  const detail = (error as { detail?: unknown }).detail;
  return typeof detail === 'string' ? /^Key \(id\)=\((.*)\) already exists\.$/.exec(detail)?.[1] : undefined;
}

function isConvergeError(error: unknown): error is Error {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === 'string' && code.startsWith('CONVERGE_');
}

/** Error codes and messages of node-postgres and Node that mean the server could not be reached or logged into. */
const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'ENOENT']);
const CONNECTION_MESSAGES = /timeout expired|connection timeout|timeout exceeded when trying to connect|Connection terminated/i;

function isConnectionFailure(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (CONNECTION_ERROR_CODES.has(code)) return true;
    // SQLSTATE classes 08 (connection exception), 28 (invalid authorization), 3D000 (no such database), 57P03 (cannot connect now).
    if (code.startsWith('08') || code.startsWith('28') || code === '3D000' || code === '57P03') return true;
  }
  const errors = (error as { errors?: unknown }).errors;
  if (Array.isArray(errors) && errors.some(isConnectionFailure)) return true;
  return error instanceof Error && CONNECTION_MESSAGES.test(error.message);
}

function isQueryTimeout(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  // 'Query read timeout': the client's query_timeout; 57014 with statement_timeout: the server's.
  return error.message === 'Query read timeout' || ((error as { code?: unknown }).code === '57014' && /statement timeout/i.test(error.message));
}

/** Why a connection failed, in words (node's AggregateError for several addresses has an empty message). */
function connectionReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown }).code;
  if (message === 'timeout expired' || /connection timeout|timeout exceeded/i.test(message)) return `no answer within connectTimeoutMs (${message})`;
  if (message !== '') return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
  const first = (error as { errors?: unknown[] }).errors?.[0];
  return first !== undefined ? connectionReason(first) : String(code ?? 'unknown error');
}

/** `host:port/database` of a connection config, without credentials. */
function describeTarget(config: PgConfig): string {
  const url = config.connectionString;
  if (typeof url === 'string') {
    try {
      const parsed = new URL(url);
      return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}${parsed.pathname}`;
    } catch {
      return 'the server in connectionString';
    }
  }
  const host = typeof config.host === 'string' ? config.host : 'localhost';
  return `${host}:${String(config.port ?? 5432)}${typeof config.database === 'string' ? `/${config.database}` : ''}`;
}
