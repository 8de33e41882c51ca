import { defineStoreSuite } from './store-suite.js';
import { PostgresStore, type TaskStore } from '../../src/coordination/index.js';
import { describePg, dropSchema, uniqueSchema } from '../helpers/pg.js';

describePg('PostgresStore', (url) => {
  // Each test gets its own schema; every open() is a separate store with its own pool.
  defineStoreSuite('PostgresStore', () => {
    const schema = uniqueSchema();
    const opened: TaskStore[] = [];
    return {
      open: () => {
        const store = new PostgresStore({ connectionString: url, schema, max: 2 });
        opened.push(store);
        return store;
      },
      dispose: async () => {
        await Promise.all(opened.map((store) => store.close()));
        await dropSchema(url, schema);
      },
    };
  });
});
