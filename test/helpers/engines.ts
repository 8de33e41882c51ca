/**
 * Engines a test creates, closed after each test: `const engine = useEngines();` at the top of a
 * test file, then `const e = await engine({ ...options })` in a test.
 */
import { afterEach } from 'vitest';
import { createEngine, type Engine, type EngineOptions } from '../../src/main/index.js';

export function useEngines(): (options?: EngineOptions) => Promise<Engine> {
  const engines: Engine[] = [];
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.close()));
  });
  return async (options: EngineOptions = {}) => {
    const e = await createEngine(options);
    engines.push(e);
    return e;
  };
}
