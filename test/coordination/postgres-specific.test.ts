/**
 * What only the PostgreSQL store does: schema creation by racing processes, LISTEN/NOTIFY wake-ups
 * with a poll fallback, advisory-lock leader election, and pools owned by the caller.
 */
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { ValidationError } from '../../src/shared/errors.js';
import { PostgresStore, StaleClaimError, TaskClaimer, TaskManager } from '../../src/coordination/index.js';
import { describePg, dropSchema, pgQuery, uniqueSchema } from '../helpers/pg.js';

describePg('PostgresStore specifics', (url) => {
  const stores: PostgresStore[] = [];
  const schemas = new Set<string>();
  const open = (schema: string, options: { pollIntervalMs?: number; onError?: (error: unknown) => void } = {}): PostgresStore => {
    schemas.add(schema);
    const store = new PostgresStore({ connectionString: url, schema, max: 3, ...options });
    stores.push(store);
    return store;
  };

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    await Promise.all([...schemas].map((schema) => dropSchema(url, schema)));
    schemas.clear();
  });

  /** Resolves when `signal` aborts; rejects after `timeoutMs`. */
  const aborted = (signal: AbortSignal, timeoutMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(() => reject(new Error(`signal not aborted within ${timeoutMs} ms`)), timeoutMs);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });

  /** Resolves once some store has registered a wait for `taskId` (so finishing it must notify or be polled). */
  const registered = async (schema: string, taskId: string): Promise<void> => {
    const deadline = Date.now() + 20_000;
    while ((await pgQuery(url, `SELECT 1 FROM "${schema}".waiters WHERE task_id = $1`, [taskId])).length === 0) {
      if (Date.now() > deadline) throw new Error(`no wait registered for ${taskId}`);
    }
  };

  it('settles in batches tasks whose id or result holds a lone surrogate, and refuses a stale token alone', async () => {
    const tm = new TaskManager({ store: open(uniqueSchema()) });
    // The driver sends text as UTF-8, so a lone surrogate in an id is stored as U+FFFD.
    await tm.submitMany([{ id: 'odd-\ud800', payload: 1 }, { id: 'plain', payload: 2 }, { id: 'stale', payload: 3 }]);
    const claimed = await tm.claimNext('w', undefined, { max: 3 });
    expect(claimed.map((t) => t.id).sort()).toEqual(['odd-\ufffd', 'plain', 'stale']);
    const stale = claimed.find((t) => t.id === 'stale')!;
    const outcomes = await tm.settleMany('w', [
      { taskId: 'odd-\ud800', outcome: 'completed', result: { text: 'x\udc00y', quote: '"\\' }, fencingToken: 1 },
      { taskId: 'stale', outcome: 'completed', result: null, fencingToken: stale.fencingToken + 1 },
      { taskId: 'plain', outcome: 'failed', result: 'why' },
    ]);
    expect(outcomes[0]).toBe(true);
    expect(outcomes[1]).toBeInstanceOf(StaleClaimError);
    expect(outcomes[2]).toBe(true);
    expect(await tm.getTask('odd-\ufffd')).toMatchObject({ state: 'completed', result: { text: 'x\udc00y', quote: '"\\' } });
    expect(await tm.getTask('plain')).toMatchObject({ state: 'failed', result: 'why' });
    expect(await tm.getTask('stale')).toMatchObject({ state: 'assigned', assignedTo: 'w' });
  });

  it('creates its schema on first use, safely when several processes start at once', async () => {
    const schema = uniqueSchema();
    const racers = Array.from({ length: 6 }, () => open(schema));
    await Promise.all(racers.map((store, i) => new TaskManager({ store }).submit({ id: `first-${i}`, payload: i })));
    const tables = await pgQuery<{ table_name: string }>(url, 'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name', [schema]);
    expect(tables.map((t) => t.table_name)).toEqual(['idle_claimers', 'meta', 'pool_members', 'pools', 'tasks', 'waiters']);
    expect((await new TaskManager({ store: racers[0]! }).listPendingTasks()).map((t) => t.id).sort()).toEqual(['first-0', 'first-1', 'first-2', 'first-3', 'first-4', 'first-5']);
  });

  it('drops the task → pool foreign key of an older layout, so a task may name a pool the store does not know', async () => {
    const schema = uniqueSchema();
    schemas.add(schema);
    // The tasks table as older builds created it, with its foreign key to pools.
    await pgQuery(url, `CREATE SCHEMA "${schema}"`);
    await pgQuery(url, `CREATE TABLE "${schema}".pools (seq bigint GENERATED ALWAYS AS IDENTITY, id text COLLATE "C" PRIMARY KEY, topics text[] NOT NULL,
      trust_threshold double precision, has_admission_policy boolean NOT NULL)`);
    await pgQuery(url, `CREATE TABLE "${schema}".tasks (seq bigint GENERATED ALWAYS AS IDENTITY, id text COLLATE "C" PRIMARY KEY, state text NOT NULL,
      payload json NOT NULL, result json, pool_id text COLLATE "C" REFERENCES "${schema}".pools (id), topic text COLLATE "C",
      required_capabilities text[] COLLATE "C" NOT NULL, priority integer NOT NULL, assigned_to text, claimed_at bigint, claim_ttl_ms bigint,
      attempts integer NOT NULL DEFAULT 0, fencing_token integer NOT NULL DEFAULT 0)`);
    const tm = new TaskManager({ store: open(schema) });
    expect(await tm.submit({ id: 'far', payload: 1, poolId: 'elsewhere' })).toMatchObject({ poolId: 'elsewhere' });
    const keys = await pgQuery(url, `SELECT conname FROM pg_constraint WHERE conrelid = '"${schema}".tasks'::regclass AND contype = 'f'`);
    expect(keys).toEqual([]);
    expect(await tm.claimNext('w', { poolIds: ['elsewhere'] })).toMatchObject({ id: 'far', assignedTo: 'w' });
  });

  it('keeps schemas apart', async () => {
    const a = new TaskManager({ store: open(uniqueSchema()) });
    const b = new TaskManager({ store: open(uniqueSchema()) });
    await a.submit({ id: 'same', payload: 'a' });
    await b.submit({ id: 'same', payload: 'b' });
    expect((await a.claimNext('w'))?.payload).toBe('a');
    expect((await b.getTask('same'))?.state).toBe('pending');
  });

  it('wakes waitUntilDone through LISTEN/NOTIFY, not the poll', async () => {
    const schema = uniqueSchema();
    const waiter = new TaskManager({ store: open(schema, { pollIntervalMs: 3_600_000 }) });
    const worker = new TaskManager({ store: open(schema) });
    const { id } = await worker.submit({ payload: 1 });
    const waiting = waiter.waitUntilDone(id, { timeoutMs: 30_000 });
    await registered(schema, id);
    const claimed = await worker.claimNext('w');
    await worker.report('w', id, 'via notify', { fencingToken: claimed!.fencingToken });
    // With an hour-long poll, only the notification can deliver this before the 30 s timeout.
    expect(await waiting).toMatchObject({ state: 'completed', result: 'via notify' });
  });

  it('notifies only tasks somebody waits for', async () => {
    const schema = uniqueSchema();
    const waiter = new TaskManager({ store: open(schema, { pollIntervalMs: 3_600_000 }) });
    const worker = new TaskManager({ store: open(schema) });
    const heard: string[] = [];
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    try {
      listener.on('notification', (message) => heard.push(message.payload ?? ''));
      await listener.query(`LISTEN "converge_done_${schema}"`);
      await worker.submitMany([{ id: 'unwatched', payload: 1 }, { id: 'watched', payload: 2 }]);
      const waiting = waiter.waitUntilDone('watched', { timeoutMs: 30_000 });
      await waiter.waitUntilDone('unwatched', { timeoutMs: 0 }); // a zero wait registers nothing
      // Finish the tasks only once the wait is registered (else the waiter finds 'watched' done by looking).
      await registered(schema, 'watched');
      const deadline = Date.now() + 20_000;
      await worker.cancelTask('unwatched');
      await worker.cancelTask('watched');
      expect(await waiting).toMatchObject({ id: 'watched', state: 'cancelled' });
      // Notifications arrive in commit order: had 'unwatched' been notified, it would come first.
      while (!heard.includes('watched')) {
        if (Date.now() > deadline) throw new Error('no notification for the watched task');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(heard).toEqual(['watched']);
      // The finished wait removes its row.
      while ((await pgQuery(url, `SELECT task_id FROM "${schema}".waiters`)).length > 0) {
        if (Date.now() > deadline) throw new Error('the waiters row was never removed');
      }
    } finally {
      await listener.end();
    }
  });

  it('wakes an idle claimer through LISTEN/NOTIFY when another process submits', { timeout: 60_000 }, async () => {
    const schema = uniqueSchema();
    const claiming = new TaskManager({ store: open(schema) });
    const submitting = new TaskManager({ store: open(schema) });
    await submitting.submit({ id: 'warm', payload: 0 }); // creates the schema
    await submitting.cancelTask('warm');
    const claimer = new TaskClaimer(claiming, { agentId: 'idle', batchSize: 10, idlePollMs: 3_600_000 });
    const waiting = claimer.next();
    // Once the claimer is registered as idle, only a NOTIFY can wake it within the test's time.
    const deadline = Date.now() + 20_000;
    while ((await pgQuery(url, `SELECT 1 FROM "${schema}".idle_claimers`)).length === 0) {
      if (Date.now() > deadline) throw new Error('the claimer never registered as idle');
    }
    const [task] = await submitting.submitMany([{ id: 'wake-me', payload: 1 }]);
    expect((await waiting)?.id).toBe(task!.id);
    await claimer.complete((await claiming.getTask('wake-me'))!, 'ok');
    expect(await claiming.getTask('wake-me')).toMatchObject({ state: 'completed', result: 'ok' });
    await claimer.close();
    // A claimer that is busy or gone is no longer registered: submits stop notifying.
    while ((await pgQuery(url, `SELECT 1 FROM "${schema}".idle_claimers`)).length > 0) {
      if (Date.now() > deadline) throw new Error('the idle registration was never removed');
    }
  });

  it('never misses a submit that races a claimer going idle', { timeout: 120_000 }, async () => {
    const schema = uniqueSchema();
    const claiming = new TaskManager({ store: open(schema) });
    const submitting = new TaskManager({ store: open(schema) });
    await submitting.getTask('warm-up');
    // An hour-long poll: a missed wake-up would hang this test.
    const claimer = new TaskClaimer(claiming, { agentId: 'racer', batchSize: 4, idlePollMs: 3_600_000 });
    await submitting.submit({ id: 'race-00', payload: 0 });
    for (let i = 1; i <= 40; i++) {
      const task = await claimer.next();
      expect(task?.id).toBe(`race-${String(i - 1).padStart(2, '0')}`);
      // Submitted while the claimer finds the queue empty, registers as idle and looks again.
      await submitting.submit({ id: `race-${String(i).padStart(2, '0')}`, payload: i });
      await claimer.complete(task!);
    }
    await claimer.close();
  });

  it('falls back to polling when the LISTEN connection is lost', async () => {
    const schema = uniqueSchema();
    const errors: unknown[] = [];
    const waiter = new TaskManager({ store: open(schema, { pollIntervalMs: 20, onError: (error) => errors.push(error) }) });
    const worker = new TaskManager({ store: open(schema) });
    const { id } = await worker.submit({ payload: 1 });
    const waiting = waiter.waitUntilDone(id, { timeoutMs: 30_000 });
    await registered(schema, id); // so the LISTEN connection is up
    // Kill the waiter's LISTEN connection (found by its application_name and channel)…
    const killed = await pgQuery(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'converge-listener' AND query LIKE $1", [`%${schema}%`]);
    expect(killed).toHaveLength(1);
    // …and wait until the store has noticed (reported, not swallowed) before finishing the task.
    const deadline = Date.now() + 20_000;
    while (errors.length === 0) {
      if (Date.now() > deadline) throw new Error('the lost LISTEN connection was never reported');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await worker.claim('w', id);
    await worker.report('w', id, 'via poll');
    expect(await waiting).toMatchObject({ state: 'completed', result: 'via poll' });
  });

  it('elects one leader per name with advisory locks, and hands over on release', async () => {
    const schema = uniqueSchema();
    const first = open(schema);
    const second = open(schema);
    const a = await first.leaderLock('source:repo');
    const b = await second.leaderLock('source:repo');
    expect(a.isLeader).toBe(true);
    expect(b.isLeader).toBe(false);
    expect(await b.tryAcquire()).toBe(false);
    expect((await second.leaderLock('source:other')).isLeader).toBe(true);
    expect((await open(uniqueSchema()).leaderLock('source:repo')).isLeader).toBe(true); // another schema, another election

    await a.release();
    expect(a.isLeader).toBe(false);
    expect(a.signal.aborted).toBe(true);
    expect(await b.tryAcquire()).toBe(true);
    await expect(a.tryAcquire()).rejects.toMatchObject({ code: 'CONVERGE_STORE' });

    // Closing the store releases its locks.
    await second.close();
    expect(b.isLeader).toBe(false);
    expect((await first.leaderLock('source:repo')).isLeader).toBe(true);
  });

  it('notices a lost leadership when its connection dies, so another replica can lead', async () => {
    const schema = uniqueSchema();
    const name = `source:${schema}`;
    const leader = await open(schema).leaderLock(name, { checkIntervalMs: 50 });
    expect(leader.isLeader).toBe(true);
    const terminated = await pgQuery<{ ok: boolean }>(
      url,
      `SELECT pg_terminate_backend(l.pid) AS ok FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)`,
      [`${schema}:${name}`],
    );
    expect(terminated).toEqual([{ ok: true }]);
    await aborted(leader.signal, 20_000);
    expect(leader.isLeader).toBe(false);
    expect((await open(schema).leaderLock(name)).isLeader).toBe(true);
  });

  it('leaves a pool it was given open', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    const schema = uniqueSchema();
    schemas.add(schema);
    const store = new PostgresStore({ pool, schema });
    await new TaskManager({ store }).submit({ payload: 1 });
    await store.close();
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await pool.end();
  });

  it('fails a statement that gets no answer within queryTimeoutMs with TimeoutError, and stays usable', { timeout: 60_000 }, async () => {
    const schema = uniqueSchema();
    schemas.add(schema);
    // The schema is created and the task submitted with the default timeouts: on a loaded machine
    // creating a schema can itself take longer than the short timeout under test.
    const setup = new PostgresStore({ connectionString: url, schema, max: 1 });
    await new TaskManager({ store: setup }).submit({ id: 'locked', payload: 1 });
    await setup.close();
    const store = new PostgresStore({ connectionString: url, schema, max: 2, queryTimeoutMs: 1_000 });
    stores.push(store);
    const tm = new TaskManager({ store });
    // Another session holds the row lock, so the claim's UPDATE waits for it.
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT 1 FROM "${schema}".tasks WHERE id = 'locked' FOR UPDATE`);
      const error = await tm.claim('w', 'locked').then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'CONVERGE_TIMEOUT', name: 'TimeoutError' });
      expect((error as Error).message).toMatch(/queryTimeoutMs \(1000 ms\)/);
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    // Nothing was claimed by the timed-out statement, and the store still works.
    expect(await tm.getTask('locked')).toMatchObject({ state: 'pending', attempts: 0 });
    expect(await tm.claim('w', 'locked')).toBe(true);
  });

  it('validates its options', () => {
    expect(() => new PostgresStore({})).toThrow(ValidationError);
    expect(() => new PostgresStore({ connectionString: url, pool: new pg.Pool() })).toThrow(expect.objectContaining({ field: 'options.connectionString' }));
    expect(() => new PostgresStore({ connectionString: url, schema: 'bad-name; DROP' })).toThrow(expect.objectContaining({ field: 'options.schema' }));
  });
});
