import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));
const target = process.env.CONVERGE_TEST_TARGET === 'dist' ? 'dist' : 'src';

/**
 * With CONVERGE_TEST_TARGET=dist every import that resolves into src/ is redirected to the built
 * file in dist/, so the same suite exercises the published output (a broken worker path fails).
 */
function testAgainstDist(): Plugin {
  return {
    name: 'converge-test-against-dist',
    enforce: 'pre',
    async resolveId(source, importer, options) {
      if (target !== 'dist' || importer === undefined || !importer.startsWith(`${root}test/`) && !importer.startsWith(`${root}bench/`)) return null;
      const resolved = await this.resolve(source, importer, { ...options, skipSelf: true });
      if (resolved === null || !resolved.id.startsWith(`${root}src/`)) return null;
      return `${root}dist/${resolved.id.slice(`${root}src/`.length).replace(/\.ts$/, '.js')}`;
    },
  };
}

export default defineConfig({
  plugins: [testAgainstDist()],
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The machines have two cores and many tests start worker threads of their own.
    maxWorkers: 2,
    name: target,
  },
});
