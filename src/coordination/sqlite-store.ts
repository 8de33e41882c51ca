/**
 * A durable, embedded store on one SQLite file (better-sqlite3, WAL). Any number of processes and
 * threads may open the same file, each with its own SqliteStore: every state change runs in a
 * `BEGIN IMMEDIATE` transaction, which takes SQLite's single write lock before reading, so a claim's
 * check and update cannot interleave with another writer's and exactly one claimant wins. WAL with
 * `synchronous = NORMAL` survives a killed process (a committed transaction is in the WAL before the
 * call returns); only an OS crash or power loss can drop the last commits.
 *
 * Lock waits are retried here rather than by SQLite's busy handler, whose first sleep is a whole
 * millisecond: with transactions of a few microseconds, a short yield first and exponential sleeps
 * after keep four processes racing on one file busy instead of asleep.
 *
 * `waitUntilDone` polls (SQLite cannot notify another process); changes made through this instance
 * wake its waiters at once.
 */
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { ClosedError, DuplicateIdError, StoreError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';
import { DonePoller } from './done-poller.js';
import { DoneWaiters } from './done-waiters.js';
import { encodeJson } from './json-codec.js';
import { loadSqlite, type SqliteDatabase } from './optional-deps.js';
import { SQLITE_DDL, SQLITE_SCHEMA_VERSION, TASK_COLUMNS, rowToPool, rowToTask, type PoolRow, type TaskRow } from './sqlite-schema.js';
import { PendingWakers, type PendingWake } from './pending-wake.js';
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
import type { Awaitable, PendingQuery, PoolRecord, TaskStore } from './task-store.js';

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** Give up on a locked database after this long (→ `StoreError`). Default 10 000 ms. */
  readonly busyTimeoutMs?: number;
  /** How often `waitUntilDone` looks for changes made by other processes. Default 25 ms. */
  readonly pollIntervalMs?: number;
  /** Receives background failures (a failed poll). Default: `process.emitWarning`. */
  readonly onError?: (error: unknown) => void;
}

const OptionsSchema = z.strictObject({
  busyTimeoutMs: z.number().int().min(0).max(3_600_000).optional(),
  pollIntervalMs: z.number().int().min(1).max(3_600_000).optional(),
  onError: z.custom<(error: unknown) => void>((value) => typeof value === 'function', 'must be a function').optional(),
});
const DEFAULT_BUSY_TIMEOUT_MS = 10_000;
const DEFAULT_POLL_INTERVAL_MS = 25;
/** Retries that only yield to the event loop before sleeping; a lock is usually held for microseconds. */
const YIELD_RETRIES = 4;
const MAX_SLEEP_MS = 16;

