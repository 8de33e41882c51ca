/**
 * PostgreSQL layout of the coordination store (one schema per deployment, `converge` by default),
 * its DDL, its named statements and the row ↔ Task mapping.
 *
 * - Ids are `COLLATE "C"`, so claim order (priority, then id) is byte order, as in the other stores.
 * - The partial index on pending tasks is in claim order: `claimNext` walks it with `FOR UPDATE SKIP
 *   LOCKED`, so concurrent claimers skip each other's rows instead of queueing on them.
 * - bigint columns are read as float8: node-postgres returns int8 as strings; epoch ms and TTLs are
 *   far below 2^53.
 * - Statements are named (prepared once per connection); names carry a hash of the schema because
 *   one connection may serve several schemas.
 * - `waiters` (unlogged: it is only a hint) lists the tasks some process waits for; terminal
 *   transitions NOTIFY only those.
 */
import { createHash } from 'node:crypto';
import type { Task, TaskState } from './task.js';
import type { PoolRecord } from './task-store.js';

/** Bumped whenever the layout changes incompatibly. */
export const PG_SCHEMA_VERSION = 1;
/** Key of the transaction-scoped advisory lock that serialises DDL across processes. */
export const DDL_LOCK_NAME = 'converge:coordination:ddl';
/** Schema names: a plain identifier, short enough to leave room for the notification channel. */
export const SCHEMA_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;

/** `"name"`: identifiers here are validated by {@link SCHEMA_NAME_PATTERN}, quoting keeps case. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The channel that carries ids of tasks that became terminal in `schema`. */
export function doneChannel(schema: string): string {
  return `converge_done_${schema}`;
}

/** The channel that wakes idle claimers when tasks may have become pending in `schema`. */
export function pendingChannel(schema: string): string {
  return `converge_new_${schema}`;
}

