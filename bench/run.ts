/**
 * Runs every `bench/*.bench.ts`, one after another, in this process.
 *
 *   npm run bench                 full run (figures for bench/RESULTS.md)
 *   npm run bench -- --quick      short pass that proves every benchmark still runs (CI)
 *   npm run bench -- ring         only benches whose file name contains "ring"
 *
 * Each bench file exports `run(options: { quick: boolean }): Promise<void>`, prints its own tables,
 * and prints a skip line itself when a service it needs is missing. A bench that throws fails the
 * run (exit code 1) after the others have run: benchmarks report, but they must keep working.
 */
import { readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** What every bench module exports. */
export interface BenchModule {
  run(options: { quick: boolean }): Promise<void>;
}

const here = fileURLToPath(new URL('.', import.meta.url));

export async function runAll(argv: readonly string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const filters = argv.filter((arg) => !arg.startsWith('-'));
  const files = readdirSync(here)
    .filter((file) => file.endsWith('.bench.ts'))
    .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
    .sort();
  if (files.length === 0) {
    console.error(`no bench/*.bench.ts matches ${filters.join(', ')}`);
    return 1;
  }
  const failures: string[] = [];
  const started = performance.now();
  for (const file of files) {
    const name = basename(file, '.bench.ts');
    console.log(`\n━━ ${name}${quick ? ' (quick)' : ''} ━━`);
    const t0 = performance.now();
    try {
      const module = (await import(pathToFileURL(`${here}${file}`).href)) as Partial<BenchModule>;
      if (typeof module.run !== 'function') throw new Error(`${file} does not export run(options)`);
      await module.run({ quick });
      console.log(`━━ ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (error) {
      failures.push(name);
      console.error(`━━ ${name} FAILED:`, error);
    }
  }
  console.log(`\n${files.length - failures.length}/${files.length} benchmarks ran in ${((performance.now() - started) / 1000).toFixed(1)} s${failures.length > 0 ? `; failed: ${failures.join(', ')}` : ''}`);
  return failures.length === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runAll(process.argv.slice(2));
  // Benchmarks may leave pools or sockets behind; the run is over.
  process.exit();
}
