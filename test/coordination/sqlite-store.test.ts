import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { defineStoreSuite } from './store-suite.js';
import { SqliteStore, TaskManager, type TaskStore } from '../../src/coordination/index.js';

const dir = mkdtempSync(join(tmpdir(), 'converge-sqlite-suite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

// Each test gets a new database file; every open() is a separate connection to it.
defineStoreSuite('SqliteStore', () => {
  const path = join(dir, `suite-${++n}.sqlite`);
  const opened: TaskStore[] = [];
  return {
    open: () => {
      const store = new SqliteStore(path);
      opened.push(store);
      return store;
    },
    dispose: async () => {
      await Promise.all(opened.map((store) => store.close()));
    },
  };
});

describe('SqliteStore specifics', () => {
  it('is durable: a new connection after close sees every task and claim', async () => {
    const path = join(dir, 'durable.sqlite');
    const first = new TaskManager({ store: new SqliteStore(path) });
    await first.submitMany<unknown>([{ id: 'kept', payload: { deep: [1, 2] }, priority: 4, claimTtlMs: 100 }, { id: 'done', payload: 2 }]);
    const claimed = await first.claimNext('w');
    await first.claim('w', 'done');
    await first.report('w', 'done', { ok: true });
    await first.store.close();

    const second = new TaskManager({ store: new SqliteStore(path) });
    expect(await second.getTask('kept')).toMatchObject({ state: 'assigned', assignedTo: 'w', fencingToken: claimed!.fencingToken, payload: { deep: [1, 2] }, priority: 4 });
    expect(await second.getTask('done')).toMatchObject({ state: 'completed', result: { ok: true } });
    await second.store.close();
  });

  it('runs in WAL mode and records its schema version', async () => {
    const path = join(dir, 'wal.sqlite');
    const store = new SqliteStore(path);
    await store.ready();
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.prepare("SELECT value FROM converge_meta WHERE key = 'schema_version'").get()).toEqual({ value: '1' });
    } finally {
      raw.close();
      await store.close();
    }
  });

  it('refuses a payload or result that JSON cannot hold, naming the field', async () => {
    const store = new SqliteStore(join(dir, 'json.sqlite'));
    const tm = new TaskManager({ store });
    await expect(tm.submit({ payload: { n: 10n } })).rejects.toMatchObject({ field: 'input.payload.n', code: 'CONVERGE_VALIDATION' });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const { id } = await tm.submit({ payload: 1 });
    await tm.claim('w', id);
    await expect(tm.report('w', id, cyclic)).rejects.toMatchObject({ field: 'result.self' });
    expect((await tm.getTask(id))?.state).toBe('assigned');
    await store.close();
  });

  it('refuses a file of a newer schema version', async () => {
    const path = join(dir, 'future.sqlite');
    const first = new SqliteStore(path);
    await first.ready();
    await first.close();
    const raw = new Database(path);
    raw.prepare("UPDATE converge_meta SET value = '99' WHERE key = 'schema_version'").run();
    raw.close();
    const future = new SqliteStore(path);
    await expect(future.ready()).rejects.toMatchObject({ code: 'CONVERGE_STORE' });
    await expect(new TaskManager({ store: future }).getTask('x')).rejects.toMatchObject({ code: 'CONVERGE_STORE' });
    await future.close();
  });

  it('waits out a writer that holds the lock, then fails with StoreError past busyTimeoutMs', async () => {
    const path = join(dir, 'locked.sqlite');
    const store = new SqliteStore(path, { busyTimeoutMs: 150 });
    await store.ready();
    const tm = new TaskManager({ store });
    const blocker = new Database(path);
    blocker.exec('BEGIN IMMEDIATE');
    const pending = tm.submit({ id: 'late', payload: 1 });
    let settled = false;
    void pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false); // still retrying while the lock is held
    blocker.exec('COMMIT');
    await expect(pending).resolves.toMatchObject({ id: 'late' });

    blocker.exec('BEGIN IMMEDIATE');
    await expect(tm.submit({ id: 'never', payload: 1 })).rejects.toMatchObject({ code: 'CONVERGE_STORE' });
    blocker.exec('ROLLBACK');
    blocker.close();
    expect(await tm.getTask('never')).toBeNull();
    await store.close();
  });
});

describe('SqliteStore options', () => {
  it('validates the path and options', () => {
    expect(() => new SqliteStore('')).toThrow(expect.objectContaining({ field: 'path', code: 'CONVERGE_VALIDATION' }));
    expect(() => new SqliteStore(join(dir, 'opts.sqlite'), { busyTimeoutMs: -1 })).toThrow(expect.objectContaining({ field: 'options.busyTimeoutMs' }));
  });
});
