/**
 * SQLite layout of the coordination store and the row ↔ Task mapping.
 *
 * `seq` (the rowid) keeps submission order; the partial index on pending tasks is in claim order, so
 * `claimNext` reads its first entry instead of sorting. JSON columns hold payload, result and the
 * capability list.
 */
import { decodeJson } from './json-codec.js';
import type { Task, TaskState } from './task.js';
import type { PoolRecord } from './task-store.js';

/** Bumped whenever the layout changes incompatibly. */
export const SQLITE_SCHEMA_VERSION = 1;

/** The DDL, idempotent (IF NOT EXISTS), run in one `BEGIN IMMEDIATE` transaction. */
export const SQLITE_DDL = `
CREATE TABLE IF NOT EXISTS converge_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS converge_tasks (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL,
  payload TEXT NOT NULL,
  result TEXT,
  pool_id TEXT,
  topic TEXT,
  required_capabilities TEXT NOT NULL,
  priority INTEGER NOT NULL,
  assigned_to TEXT,
  claimed_at INTEGER,
  claim_ttl_ms INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  fencing_token INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS converge_tasks_pending ON converge_tasks (priority DESC, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS converge_tasks_claimed ON converge_tasks (claimed_at) WHERE state IN ('assigned', 'running') AND claim_ttl_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS converge_pools (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  topics TEXT NOT NULL,
  trust_threshold REAL,
  has_admission_policy INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS converge_pool_members (
  seq INTEGER PRIMARY KEY,
  pool_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  UNIQUE (pool_id, agent_id)
);
CREATE INDEX IF NOT EXISTS converge_pool_members_agent ON converge_pool_members (agent_id);
`;

/** A `converge_tasks` row as better-sqlite3 returns it. */
export interface TaskRow {
  id: string;
  state: TaskState;
  payload: string;
  result: string | null;
  pool_id: string | null;
  topic: string | null;
  required_capabilities: string;
  priority: number;
  assigned_to: string | null;
  claimed_at: number | null;
  claim_ttl_ms: number | null;
  attempts: number;
  fencing_token: number;
}

/** The task columns every read selects, in {@link TaskRow} order. */
export const TASK_COLUMNS = 'id, state, payload, result, pool_id, topic, required_capabilities, priority, assigned_to, claimed_at, claim_ttl_ms, attempts, fencing_token';

/** A Task from a row. */
export function rowToTask(row: TaskRow): Task {
  return {
    id: row.id,
    state: row.state,
    payload: decodeJson(row.payload),
    result: decodeJson(row.result),
    poolId: row.pool_id,
    topic: row.topic,
    requiredCapabilities: decodeJson(row.required_capabilities) as string[],
    priority: row.priority,
    assignedTo: row.assigned_to,
    claimedAt: row.claimed_at,
    claimTtlMs: row.claim_ttl_ms,
    attempts: row.attempts,
    fencingToken: row.fencing_token,
  };
}

/** A `converge_pools` row joined with its members (JSON array in join order). */
export interface PoolRow {
  id: string;
  topics: string;
  trust_threshold: number | null;
  has_admission_policy: number;
  members: string;
}

/** A PoolRecord from a row. */
export function rowToPool(row: PoolRow): PoolRecord {
  return {
    id: row.id,
    topics: decodeJson(row.topics) as string[],
    trustThreshold: row.trust_threshold,
    hasAdmissionPolicy: row.has_admission_policy === 1,
    members: decodeJson(row.members) as string[],
  };
}