/** SQLite-backed {@link TaskStore}. */
export class SqliteStore implements TaskStore {
  readonly kind = 'sqlite';
  /** The database file. */
  readonly path: string;
  #db!: SqliteDatabase;
  readonly #busyTimeoutMs: number;
  readonly #waiters = new DoneWaiters();
  /** Idle claimers of this instance; other processes' submits reach them by the wake's timeout. */
  readonly #wakers = new PendingWakers();
  readonly #poller: DonePoller;
  /** The prepared statements; undefined until the database is open. */
  #sql!: ReturnType<typeof prepareStatements>;
  #ready = false;
  /** Opening the database (the driver loads on first use); reset when it failed, so a later call retries. */
  #opening: Promise<void> | undefined;
  #closed = false;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    parseInput(z.string().min(1, 'must be a database file path (or ":memory:")'), path, 'path');
    parseInput(OptionsSchema, options, 'options');
    this.path = path;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    const onError = options.onError ?? ((error: unknown) => process.emitWarning(`SqliteStore: ${String(error)}`));
    this.#poller = new DonePoller(this.#waiters, (ids) => this.#run(() => this.#fetchDone(ids)), options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, onError);
    // Start opening now (the file and schema appear promptly); the first call waits for it and
    // reports its failure, if any.
    this.#open().catch(() => undefined);
  }

  /**
   * Resolves once the database is open, its schema created and checked. Every call waits for this
   * by itself; call it to learn early that the file cannot be opened (a `StoreError`) or that
   * better-sqlite3 is not installed (a `MissingDependencyError`).
   */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('SqliteStore'));
    return this.#ready ? Promise.resolve() : this.#open();
  }

  #open(): Promise<void> {
    this.#opening ??= this.#openDatabase().then(
      () => {
        this.#ready = true;
      },
      (error: unknown) => {
        this.#opening = undefined;
        throw error;
      },
    );
    return this.#opening;
  }

  async #openDatabase(): Promise<void> {
    const Database = await loadSqlite();
    if (this.#closed) throw new ClosedError('SqliteStore');
    const path = this.path;
    let db: SqliteDatabase | undefined;
    try {
      db = new Database(path);
      // Opening is rare and may meet another process creating the schema: let SQLite wait here.
      db.pragma(`busy_timeout = ${this.#busyTimeoutMs}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec('BEGIN IMMEDIATE');
      try {
        db.exec(SQLITE_DDL);
        db.prepare('INSERT OR IGNORE INTO converge_meta (key, value) VALUES (?, ?)').run('schema_version', String(SQLITE_SCHEMA_VERSION));
        db.exec('COMMIT');
      } catch (error) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw error;
      }
      const version = (db.prepare("SELECT value FROM converge_meta WHERE key = 'schema_version'").get() as { value: string }).value;
      if (Number(version) !== SQLITE_SCHEMA_VERSION) throw new StoreError(`${path} has coordination schema version ${version}; this build reads version ${SQLITE_SCHEMA_VERSION}`);
      // From here on, lock waits are retried by #run (see the file comment).
      db.pragma('busy_timeout = 0');
      this.#sql = prepareStatements(db);
      this.#db = db;
    } catch (error) {
      db?.close();
      throw error instanceof StoreError ? error : new StoreError(`cannot open SQLite store ${path}: ${String(error)}`, { cause: error });
    }
  }


  insertTask(task: NewTask): Awaitable<Task> {
    const row = taskParams(task);
    return this.#run(() => {
      this.#write(() => this.#insertRow(row));
      this.#wakers.notify();
      return pendingTask(task);
    });
  }

  insertTasks(tasks: readonly NewTask[]): Awaitable<Task[]> {
    const rows = tasks.map(taskParams);
    return this.#run(() => {
      this.#write(() => {
        for (const row of rows) this.#insertRow(row);
      });
      this.#wakers.notify();
      return tasks.map(pendingTask);
    });
  }

  getTask(id: string): Awaitable<Task | null> {
    return this.#run(() => {
      const row = this.#sql.get.get(id) as TaskRow | undefined;
      return row === undefined ? null : rowToTask(row);
    });
  }

  claimTask(id: string, agentId: string, nowMs: number): Awaitable<Task | null> {
    return this.#run(() => {
      const row = this.#write(() => this.#sql.claim.get({ id, agentId, nowMs }) as TaskRow | undefined);
      return row === undefined ? null : rowToTask(row);
    });
  }

  claimTasks(ids: readonly string[], agentId: string, nowMs: number): Awaitable<(Task | null)[]> {
    return this.#run(() =>
      this.#write(() =>
        ids.map((id) => {
          const row = this.#sql.claim.get({ id, agentId, nowMs }) as TaskRow | undefined;
          return row === undefined ? null : rowToTask(row);
        }),
      ),
    );
  }

  claimNext(agentId: string, filter: TaskFilter, nowMs: number): Awaitable<Task | null> {
    const params = { agentId, nowMs, ...filterParams(filter) };
    return this.#run(() => {
      const row = this.#write(() => this.#sql.claimNext.get(params) as TaskRow | undefined);
      return row === undefined ? null : rowToTask(row);
    });
  }

  claimNextBatch(agentId: string, filter: TaskFilter, nowMs: number, max: number): Awaitable<Task[]> {
    const params = { agentId, nowMs, max, ...filterParams(filter) };
    return this.#run(() => this.#write(() => (this.#sql.claimBatch.all(params) as TaskRow[]).map(rowToTask).sort(compareClaimOrder)));
  }

  settleTasks(agentId: string, items: readonly Settlement[]): Awaitable<SettleOutcome[]> {
    // Encoded first: a result JSON cannot hold is refused before anything is written.
    const results = items.map((item, index) => (item.state === 'pending' ? null : encodeJson(item.result, `items[${index}].result`)));
    return this.#run(() => {
      const finished: Task[] = [];
      let released = false;
      const outcomes = this.#write(() =>
        items.map((item, index): SettleOutcome => {
          const row = this.#sql.get.get(item.id) as TaskRow | undefined;
          if (row === undefined) return false;
          const task = rowToTask(row);
          const decision = settleDecision(task, agentId, item);
          if (decision !== 'apply') return decision;
          if (item.state === 'pending') {
            this.#sql.unclaim.run({ id: item.id });
            released = true;
          } else {
            this.#sql.finish.run({ id: item.id, state: item.state, result: results[index] });
            finished.push({ ...task, state: item.state, result: JSON.parse(results[index]!) as unknown });
          }
          return true;
        }),
      );
      for (const task of finished) this.#waiters.notify(task);
      if (released) this.#wakers.notify();
      return outcomes;
    });
  }

  pendingWake(timeoutMs: number): PendingWake {
    return this.#wakers.arm(timeoutMs, this.ready());
  }

  startTask(id: string, holder: ClaimHolder): Awaitable<Task | null> {
    return this.#run(() =>
      this.#write(() => {
        const task = this.#holderTask(id, holder);
        if (task === null) return null;
        this.#sql.setState.run({ id, state: 'running' });
        return { ...task, state: 'running' as const };
      }),
    );
  }

  completeTask(id: string, holder: ClaimHolder, result: unknown): Awaitable<boolean> {
    const json = encodeJson(result, 'result');
    return this.#run(() => {
      const task = this.#write(() => {
        const held = this.#holderTask(id, holder);
        if (held !== null) this.#sql.finish.run({ id, state: 'completed', result: json });
        return held;
      });
      if (task === null) return false;
      if (this.#waiters.size > 0) this.#waiters.notify({ ...task, state: 'completed', result: JSON.parse(json) as unknown });
      return true;
    });
  }

  failTask(id: string, reason: unknown, holder: ClaimHolder | undefined): Awaitable<boolean> {
    const json = encodeJson(reason, 'reason');
    return this.#run(() => {
      const failed = this.#write(() => {
        const row = this.#sql.get.get(id) as TaskRow | undefined;
        if (row === undefined) return null;
        const task = rowToTask(row);
        const decision = failDecision(task, holder);
        if (decision === 'skip') return null;
        if (decision !== 'fail') throw decision;
        this.#sql.finish.run({ id, state: 'failed', result: json });
        return { ...task, state: 'failed' as const, result: JSON.parse(json) as unknown };
      });
      if (failed === null) return false;
      this.#waiters.notify(failed);
      return true;
    });
  }

  cancelTask(id: string): Awaitable<boolean> {
    return this.#run(() => {
      const row = this.#write(() => this.#sql.cancel.get({ id }) as TaskRow | undefined);
      if (row === undefined) return false;
      this.#waiters.notify(rowToTask(row));
      return true;
    });
  }

  renewClaim(id: string, holder: ClaimHolder, nowMs: number): Awaitable<Task | null> {
    return this.#run(() =>
      this.#write(() => {
        const task = this.#holderTask(id, holder);
        if (task === null) return null;
        this.#sql.renew.run({ id, nowMs });
        return { ...task, claimedAt: nowMs };
      }),
    );
  }

  releaseExpiredClaims(nowMs: number): Awaitable<string[]> {
    return this.#run(() => {
      const released = this.#write(() => (this.#sql.release.all({ nowMs }) as { id: string }[]).map((row) => row.id));
      if (released.length > 0) this.#wakers.notify();
      return released;
    });
  }

  listPendingTasks(query: PendingQuery): Awaitable<Task[]> {
    const params = { agentId: query.agentId ?? null, ...filterParams(query.filter ?? {}) };
    const statement = query.sortByPriority ? this.#sql.pendingByPriority : this.#sql.pendingBySeq;
    return this.#run(() => (statement.all(params) as TaskRow[]).map(rowToTask));
  }

  async waitUntilDone(id: string, timeoutMs: number): Promise<Task | null> {
    // Register first, then look: a change in between is seen by the look, a later one by the poll
    // (another process) or by this instance's own write (notify).
    const waiting = timeoutMs > 0 ? this.#waiters.wait(id, timeoutMs) : undefined;
    let task: Task | null;
    try {
      task = await this.getTask(id);
    } catch (error) {
      waiting?.settle(null);
      throw error;
    }
    if (task === null || isTerminalState(task.state) || waiting === undefined) {
      waiting?.settle(task);
      return task !== null && isTerminalState(task.state) ? task : null;
    }
    this.#poller.schedule();
    return waiting.promise;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#poller.stop();
    this.#waiters.closeAll('SqliteStore');
    this.#wakers.notify();
    await this.#opening?.catch(() => undefined);
    if (this.#ready) this.#db.close();
  }

  insertPool(pool: Omit<PoolRecord, 'members'>): Awaitable<PoolRecord> {
    const params = { id: pool.id, topics: JSON.stringify(pool.topics), trustThreshold: pool.trustThreshold, hasAdmissionPolicy: pool.hasAdmissionPolicy ? 1 : 0 };
    return this.#run(() => {
      this.#write(() => {
        if (this.#sql.insertPool.run(params).changes === 0) throw new DuplicateIdError('pool', pool.id);
      });
      return { ...pool, members: [] };
    });
  }

  getPool(id: string): Awaitable<PoolRecord | null> {
    return this.#run(() => {
      const row = this.#sql.getPool.get(id) as PoolRow | undefined;
      return row === undefined ? null : rowToPool(row);
    });
  }

  listPools(): Awaitable<PoolRecord[]> {
    return this.#run(() => (this.#sql.listPools.all() as PoolRow[]).map(rowToPool));
  }

  addPoolMember(poolId: string, agentId: string): Awaitable<boolean> {
    return this.#run(() =>
      this.#write(() => {
        if (this.#sql.poolExists.get(poolId) === undefined) return false;
        this.#sql.addMember.run(poolId, agentId);
        return true;
      }),
    );
  }

  removePoolMember(poolId: string, agentId: string): Awaitable<boolean> {
    return this.#run(() => this.#write(() => this.#sql.removeMember.run(poolId, agentId).changes > 0));
  }

  getPoolsForAgent(agentId: string): Awaitable<string[]> {
    return this.#run(() => (this.#sql.poolsForAgent.all(agentId) as { id: string }[]).map((row) => row.id));
  }

  #insertRow(row: ReturnType<typeof taskParams>): void {
    try {
      this.#sql.insert.run(row);
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new DuplicateIdError('task', row.id);
      throw error;
    }
  }

  /** The task if `holder` holds its claim; null if unknown; throws the holder error otherwise. */
  #holderTask(id: string, holder: ClaimHolder): Task | null {
    const row = this.#sql.get.get(id) as TaskRow | undefined;
    if (row === undefined) return null;
    const task = rowToTask(row);
    const error = claimHolderError(task, holder);
    if (error !== null) throw error;
    return task;
  }

  #fetchDone(ids: string[]): Task[] {
    return (this.#sql.done.all(JSON.stringify(ids)) as TaskRow[]).map(rowToTask);
  }

  /** Runs `fn` in a `BEGIN IMMEDIATE` transaction (rolled back if `fn` or the commit throws). */
  #write<T>(fn: () => T): T {
    this.#sql.begin.run();
    try {
      const result = fn();
      this.#sql.commit.run();
      return result;
    } catch (error) {
      if (this.#db.inTransaction) this.#sql.rollback.run();
      throw error;
    }
  }

  /**
   * Runs `fn` now; if the database is locked, retries it (yielding, then sleeping with backoff) until
   * `busyTimeoutMs`. Returns a plain value when the first attempt succeeds.
   */
  #run<T>(fn: () => T): Awaitable<T> {
    if (this.#closed) return Promise.reject(new ClosedError('SqliteStore'));
    if (!this.#ready) return this.#open().then(() => this.#run(fn));
    try {
      return fn();
    } catch (error) {
      if (!isBusy(error)) return Promise.reject(asStoreError(error));
      return this.#retry(fn, Date.now() + this.#busyTimeoutMs);
    }
  }

  async #retry<T>(fn: () => T, deadline: number): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (attempt <= YIELD_RETRIES) await yieldToLoop();
      else await sleep(Math.min(MAX_SLEEP_MS, 2 ** (attempt - YIELD_RETRIES - 1)) * (0.5 + Math.random()));
      if (this.#closed) throw new ClosedError('SqliteStore');
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error)) throw asStoreError(error);
        if (Date.now() >= deadline) throw new StoreError(`SQLite database ${this.path} stayed locked for ${this.#busyTimeoutMs} ms`, { cause: error });
      }
    }
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** Driver errors become StoreError; the engine's own errors (holder checks, duplicates) pass through. */
function asStoreError(error: unknown): Error {
  if (error instanceof Error && (error as { code?: unknown }).code?.toString().startsWith('CONVERGE_')) return error;
  return new StoreError(`SQLite store failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

function taskParams(task: NewTask) {
  return {
    id: task.id,
    payload: encodeJson(task.payload, 'payload'),
    poolId: task.poolId,
    topic: task.topic,
    requiredCapabilities: JSON.stringify(task.requiredCapabilities),
    priority: task.priority,
    claimTtlMs: task.claimTtlMs,
  };
}

function filterParams(filter: TaskFilter) {
  return {
    poolIds: filter.poolIds === undefined ? null : JSON.stringify(filter.poolIds),
    capabilities: filter.capabilities === undefined ? null : JSON.stringify(filter.capabilities),
    topics: filter.topics === undefined ? null : JSON.stringify(filter.topics),
    topicRequired: filter.topicRequired === true ? 1 : 0,
  };
}

// The visibility rule of task.ts `isVisible`, in SQL, and DESIGN §5's: a task with a pool is visible
// only to the pool's members: those of @poolIds when given, else those stored (@agentId null: an
// administrative listing that sees everything).
const VISIBLE = `
  (pool_id IS NULL OR CASE WHEN @poolIds IS NULL THEN @agentId IS NULL OR EXISTS (
    SELECT 1 FROM converge_pool_members m WHERE m.pool_id = converge_tasks.pool_id AND m.agent_id = @agentId)
    ELSE pool_id IN (SELECT value FROM json_each(@poolIds)) END)
  AND (@topics IS NULL OR (topic IS NULL AND @topicRequired = 0) OR topic IN (SELECT value FROM json_each(@topics)))
  AND (@capabilities IS NULL OR NOT EXISTS (
    SELECT 1 FROM json_each(converge_tasks.required_capabilities) AS required
    WHERE required.value NOT IN (SELECT value FROM json_each(@capabilities))))`;

function prepareStatements(db: SqliteDatabase) {
  return {
    begin: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    insert: db.prepare(`INSERT INTO converge_tasks (id, state, payload, pool_id, topic, required_capabilities, priority, claim_ttl_ms)
      VALUES (@id, 'pending', @payload, @poolId, @topic, @requiredCapabilities, @priority, @claimTtlMs)`),
    get: db.prepare(`SELECT ${TASK_COLUMNS} FROM converge_tasks WHERE id = ?`),
    claim: db.prepare(`UPDATE converge_tasks
      SET state = 'assigned', assigned_to = @agentId, claimed_at = @nowMs, attempts = attempts + 1, fencing_token = fencing_token + 1
      WHERE id = @id AND state = 'pending' AND (pool_id IS NULL OR EXISTS (
        SELECT 1 FROM converge_pool_members m WHERE m.pool_id = converge_tasks.pool_id AND m.agent_id = @agentId))
      RETURNING ${TASK_COLUMNS}`),
    claimNext: db.prepare(`UPDATE converge_tasks
      SET state = 'assigned', assigned_to = @agentId, claimed_at = @nowMs, attempts = attempts + 1, fencing_token = fencing_token + 1
      WHERE seq = (SELECT seq FROM converge_tasks WHERE state = 'pending' AND ${VISIBLE} ORDER BY priority DESC, id LIMIT 1)
      RETURNING ${TASK_COLUMNS}`),
    claimBatch: db.prepare(`UPDATE converge_tasks
      SET state = 'assigned', assigned_to = @agentId, claimed_at = @nowMs, attempts = attempts + 1, fencing_token = fencing_token + 1
      WHERE seq IN (SELECT seq FROM converge_tasks WHERE state = 'pending' AND ${VISIBLE} ORDER BY priority DESC, id LIMIT @max)
      RETURNING ${TASK_COLUMNS}`),
    unclaim: db.prepare("UPDATE converge_tasks SET state = 'pending', assigned_to = NULL, claimed_at = NULL WHERE id = @id"),
    setState: db.prepare('UPDATE converge_tasks SET state = @state WHERE id = @id'),
    finish: db.prepare('UPDATE converge_tasks SET state = @state, result = @result WHERE id = @id'),
    cancel: db.prepare(`UPDATE converge_tasks SET state = 'cancelled'
      WHERE id = @id AND state IN ('pending', 'assigned', 'running') RETURNING ${TASK_COLUMNS}`),
    renew: db.prepare('UPDATE converge_tasks SET claimed_at = @nowMs WHERE id = @id'),
    release: db.prepare(`UPDATE converge_tasks SET state = 'pending', assigned_to = NULL, claimed_at = NULL
      WHERE state IN ('assigned', 'running') AND claim_ttl_ms IS NOT NULL AND claimed_at + claim_ttl_ms <= @nowMs RETURNING id`),
    pendingBySeq: db.prepare(`SELECT ${TASK_COLUMNS} FROM converge_tasks WHERE state = 'pending' AND ${VISIBLE} ORDER BY seq`),
    pendingByPriority: db.prepare(`SELECT ${TASK_COLUMNS} FROM converge_tasks WHERE state = 'pending' AND ${VISIBLE} ORDER BY priority DESC, id`),
    done: db.prepare(`SELECT ${TASK_COLUMNS} FROM converge_tasks
      WHERE id IN (SELECT value FROM json_each(?)) AND state IN ('completed', 'failed', 'cancelled')`),
    insertPool: db.prepare(`INSERT INTO converge_pools (id, topics, trust_threshold, has_admission_policy)
      VALUES (@id, @topics, @trustThreshold, @hasAdmissionPolicy) ON CONFLICT (id) DO NOTHING`),
    getPool: db.prepare(`${POOL_SELECT} WHERE p.id = ?`),
    listPools: db.prepare(`${POOL_SELECT} ORDER BY p.seq`),
    poolExists: db.prepare('SELECT 1 FROM converge_pools WHERE id = ?'),
    addMember: db.prepare('INSERT OR IGNORE INTO converge_pool_members (pool_id, agent_id) VALUES (?, ?)'),
    removeMember: db.prepare('DELETE FROM converge_pool_members WHERE pool_id = ? AND agent_id = ?'),
    poolsForAgent: db.prepare(`SELECT p.id FROM converge_pools p JOIN converge_pool_members m ON m.pool_id = p.id
      WHERE m.agent_id = ? ORDER BY p.seq`),
  };
}

const POOL_SELECT = `SELECT p.id, p.topics, p.trust_threshold, p.has_admission_policy,
  (SELECT json_group_array(agent_id) FROM (SELECT agent_id FROM converge_pool_members m WHERE m.pool_id = p.id ORDER BY m.seq)) AS members
  FROM converge_pools p`;
