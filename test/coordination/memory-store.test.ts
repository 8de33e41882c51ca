import { defineStoreSuite } from './store-suite.js';
import { MemoryStore } from '../../src/coordination/index.js';

// A MemoryStore cannot be shared between instances, so every open() returns the test's one store.
defineStoreSuite('MemoryStore', () => {
  const store = new MemoryStore();
  return { open: () => store, dispose: () => store.close() };
});
