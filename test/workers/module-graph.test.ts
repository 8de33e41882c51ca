/**
 * What the engine's worker threads load. Every thread pays for its own copy of each module, so a
 * heavy package that only the main thread needs (zod: ~13 MB of RSS per thread that loads it) must not
 * be reachable from a worker entry. Walks the static imports of the sources as they are emitted with
 * `verbatimModuleSyntax` (`import type` / `export type` vanish, anything else stays, even
 * `import { type X }`).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const IMPORT = /^\s*(import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?'([^']+)'/gm;

/** Packages reachable from `entry` (a path under src/), each with one import chain that reaches it. */
function packagesReachableFrom(entry: string): Map<string, string[]> {
  const packages = new Map<string, string[]>();
  const via = new Map<string, string[]>([[entry, [entry]]]);
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.shift()!;
    const text = readFileSync(join(SRC, file), 'utf8');
    for (const match of text.matchAll(IMPORT)) {
      const spec = match[2]!;
      if (spec.startsWith('node:')) continue;
      if (!spec.startsWith('.')) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!packages.has(name)) packages.set(name, via.get(file)!);
        continue;
      }
      const target = relative(SRC, join(dirname(join(SRC, file)), spec)).replace(/\.js$/, '.ts');
      if (via.has(target)) continue;
      via.set(target, [...via.get(file)!, target]);
      queue.push(target);
    }
  }
  return packages;
}

describe('worker threads module graph', () => {
  for (const entry of ['workers/convergence.worker.ts', 'workers/watch.worker.ts']) {
    it(`${entry} does not load zod (validation stays on the main thread)`, () => {
      const packages = packagesReachableFrom(entry);
      expect(packages.get('zod'), `import chain: ${packages.get('zod')?.join(' -> ')}`).toBeUndefined();
      // The walk itself works: the packages the thread does need are found.
      expect(packages.has('msgpackr')).toBe(true);
    });
  }

  it('the main thread entry does load zod (the walk sees through re-exports)', () => {
    expect(packagesReachableFrom('main/index.ts').has('zod')).toBe(true);
  });
});
