import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { defineStoreSuite } from './store-suite.js';
import { SqliteStore, type TaskStore } from '../../src/coordination/index.js';

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
