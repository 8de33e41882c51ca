/**
 * File-storm benchmark (issue 8): a separate process writes N files across 100 directories (create
 * storm), then rewrites N/2 (update storm). Side by side, each in a process of its own: Converge
 * (`LocalFsWatcher` through the engine to a subscriber), raw `@parcel/watcher`, chokidar. Reported:
 * paths lost (a created path never reported; a rewritten path with no event after the update storm
 * began; for Converge, any path whose last event does not carry its final content hash), time from
 * the last write until everything was delivered, for Converge also until the engine was quiescent,
 * callbacks, peak RSS of the watching process.
 * Goal: 0 lost, settled within 2 s of the last write, RSS < 150 MB (100k files).
 *
 * The watching process (workers/storm-watch.mjs, plain JavaScript) keeps the same lean bookkeeping
 * for every contender (typed arrays indexed by file number, O(1) per reported path), so that its own
 * memory and CPU stay out of the figures.
 * `--dist` runs Converge from the built package (`npx tsc -p tsconfig.build.json` first) instead of
 * from source through tsx, whose loader costs memory in each of the engine's threads.
 *
 *   npx tsx bench/storm.bench.ts [--quick] [--files N] [--dist] [--only converge|parcel|chokidar]
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { BenchReport } from './run.js';

/** The watching process (plain JavaScript, one contender per process). */
const WATCHER = fileURLToPath(new URL('./workers/storm-watch.mjs', import.meta.url));
const SOURCE_INDEX = new URL('../src/main/index.ts', import.meta.url);
const DIST_INDEX = new URL('../dist/main/index.js', import.meta.url);
const DIRS = 100;
const CONTENDERS = ['converge', 'parcel', 'chokidar'] as const;
type Contender = (typeof CONTENDERS)[number];

interface Row {
  watcher: Contender;
  files: number;
  'paths lost': number;
  'settled after last write (ms)': number | string;
  /** Converge only: the first quiescence after everything was delivered, from the last write. */
  'quiescent after last write (ms)'?: number | string;
  /** Converge only: quiescences between the first write and the last delivery (a storm must hold them off). */
  'early quiescences'?: number;
  callbacks: number;
  'peak RSS (MB)': number;
}

/** Runs one contender in a fresh process so that RSS and native watcher state are its own. */
async function runContender(contender: Contender, files: number, fromDist: boolean): Promise<Row> {
  const fromSource = contender === 'converge' && !fromDist;
  const module = fromDist ? DIST_INDEX.href : SOURCE_INDEX.href;
  const args = [...(fromSource ? ['--import', 'tsx'] : []), WATCHER, contender, String(files), String(DIRS), module];
  const { stdout } = await promisify(execFile)(process.execPath, args, { maxBuffer: 1 << 20, timeout: 20 * 60_000 });
  const line = stdout.trim().split('\n').at(-1)!;
  return JSON.parse(line) as Row;
}

export async function run(options: { quick: boolean; files?: number; dist?: boolean; only?: Contender }): Promise<BenchReport> {
  const files = options.files ?? (options.quick ? 2_000 : 100_000);
  const fromDist = options.dist === true;
  if (fromDist && !existsSync(fileURLToPath(DIST_INDEX))) throw new Error('--dist: build first (npx tsc -p tsconfig.build.json)');
  console.log(`\n## storm: ${files} files created across ${DIRS} directories, then ${files / 2} rewritten, by another process`);
  console.log(`Converge runs from ${fromDist ? 'the built dist/ (plain node in every thread)' : 'source through tsx (the tsx loader in each of its threads)'}`);
  const rows: Row[] = [];
  for (const contender of CONTENDERS) if (options.only === undefined || options.only === contender) rows.push(await runContender(contender, files, fromDist));
  console.table(rows);
  const converge = rows.find((r) => r.watcher === 'converge');
  const parcel = rows.find((r) => r.watcher === 'parcel');
  if (converge === undefined || parcel === undefined) return { ratios: [] };
  return {
    ratios: [
      {
        measure: `storm ${files} files: paths delivered (Converge)`,
        value: files - converge['paths lost'],
        unit: 'paths',
        baseline: 'raw @parcel/watcher',
        baselineValue: Math.max(1, files - parcel['paths lost']),
        goal: 1,
      },
    ],
  };
}

const argv = process.argv;
if (argv[1] !== undefined && import.meta.url === pathToFileURL(argv[1]).href) {
  const filesArg = argv.indexOf('--files');
  const files = filesArg >= 0 ? Number(argv[filesArg + 1]) : undefined;
  const onlyArg = argv.indexOf('--only');
  const only = onlyArg >= 0 ? (argv[onlyArg + 1] as Contender) : undefined;
  if (only !== undefined && !CONTENDERS.includes(only)) throw new Error(`--only: one of ${CONTENDERS.join(', ')}`);
  await run({ quick: argv.includes('--quick'), dist: argv.includes('--dist'), ...(files === undefined ? {} : { files }), ...(only === undefined ? {} : { only }) });
}
