/**
 * Runs every `bench/*.bench.ts`, one after another, in this process (also what `converge bench` runs).
 *
 *   npm run bench                 full run (figures for bench/RESULTS.md)
 *   npm run bench -- --quick      short pass that proves every benchmark still runs (CI)
 *   npm run bench -- ring         only benches whose file name contains "ring"
 *   npm run bench -- --record     also append the run (date, machine, every ratio) to bench/RESULTS.md
 *
 * Each bench file exports `run(options: { quick: boolean })`, prints its own tables, and prints a
 * skip line itself when a service it needs is missing. It may resolve to a {@link BenchReport}: its
 * figures as ratios against their baselines, which the run gathers into one closing table. A bench
 * that throws fails the run (exit code 1) after the others have run: benchmarks report, but they must
 * keep working.
 */
import { appendFileSync, readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatNumber, renderTable, stylesFor } from '../src/main/cli/output.js';

/** One figure against its baseline, measured in the same run. Higher is better for both. */
export interface BenchRatio {
  /** What was measured, e.g. `ring 1 producer → 1 consumer`. */
  readonly measure: string;
  readonly value: number;
  /** Unit of `value` and `baselineValue`, e.g. `events/s`. */
  readonly unit: string;
  /** What it is compared with, e.g. `postMessage, 1 event per message`. */
  readonly baseline: string;
  readonly baselineValue: number;
  /** The goal for value / baselineValue, when there is one. */
  readonly goal?: number;
}

/** What a bench's `run` may resolve to. */
export interface BenchReport {
  readonly ratios: readonly BenchRatio[];
}

/** What every bench module exports. */
export interface BenchModule {
  run(options: { quick: boolean }): Promise<void | BenchReport>;
}

/** A ratio with the bench it came from. */
export interface SuiteRatio extends BenchRatio {
  readonly bench: string;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const RESULTS = `${here}RESULTS.md`;

const short = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)} k` : formatNumber(n, n < 10 ? 2 : 0));
const times = (r: number): string => `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}×`;

/** The closing table: every ratio against its baseline, and whether it meets its goal. */
export function ratioTable(ratios: readonly SuiteRatio[], color = stylesFor()): string {
  return renderTable(
    ratios,
    [
      { header: 'bench', value: (r) => r.bench },
      { header: 'measure', value: (r) => r.measure },
      { header: 'figure', value: (r) => `${short(r.value)} ${r.unit}`, align: 'right' },
      { header: 'baseline', value: (r) => r.baseline },
      { header: 'baseline figure', value: (r) => `${short(r.baselineValue)} ${r.unit}`, align: 'right' },
      { header: 'ratio', value: (r) => times(r.value / r.baselineValue), align: 'right' },
      { header: 'goal', value: (r) => (r.goal === undefined ? '' : `≥ ${times(r.goal)}`), align: 'right' },
      { header: 'met', value: (r) => (r.goal === undefined ? '' : r.value / r.baselineValue >= r.goal ? color.green('yes') : color.red('NO')) },
    ],
    color,
  );
}

/** A markdown section for bench/RESULTS.md: date, machine and every ratio. */
export function resultsSection(ratios: readonly SuiteRatio[], info: { quick: boolean; seconds: number; failures: readonly string[]; load: readonly number[] }): string {
  const cpu = cpus();
  const lines = [
    '',
    `## Run of ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC (\`converge bench${info.quick ? ' --quick' : ''}\`)`,
    '',
    `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.versions.node}, ${process.platform}/${process.arch}; ` +
      `load average ${info.load.map((l) => l.toFixed(2)).join(' ')} at the start; ${info.seconds.toFixed(0)} s` +
      `${info.quick ? '; quick pass: smoke figures, not comparable with full runs' : ''}${info.failures.length > 0 ? `; failed: ${info.failures.join(', ')}` : ''}.`,
    '',
    '| bench | measure | figure | baseline | baseline figure | ratio | goal | met |',
    '|---|---|---|---|---|---|---|---|',
    ...ratios.map((r) => {
      const ratio = r.value / r.baselineValue;
      const met = r.goal === undefined ? '' : ratio >= r.goal ? 'yes' : '**no**';
      return `| ${r.bench} | ${r.measure} | ${short(r.value)} ${r.unit} | ${r.baseline} | ${short(r.baselineValue)} ${r.unit} | ${times(ratio)} | ${r.goal === undefined ? '' : `≥ ${times(r.goal)}`} | ${met} |`;
    }),
  ];
  return `${lines.join('\n')}\n`;
}

export async function runAll(argv: readonly string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const record = argv.includes('--record');
  const filters = argv.filter((arg) => !arg.startsWith('-')).flatMap((arg) => arg.split(','));
  const files = readdirSync(here)
    .filter((file) => file.endsWith('.bench.ts'))
    .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
    .sort();
  if (files.length === 0) {
    console.error(`no bench/*.bench.ts matches ${filters.join(', ')}`);
    return 1;
  }
  const failures: string[] = [];
  const ratios: SuiteRatio[] = [];
  const load = loadavg();
  const started = performance.now();
  for (const file of files) {
    const name = basename(file, '.bench.ts');
    console.log(`\n━━ ${name}${quick ? ' (quick)' : ''} ━━`);
    const t0 = performance.now();
    try {
      const module = (await import(pathToFileURL(`${here}${file}`).href)) as Partial<BenchModule>;
      if (typeof module.run !== 'function') throw new Error(`${file} does not export run(options)`);
      const report = await module.run({ quick });
      for (const ratio of report?.ratios ?? []) ratios.push({ bench: name, ...ratio });
      console.log(`━━ ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (error) {
      failures.push(name);
      console.error(`━━ ${name} FAILED:`, error);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  if (ratios.length > 0) console.log(`\nEvery ratio against its baseline${quick ? ' (quick pass: smoke figures)' : ''}\n${ratioTable(ratios)}`);
  console.log(`\n${files.length - failures.length}/${files.length} benchmarks ran in ${seconds.toFixed(1)} s${failures.length > 0 ? `; failed: ${failures.join(', ')}` : ''}`);
  if (record) {
    appendFileSync(RESULTS, resultsSection(ratios, { quick, seconds, failures, load }));
    console.log(`recorded in ${RESULTS}`);
  }
  return failures.length === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runAll(process.argv.slice(2));
  // Benchmarks may leave pools or sockets behind; the run is over.
  process.exit();
}
