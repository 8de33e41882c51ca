/**
 * `converge bench [--quick] [--record] [filter]`: the benchmark suite (`bench/run.ts`), ending with
 * one table of every ratio against its baseline. The benchmarks are TypeScript in the source
 * repository, not in the published package; they run through tsx (a development dependency).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { booleanFlag } from './args.js';
import { CliError, defineCommand } from './context.js';

/** The suite's runner, next to src/ and dist/ in a clone of the repository. */
const RUNNER = new URL('../../../bench/run.ts', import.meta.url);

/** Makes `.ts` imports work: already so when the CLI itself runs from source through tsx. */
async function enableTypeScript(): Promise<void> {
  if (import.meta.url.endsWith('.ts')) return;
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    throw new CliError('converge bench: the benchmarks need the development dependencies (tsx): run `npm install` in the repository first');
  }
}

export const bench = defineCommand({
  spec: {
    name: 'bench',
    summary: 'Run the benchmark suite and print every figure as a ratio against its baseline.',
    details:
      'Runs bench/*.bench.ts one after another (each prints its own tables), then one table with every\n' +
      'ratio. A full run takes minutes and wants a quiet machine; --quick only proves the benchmarks run.\n' +
      'Benchmarks that need PostgreSQL read CONVERGE_PG_URL and say so when it is missing.',
    positionals: [{ name: 'filter', description: 'only benches whose file name contains one of these (comma-separated), e.g. ring,claim', required: false }],
    flags: {
      quick: booleanFlag('a short smoke pass (seconds per bench, figures not comparable)'),
      record: booleanFlag('append the run (date, machine, every ratio) to bench/RESULTS.md'),
    },
    examples: ['converge bench --quick', 'converge bench ring --record'],
  },
  async run({ flags, positionals }, context) {
    if (!existsSync(fileURLToPath(RUNNER))) {
      throw new CliError('converge bench: the benchmarks ship with the source repository, not the installed package; run it from a clone of the repository (npm install, then npx converge bench)');
    }
    await enableTypeScript();
    const { runAll } = (await import(pathToFileURL(fileURLToPath(RUNNER)).href)) as { runAll(argv: readonly string[]): Promise<number> };
    const argv = [...(flags.quick === true ? ['--quick'] : []), ...(flags.record === true ? ['--record'] : []), ...positionals];
    const code = await runAll(argv);
    if (code !== 0) context.err(context.errorStyles.red('converge bench: a benchmark failed (see above)'));
    return code;
  },
});
