/**
 * File-storm benchmark (issue 8): a separate process writes N files across 100 directories (create
 * storm), then rewrites N/2 (update storm). Side by side, each in a process of its own: Converge
 * (`LocalFsWatcher` through the engine to a subscriber), raw `@parcel/watcher`, chokidar. Reported:
 * paths lost (a created path never reported; a rewritten path with no event after the update storm
 * began; for Converge, any path whose last event does not carry its final content hash), time from
 * the last write until everything was delivered, callbacks, peak RSS of the watching process.
 * Goal: 0 lost, settled within 2 s of the last write, RSS < 150 MB (100k files).
 *
 *   npx tsx bench/storm.bench.ts [--quick] [--files N]
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import type { BenchReport } from './run.js';

const HERE = fileURLToPath(import.meta.url);
const WRITER = fileURLToPath(new URL('./workers/storm-writer.mjs', import.meta.url));
const DIRS = 100;
/** How long after the last write a contender may take before the missing paths count as lost. */
const GIVE_UP_MS = 30_000;
const CONTENDERS = ['converge', 'parcel', 'chokidar'] as const;
type Contender = (typeof CONTENDERS)[number];

interface Phases {
  createStart: number;
  updateStart: number;
  end: number;
}

interface Row {
  watcher: Contender;
  files: number;
  'paths lost': number;
  'settled after last write (ms)': number | string;
  callbacks: number;
  'peak RSS (MB)': number;
}

/** Per path: last time seen (ms), and for Converge the content hash of the last event. */
type Seen = Map<string, { at: number; hash?: string }>;

async function watchInChild(contender: Contender, files: number): Promise<Row> {
  const root = mkdtempSync(join(tmpdir(), `storm-${contender}-`));
  const seen: Seen = new Map();
  let callbacks = 0;
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
  const note = (path: string, hash?: string): void => {
    const rel = path.startsWith(root) ? path.slice(root.length + 1) : path;
    seen.set(rel, hash === undefined ? { at: Date.now() } : { at: Date.now(), hash });
  };
  let stop: () => Promise<void>;
  if (contender === 'converge') {
    const { createEngine, LocalFsWatcher } = await import('../src/main/index.js');
    const engine = await createEngine({ episodeBudget: 100_000_000 });
    await engine.subscribe({
      predicate: { sourcePrefix: 'file:' },
      handler: (event) => {
        callbacks++;
        note(String(event.extra?.['relativePath']), event.kind === 'page_invalidated' ? 'gone' : String(event.extra?.['contentHash']));
      },
    });
    await engine.mapSource(new LocalFsWatcher(root, { debounceMs: 50 }));
    stop = () => engine.close();
  } else if (contender === 'parcel') {
    const parcel = await import('@parcel/watcher');
    const subscription = await parcel.subscribe(root, (_err, events) => {
      callbacks++;
      for (const event of events) note(event.path);
    });
    stop = () => subscription.unsubscribe();
  } else {
    const { watch } = await import('chokidar');
    const watcher = watch(root, { ignoreInitial: true });
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    watcher.on('all', (_kind, path) => {
      callbacks++;
      note(path);
    });
    stop = () => watcher.close();
  }
  const { stdout } = await promisify(execFile)(process.execPath, [WRITER, root, String(files), String(DIRS)], { maxBuffer: 1 << 20 });
  const phases = JSON.parse(stdout) as Phases;
  const expected = new Map<string, string>();
  const rewritten = new Set<string>();
  for (let i = 0; i < files; i++) {
    const rel = `d${i % DIRS}/f${i}.txt`;
    if (i % 2 === 0) rewritten.add(rel);
    if (contender === 'converge') expected.set(rel, createHash('sha1').update(readFileSync(join(root, rel))).digest('hex'));
    else expected.set(rel, '');
  }
  const lost = (): number => {
    let n = 0;
    for (const [rel, hash] of expected) {
      const entry = seen.get(rel);
      if (entry === undefined) n++;
      else if (contender === 'converge' ? entry.hash !== hash : rewritten.has(rel) && entry.at < phases.updateStart) n++;
    }
    return n;
  };
  let settled: number | string = `> ${GIVE_UP_MS}`;
  for (;;) {
    if (lost() === 0) {
      let last = 0;
      for (const entry of seen.values()) last = Math.max(last, entry.at);
      settled = Math.max(0, last - phases.end);
      break;
    }
    if (Date.now() - phases.end > GIVE_UP_MS) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const row: Row = { watcher: contender, files, 'paths lost': lost(), 'settled after last write (ms)': settled, callbacks, 'peak RSS (MB)': Math.round(peakRss / 1e6) };
  clearInterval(sampler);
  await stop();
  spawn('rm', ['-rf', root], { detached: true, stdio: 'ignore' }).unref();
  return row;
}

/** Runs one contender in a fresh process so that RSS and native watcher state are its own. */
async function runContender(contender: Contender, files: number): Promise<Row> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', HERE, '--child', contender, '--files', String(files)], {
    maxBuffer: 1 << 20,
    timeout: 20 * 60_000,
  });
  const line = stdout.trim().split('\n').at(-1)!;
  return JSON.parse(line) as Row;
}

export async function run(options: { quick: boolean; files?: number }): Promise<BenchReport> {
  const files = options.files ?? (options.quick ? 2_000 : 100_000);
  console.log(`\n## storm: ${files} files created across ${DIRS} directories, then ${files / 2} rewritten, by another process`);
  const rows: Row[] = [];
  for (const contender of CONTENDERS) rows.push(await runContender(contender, files));
  console.table(rows);
  const converge = rows.find((r) => r.watcher === 'converge')!;
  const parcel = rows.find((r) => r.watcher === 'parcel')!;
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
const filesArg = argv.indexOf('--files');
const files = filesArg >= 0 ? Number(argv[filesArg + 1]) : undefined;
if (argv.includes('--child')) {
  const contender = argv[argv.indexOf('--child') + 1] as Contender;
  const row = await watchInChild(contender, files ?? 2_000);
  process.stdout.write(`${JSON.stringify(row)}\n`);
  process.exit(0);
} else if (argv[1] !== undefined && import.meta.url === pathToFileURL(argv[1]).href) {
  await run({ quick: argv.includes('--quick'), ...(files === undefined ? {} : { files }) });
}
