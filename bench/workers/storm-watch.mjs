// The storm bench's watching process: `node storm-watch.mjs <contender> <files> <dirs> <converge module>`.
// One contender (converge | parcel | chokidar) watches a fresh directory while bench/workers/storm-writer.mjs
// (another process) writes the storm into it; prints one JSON line with the row for bench/storm.bench.ts.
//
// Plain JavaScript on purpose: this process's own memory counts toward the contender's peak RSS, so it
// carries no TypeScript loader of its own (Converge from source is started with `--import tsx`, and
// says so), and the same lean bookkeeping for every contender: typed arrays indexed by file number,
// O(1) per reported path.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const WRITER = fileURLToPath(new URL('./storm-writer.mjs', import.meta.url));
/** How long after the last write a contender may take before the missing paths count as lost. */
const GIVE_UP_MS = 30_000;

const [contender, filesArg, dirsArg, convergeModule] = process.argv.slice(2);
const files = Number(filesArg);
const dirs = Number(dirsArg);

/** The file number of a reported path (`…/d<k>/f<i>.txt`), or -1. */
function fileIndex(path) {
  const at = path.lastIndexOf('/f');
  if (at < 0 || !path.endsWith('.txt')) return -1;
  const i = Number(path.slice(at + 2, -4));
  return Number.isInteger(i) ? i : -1;
}

/** The content the writer leaves in file `i` at the end (see storm-writer.mjs). */
const finalContent = (i) => (i % 2 === 0 ? `rewritten ${i}\n` : `created ${i}\n`);

const root = mkdtempSync(join(tmpdir(), `storm-${contender}-`));
// Per file: when it was last reported (ms), and for Converge whether that report carried the final hash.
const lastAt = new Float64Array(files);
const final = new Uint8Array(files);
let callbacks = 0;
let peakRss = process.memoryUsage.rss();
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 50);
const note = (path) => {
  const i = fileIndex(path);
  if (i >= 0 && i < files) lastAt[i] = Date.now();
  return i;
};
let stop;
const quiescences = [];
if (contender === 'converge') {
  const api = await import(convergeModule);
  const engine = await api.createEngine({ episodeBudget: 100_000_000 });
  engine.on('quiescence', () => quiescences.push(Date.now()));
  await engine.subscribe({
    predicate: { sourcePrefix: 'file:' },
    handler: (event) => {
      callbacks++;
      const i = note(String(event.extra?.relativePath));
      if (i < 0 || i >= files) return;
      const hash = event.kind === 'page_invalidated' ? 'gone' : String(event.extra?.contentHash);
      final[i] = hash === createHash('sha1').update(finalContent(i)).digest('hex') ? 1 : 0;
    },
  });
  await engine.mapSource(new api.LocalFsWatcher(root, { debounceMs: 50 }));
  stop = () => engine.close();
} else if (contender === 'parcel') {
  const parcel = await import('@parcel/watcher');
  const subscription = await parcel.subscribe(root, (_err, events) => {
    callbacks++;
    for (const event of events) note(event.path);
  });
  stop = () => subscription.unsubscribe();
} else if (contender === 'chokidar') {
  const { watch } = await import('chokidar');
  const watcher = watch(root, { ignoreInitial: true });
  await new Promise((resolve) => watcher.once('ready', resolve));
  watcher.on('all', (_kind, path) => {
    callbacks++;
    note(path);
  });
  stop = () => watcher.close();
} else {
  throw new Error(`unknown contender ${contender}`);
}

const { stdout } = await promisify(execFile)(process.execPath, [WRITER, root, String(files), String(dirs)], { maxBuffer: 1 << 20 });
const phases = JSON.parse(stdout);
const lost = () => {
  let n = 0;
  for (let i = 0; i < files; i++) {
    if (lastAt[i] === 0) n++;
    else if (contender === 'converge' ? final[i] === 0 : i % 2 === 0 && lastAt[i] < phases.updateStart) n++;
  }
  return n;
};
let settled = `> ${GIVE_UP_MS}`;
let lastDelivery = Number.POSITIVE_INFINITY;
for (;;) {
  if (lost() === 0) {
    lastDelivery = 0;
    for (let i = 0; i < files; i++) lastDelivery = Math.max(lastDelivery, lastAt[i]);
    settled = Math.max(0, lastDelivery - phases.end);
    break;
  }
  if (Date.now() - phases.end > GIVE_UP_MS) break;
  await new Promise((resolve) => setTimeout(resolve, 20));
}
const row = { watcher: contender, files, 'paths lost': lost(), 'settled after last write (ms)': settled };
if (contender === 'converge') {
  // Quiescence: the engine says nothing is in flight any more (no storm still coalesced or reconciled).
  const after = () => quiescences.find((at) => at >= lastDelivery && at >= phases.end);
  const deadline = Date.now() + GIVE_UP_MS;
  while (after() === undefined && Date.now() < deadline && Number.isFinite(lastDelivery)) await new Promise((resolve) => setTimeout(resolve, 20));
  const quiet = after();
  row['quiescent after last write (ms)'] = quiet === undefined ? `> ${GIVE_UP_MS}` : quiet - phases.end;
  // A quiescence while paths were still undelivered would be a premature "settled".
  row['early quiescences'] = quiescences.filter((at) => at >= phases.createStart && at < Math.min(lastDelivery, phases.end)).length;
}
clearInterval(sampler);
row.callbacks = callbacks;
row['peak RSS (MB)'] = Math.round(Math.max(peakRss, process.memoryUsage.rss()) / 1e6);
await stop();
spawn('rm', ['-rf', root], { detached: true, stdio: 'ignore' }).unref();
process.stdout.write(`${JSON.stringify(row)}\n`);
process.exit(0);