/** The DDL of `schema`: idempotent (IF NOT EXISTS), run under the DDL advisory lock. */
export function schemaDdl(schema: string): string {
  const s = quoteIdent(schema);
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.meta (
  key text PRIMARY KEY,
  value text NOT NULL
);
CREATE TABLE IF NOT EXISTS ${s}.pools (
  seq bigint GENERATED ALWAYS AS IDENTITY,
  id text COLLATE "C" PRIMARY KEY,
  topics text[] NOT NULL,
  trust_threshold double precision,
  has_admission_policy boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS ${s}.tasks (
  seq bigint GENERATED ALWAYS AS IDENTITY,
  id text COLLATE "C" PRIMARY KEY,
  state text NOT NULL,
  payload json NOT NULL,
  result json,
  pool_id text COLLATE "C",
  topic text COLLATE "C",
  required_capabilities text[] COLLATE "C" NOT NULL,
  priority integer NOT NULL,
  assigned_to text,
  claimed_at bigint,
  claim_ttl_ms bigint,
  attempts integer NOT NULL DEFAULT 0,
  fencing_token integer NOT NULL DEFAULT 0
);
-- A task may name a pool this store does not know (DESIGN §5): no foreign key (older layouts had
-- one). Looked up first, so that a store that opens does not take an exclusive lock on the tasks.
DO $do$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '${s}.tasks'::regclass AND conname = 'tasks_pool_id_fkey') THEN
    ALTER TABLE ${s}.tasks DROP CONSTRAINT tasks_pool_id_fkey;
  END IF;
END $do$;
CREATE INDEX IF NOT EXISTS tasks_pending_idx ON ${s}.tasks (priority DESC, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS tasks_claimed_idx ON ${s}.tasks (claimed_at) WHERE state IN ('assigned', 'running') AND claim_ttl_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS ${s}.pool_members (
  seq bigint GENERATED ALWAYS AS IDENTITY,
  pool_id text COLLATE "C" NOT NULL REFERENCES ${s}.pools (id) ON DELETE CASCADE,
  agent_id text NOT NULL,
  PRIMARY KEY (pool_id, agent_id)
);
CREATE INDEX IF NOT EXISTS pool_members_agent_idx ON ${s}.pool_members (agent_id);
CREATE UNLOGGED TABLE IF NOT EXISTS ${s}.waiters (
  task_id text COLLATE "C" NOT NULL,
  waiter_id text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (task_id, waiter_id)
);
CREATE UNLOGGED TABLE IF NOT EXISTS ${s}.idle_claimers (
  claimer_id text PRIMARY KEY,
  expires_at bigint NOT NULL
);
${claimBatchFunction(s)}
${settleBatchFunction(s)}
INSERT INTO ${s}.meta (key, value) VALUES ('schema_version', '${PG_SCHEMA_VERSION}') ON CONFLICT (key) DO NOTHING;
`;
}

/**
 * `claim_batch(agent, now, pools, capabilities, topics, max, topicRequired)`: claims up to `max` visible pending
 * tasks in claim order, as one statement. A function for its planner settings: the pending tasks
 * must be walked in the order of the partial index, `LIMIT` rows at a time, and their rows updated
 * by ctid. Left to itself, on a queue filled in a burst and not yet analyzed, the planner estimates
 * a handful of pending rows and sorts all of them (and hash-joins them again) on every claim.
 * PL/pgSQL rather than SQL: it keeps the statement's plan for the session, where a SQL function is
 * parsed and planned again on every call (~0.3 ms of server CPU per claim, measured).
 */
function claimBatchFunction(s: string): string {
  return `CREATE OR REPLACE FUNCTION ${s}.claim_batch(p_agent text, p_now bigint, p_pools text[], p_caps text[], p_topics text[], p_max integer, p_topic_required boolean)
RETURNS TABLE (id text, state text, payload json, result json, pool_id text, topic text, required_capabilities text[], priority integer,
  assigned_to text, claimed_at float8, claim_ttl_ms float8, attempts integer, fencing_token integer)
LANGUAGE plpgsql VOLATILE
SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off SET enable_hashjoin = off SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
BEGIN
  RETURN QUERY WITH picked AS (
    SELECT t.ctid AS tid FROM ${s}.tasks t
    WHERE t.state = 'pending'
      AND (p_topics IS NULL OR (t.topic IS NULL AND NOT p_topic_required) OR t.topic = ANY(p_topics))
      AND (p_caps IS NULL OR t.required_capabilities <@ p_caps)
      AND (t.pool_id IS NULL OR CASE WHEN p_pools IS NULL
        THEN EXISTS (SELECT 1 FROM ${s}.pool_members m WHERE m.pool_id = t.pool_id AND m.agent_id = p_agent)
        ELSE t.pool_id = ANY(p_pools) END)
    ORDER BY t.priority DESC, t.id
    LIMIT p_max
    FOR UPDATE SKIP LOCKED),
  claimed AS (
    UPDATE ${s}.tasks u SET state = 'assigned', assigned_to = p_agent, claimed_at = p_now, attempts = u.attempts + 1, fencing_token = u.fencing_token + 1
    FROM picked WHERE u.ctid = picked.tid AND u.state = 'pending'
    RETURNING u.id, u.state, u.payload, u.result, u.pool_id, u.topic, u.required_capabilities, u.priority, u.assigned_to,
      u.claimed_at::float8, u.claim_ttl_ms::float8, u.attempts, u.fencing_token)
  SELECT * FROM claimed;
END
$fn$;`;
}

/**
 * `settle_batch(agent, ids, tokens, targets, results)`: applies each settlement whose row the agent
 * holds (with that fencing token, when given) and returns the ids and new states of those it
 * applied. A function for its planner settings, like `claim_batch`: each row must be found by its
 * own primary-key probe. Left to itself, on a queue whose statistics say no row is claimed (filled
 * in a burst, not yet analyzed), the planner scans the whole table and joins every row against
 * every settlement: 200 ms for 500 settlements on a 20 000-row table, growing with the table.
 * PL/pgSQL for its plan cache, like `claim_batch`.
 */
function settleBatchFunction(s: string): string {
  return `CREATE OR REPLACE FUNCTION ${s}.settle_batch(p_agent text, p_ids text[], p_tokens integer[], p_targets text[], p_results json[])
RETURNS TABLE (id text, state text)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
BEGIN
  RETURN QUERY WITH settled AS (
    UPDATE ${s}.tasks u SET state = x.target,
      result = CASE WHEN x.target = 'pending' THEN u.result ELSE x.result END,
      assigned_to = CASE WHEN x.target = 'pending' THEN NULL ELSE u.assigned_to END,
      claimed_at = CASE WHEN x.target = 'pending' THEN NULL ELSE u.claimed_at END
    FROM unnest(p_ids, p_tokens, p_targets, p_results) AS x (sid, token, target, result)
    WHERE u.id = (x.sid COLLATE "C") AND u.assigned_to = p_agent AND u.state IN ('assigned', 'running')
      AND (x.token IS NULL OR u.fencing_token = x.token)
    RETURNING u.id, u.state)
  SELECT * FROM settled;
END
$fn$;`;
}

/** A task row as node-postgres returns it with {@link TASK_COLUMNS}. */
export interface PgTaskRow {
  id: string;
  state: TaskState;
  payload: unknown;
  result: unknown;
  pool_id: string | null;
  topic: string | null;
  required_capabilities: string[];
  priority: number;
  assigned_to: string | null;
  claimed_at: number | null;
  claim_ttl_ms: number | null;
  attempts: number;
  fencing_token: number;
}

const TASK_COLUMNS =
  'id, state, payload, result, pool_id, topic, required_capabilities, priority, assigned_to, claimed_at::float8 AS claimed_at, claim_ttl_ms::float8 AS claim_ttl_ms, attempts, fencing_token';

/** The columns of a claimed row `c`, as `json_build_array` arguments; read back by {@link pgArrayToTask}. */
const TASK_ARRAY = 'c.id, c.state, c.payload, c.result, c.pool_id, c.topic, c.required_capabilities, c.priority, c.assigned_to, c.claimed_at, c.claim_ttl_ms, c.attempts, c.fencing_token';

/** A Task from one element of a `json_build_array(TASK_ARRAY)` array. */
export function pgArrayToTask(row: readonly unknown[]): Task {
  return {
    id: row[0] as string,
    state: row[1] as TaskState,
    payload: row[2],
    result: row[3] ?? null,
    poolId: row[4] as string | null,
    topic: row[5] as string | null,
    requiredCapabilities: row[6] as string[],
    priority: row[7] as number,
    assignedTo: row[8] as string | null,
    claimedAt: row[9] as number | null,
    claimTtlMs: row[10] as number | null,
    attempts: row[11] as number,
    fencingToken: row[12] as number,
  };
}

/** A Task from a row. */
export function pgRowToTask(row: PgTaskRow): Task {
  return {
    id: row.id,
    state: row.state,
    payload: row.payload,
    result: row.result ?? null,
    poolId: row.pool_id,
    topic: row.topic,
    requiredCapabilities: row.required_capabilities,
    priority: row.priority,
    assignedTo: row.assigned_to,
    claimedAt: row.claimed_at,
    claimTtlMs: row.claim_ttl_ms,
    attempts: row.attempts,
    fencingToken: row.fencing_token,
  };
}

/** A pool row with its members aggregated in join order. */
export interface PgPoolRow {
  id: string;
  topics: string[];
  trust_threshold: number | null;
  has_admission_policy: boolean;
  members: string[];
}

/** A PoolRecord from a row. */
export function pgRowToPool(row: PgPoolRow): PoolRecord {
  return { id: row.id, topics: row.topics, trustThreshold: row.trust_threshold, hasAdmissionPolicy: row.has_admission_policy, members: row.members };
}

// The visibility rule of task.ts `isVisible`, in SQL, on a task row aliased `t`; parameters $P
// (pools), $C (capabilities), $T (topics).
function visible(p: string, c: string, t: string): string {
  return `(${p}::text[] IS NULL OR t.pool_id IS NULL OR t.pool_id = ANY(${p}::text[]))
    AND (${t}::text[] IS NULL OR t.topic IS NULL OR t.topic = ANY(${t}::text[]))
    AND (${c}::text[] IS NULL OR t.required_capabilities <@ ${c}::text[])`;
}

// DESIGN §5: a task with a pool is visible only to the pool's members. On a task row aliased `t`;
// $A the agent (null: no agent, an administrative listing that sees everything); $P, when given,
// the filter's pools: when not null, they stand for the agent's memberships (see `visible`).
function member(s: string, a: string, nullSeesAll: boolean, p?: string): string {
  const exists = `EXISTS (SELECT 1 FROM ${s}.pool_members m WHERE m.pool_id = t.pool_id AND m.agent_id = ${a}::text)`;
  const given = p === undefined ? '' : `${p}::text[] IS NOT NULL OR `;
  return nullSeesAll ? `(${given}${a}::text IS NULL OR t.pool_id IS NULL OR ${exists})` : `(${given}t.pool_id IS NULL OR ${exists})`;
}

const CLAIMED = "state IN ('assigned', 'running')";
/** The database's clock in epoch ms (idle registrations use it, so hosts' clocks need not agree). */
const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';
const LIVE = "state IN ('pending', 'assigned', 'running')";
const TERMINAL = "state IN ('completed', 'failed', 'cancelled')";
// A holder's conditional update: $1 id, $2 agent, $3 fencing token or null.
const HELD = `id = $1 AND assigned_to = $2 AND ${CLAIMED} AND ($3::integer IS NULL OR fencing_token = $3::integer)`;

/** A named statement; node-postgres prepares it once per connection. */
export interface NamedStatement {
  readonly name: string;
  readonly text: string;
}

/** Every statement the store runs, for `schema`. */
export function pgStatements(schema: string) {
  const s = quoteIdent(schema);
  const tag = createHash('sha1').update(schema).digest('hex').slice(0, 10);
  const st = (op: string, text: string): NamedStatement => ({ name: `converge_${tag}_${op}`, text });
  // Notify only tasks somebody waits for: a notifying transaction holds a database-wide lock until
  // its commit is flushed (PostgreSQL serialises NOTIFY in commit order), which would take terminal
  // transitions out of group commit for nothing.
  // Wake idle claimers only while some are registered (see notifyDone for why NOTIFY is rationed).
  const someIdle = `EXISTS (SELECT 1 FROM ${s}.idle_claimers WHERE expires_at > ${NOW_MS})`;
  const wakeIdle = `CASE WHEN ${someIdle} THEN pg_notify('${pendingChannel(schema)}', '') END`;
  // $1 agent; per item, each a JSON array: $2 ids, $3 fencing tokens (null: none), $4 target
  // states, $5 results (see settle_batch). One row back: how many were applied, and which only when
  // not all were (ids are distinct, so a full count means every one); the notifications are
  // evaluated per row inside the counts. A row that changed in between is diagnosed and retried
  // like any other miss.
  const settleSql = `SELECT count(*)::integer AS applied,
         CASE WHEN count(*) < json_array_length($2::json) THEN array_agg(done.id) END AS ids,
         count(CASE WHEN done.state <> 'pending' AND EXISTS (SELECT 1 FROM ${s}.waiters w WHERE w.task_id = done.id)
           THEN pg_notify('${doneChannel(schema)}', done.id) END) AS notified,
         count(CASE WHEN done.state = 'pending' THEN ${wakeIdle} END) AS woke
       FROM ${s}.settle_batch($1,
         ARRAY(SELECT x.v FROM json_array_elements_text($2::json) WITH ORDINALITY AS x (v, n) ORDER BY x.n),
         ARRAY(SELECT x.v::integer FROM json_array_elements_text($3::json) WITH ORDINALITY AS x (v, n) ORDER BY x.n),
         ARRAY(SELECT x.v FROM json_array_elements_text($4::json) WITH ORDINALITY AS x (v, n) ORDER BY x.n),
         ARRAY(SELECT x.v FROM json_array_elements($5::json) WITH ORDINALITY AS x (v, n) ORDER BY x.n)) AS done`;
  const notifyDone = (cte: string) =>
    `WITH done AS (${cte} RETURNING ${TASK_COLUMNS})
     SELECT done.*, CASE WHEN EXISTS (SELECT 1 FROM ${s}.waiters w WHERE w.task_id = done.id)
       THEN pg_notify('${doneChannel(schema)}', done.id) END AS notified
     FROM done`;
  return {
    insert: st(
      'insert',
      `WITH ins AS (INSERT INTO ${s}.tasks (id, state, payload, pool_id, topic, required_capabilities, priority, claim_ttl_ms)
       VALUES ($1, 'pending', $2::json, $3, $4, $5::text[], $6, $7) RETURNING 1)
       SELECT ${wakeIdle} AS woke FROM ins`,
    ),
    // $1 ids, $2 the payloads as one JSON array; $3 … $7 (pools, topics, capabilities as JSON
    // arrays, priorities, TTLs) are NULL when every task has the default.
    insertMany: st(
      'insert_many',
      `WITH ins AS (INSERT INTO ${s}.tasks (id, state, payload, pool_id, topic, required_capabilities, priority, claim_ttl_ms)
       SELECT id, 'pending', payload, pool_id, topic, CASE WHEN caps IS NULL THEN '{}' ELSE ARRAY(SELECT json_array_elements_text(caps)) END, COALESCE(priority, 0), ttl
       FROM unnest($1::text[], ARRAY(SELECT p.value FROM json_array_elements($2::json) WITH ORDINALITY AS p (value, n) ORDER BY p.n),
         $3::text[], $4::text[], $5::json[], $6::integer[], $7::bigint[])
         AS t (id, payload, pool_id, topic, caps, priority, ttl)
       RETURNING 1)
       SELECT ${wakeIdle} AS woke FROM (SELECT 1 FROM ins LIMIT 1) AS one`,
    ),
    get: st('get', `SELECT ${TASK_COLUMNS} FROM ${s}.tasks WHERE id = $1`),
    claim: st(
      'claim',
      `UPDATE ${s}.tasks AS t SET state = 'assigned', assigned_to = $2, claimed_at = $3, attempts = attempts + 1, fencing_token = fencing_token + 1
       WHERE id = $1 AND state = 'pending' AND ${member(s, '$2', false)} RETURNING ${TASK_COLUMNS}`,
    ),
    claimMany: st(
      'claim_many',
      `UPDATE ${s}.tasks AS t SET state = 'assigned', assigned_to = $2, claimed_at = $3, attempts = attempts + 1, fencing_token = fencing_token + 1
       WHERE id = ANY($1::text[] COLLATE "C") AND state = 'pending' AND ${member(s, '$2', false)} RETURNING ${TASK_COLUMNS}`,
    ),
    claimNext: st('claim_next', `SELECT * FROM ${s}.claim_batch($1, $2, $3, $4, $5, 1, $6)`),
    // The batch comes back as one JSON text (an array of rows, each an array in TASK_ARRAY order):
    // one field to parse instead of thirteen per row, with JSON.parse doing the work natively.
    claimBatch: st('claim_batch', `SELECT json_agg(json_build_array(${TASK_ARRAY}))::text AS tasks FROM ${s}.claim_batch($1, $2, $3, $4, $5, $6, $7) c`),
    settle: st('settle', settleSql),
    // settle ($1 … $5), then claim_batch ($1 agent, $6 now, $7 pools, $8 capabilities, $9 topics,
    // $10 max, $11 topicRequired): the settlement runs first (it is the FROM), the claim after it.
    settleClaim: st(
      'settle_claim',
      `SELECT settled.applied, settled.ids,
         (SELECT json_agg(json_build_array(${TASK_ARRAY}))::text FROM ${s}.claim_batch($1, $6, $7, $8, $9, $10, $11) c) AS tasks
       FROM (${settleSql}) AS settled`,
    ),
    getMany: st('get_many', `SELECT ${TASK_COLUMNS} FROM ${s}.tasks WHERE id = ANY($1::text[] COLLATE "C")`),
    removeIdle: st('remove_idle', `DELETE FROM ${s}.idle_claimers WHERE claimer_id = $1`),
    start: st('start', `UPDATE ${s}.tasks SET state = 'running' WHERE ${HELD} RETURNING ${TASK_COLUMNS}`),
    complete: st('complete', notifyDone(`UPDATE ${s}.tasks SET state = 'completed', result = $4::json WHERE ${HELD}`)),
    failHeld: st('fail_held', notifyDone(`UPDATE ${s}.tasks SET state = 'failed', result = $4::json WHERE ${HELD}`)),
    fail: st('fail', notifyDone(`UPDATE ${s}.tasks SET state = 'failed', result = $2::json WHERE id = $1 AND ${LIVE}`)),
    cancel: st('cancel', notifyDone(`UPDATE ${s}.tasks SET state = 'cancelled' WHERE id = $1 AND ${LIVE}`)),
    renew: st('renew', `UPDATE ${s}.tasks SET claimed_at = $4 WHERE ${HELD} RETURNING ${TASK_COLUMNS}`),
    release: st(
      'release',
      `WITH released AS (UPDATE ${s}.tasks SET state = 'pending', assigned_to = NULL, claimed_at = NULL
         WHERE ${CLAIMED} AND claim_ttl_ms IS NOT NULL AND claimed_at + claim_ttl_ms <= $1 RETURNING id)
       SELECT id, ${wakeIdle} AS woke FROM released`,
    ),
    pendingBySeq: st('pending_seq', `SELECT ${TASK_COLUMNS} FROM ${s}.tasks t WHERE state = 'pending' AND ${visible('$1', '$2', '$3')} AND ${member(s, '$4', true, '$1')} ORDER BY seq`),
    pendingByPriority: st(
      'pending_priority',
      `SELECT ${TASK_COLUMNS} FROM ${s}.tasks t WHERE state = 'pending' AND ${visible('$1', '$2', '$3')} AND ${member(s, '$4', true, '$1')} ORDER BY priority DESC, id`,
    ),
    done: st('done', `SELECT ${TASK_COLUMNS} FROM ${s}.tasks WHERE id = ANY($1::text[] COLLATE "C") AND ${TERMINAL}`),
    addWaiter: st(
      'add_waiter',
      `WITH expired AS (DELETE FROM ${s}.waiters WHERE expires_at < $4)
       INSERT INTO ${s}.waiters (task_id, waiter_id, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (task_id, waiter_id) DO UPDATE SET expires_at = GREATEST(${s}.waiters.expires_at, EXCLUDED.expires_at)`,
    ),
    removeWaiter: st('remove_waiter', `DELETE FROM ${s}.waiters WHERE task_id = $1 AND waiter_id = $2`),
    insertPool: st(
      'insert_pool',
      `INSERT INTO ${s}.pools (id, topics, trust_threshold, has_admission_policy) VALUES ($1, $2::text[], $3, $4) ON CONFLICT (id) DO NOTHING`,
    ),
    getPool: st('get_pool', `${poolSelect(s)} WHERE p.id = $1`),
    listPools: st('list_pools', `${poolSelect(s)} ORDER BY p.seq`),
    addMember: st('add_member', `INSERT INTO ${s}.pool_members (pool_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`),
    removeMember: st('remove_member', `DELETE FROM ${s}.pool_members WHERE pool_id = $1 AND agent_id = $2`),
    poolsForAgent: st(
      'pools_for_agent',
      `SELECT p.id FROM ${s}.pools p JOIN ${s}.pool_members m ON m.pool_id = p.id WHERE m.agent_id = $1 ORDER BY p.seq`,
    ),
  };
}

/**
 * Registers `claimerId` as idle until `durationMs` from now, as one simple-protocol round trip (the
 * values are inlined: a UUID this process made and an integer). The ACCESS EXCLUSIVE lock closes
 * the race between a submit and a claimer going idle: a submit's statement holds ACCESS SHARE on
 * `idle_claimers` (its EXISTS) until it commits, so the lock waits for every submit in flight to
 * commit (the claimer's next claim, after this, sees their tasks), and a submit that comes later
 * waits for this commit and takes its snapshot after it (so it sees the registration and NOTIFYs).
 */
export function idleRegistrationSql(schema: string, claimerId: string, durationMs: number): string {
  if (!/^[0-9a-f-]{36}$/.test(claimerId) || !Number.isSafeInteger(durationMs)) throw new Error('idle registration: unexpected claimer id or duration');
  const s = quoteIdent(schema);
  return `BEGIN;
LOCK TABLE ${s}.idle_claimers IN ACCESS EXCLUSIVE MODE;
DELETE FROM ${s}.idle_claimers WHERE expires_at < ${NOW_MS};
INSERT INTO ${s}.idle_claimers (claimer_id, expires_at) VALUES ('${claimerId}', ${NOW_MS} + ${durationMs})
  ON CONFLICT (claimer_id) DO UPDATE SET expires_at = EXCLUDED.expires_at;
COMMIT;`;
}

function poolSelect(s: string): string {
  return `SELECT p.id, p.topics, p.trust_threshold, p.has_admission_policy,
    COALESCE((SELECT array_agg(m.agent_id ORDER BY m.seq) FROM ${s}.pool_members m WHERE m.pool_id = p.id), '{}') AS members
    FROM ${s}.pools p`;
}
