import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, type Engine, LocalFsWatcher, type PageChangeEvent } from '../../src/main/index.js';
import { FsWatchCore, type FsWatchCoreOptions } from '../../src/watchers/local-fs-core.js';
import { Collector, removeTempDirs, tempDir, waitFor } from './helpers.js';

const engines: Engine[] = [];
const cores: FsWatchCore[] = [];
afterEach(async () => {
  await Promise.all(cores.splice(0).map((c) => c.stop()));
  await Promise.all(engines.splice(0).map((e) => e.close()));
  await removeTempDirs();
});

async function engine(): Promise<Engine> {
  const e = await createEngine({ episodeBudget: 1_000_000 });
  engines.push(e);
  return e;
}

const SLOW: FsWatchCoreOptions = {
  // Windows that never end on their own: the test ends them with flush(), so timing cannot split them.
  debounceMs: 600_000,
  maxDelayMs: 600_000,
  ignore: [],
  dataType: 'file',
  poll: false,
  pollIntervalMs: 600_000,
  suspectThreshold: 1_000_000,
  // Every burst is storm-tracked (the hold waits for its directories to be quiet): not here, where
  // the test ends each window itself and then expects the hold gone.
  stormQuietMs: 0,
};

/** A core whose events land in `out`; `holds` counts holds currently taken. */
async function core(root: string, options: Partial<FsWatchCoreOptions> = {}) {
  const out: PageChangeEvent[] = [];
  const errors: unknown[] = [];
  let holds = 0;
  const c = new FsWatchCore(root, { ...SLOW, ...options }, {
    emit: (events) => void out.push(...events),
    hold: () => {
      holds++;
      let done = false;
      return () => {
        if (!done) holds--;
        done = true;
      };
    },
    error: (error) => errors.push(error),
  });
  cores.push(c);
  await c.start();
  return { core: c, out, errors, holds: () => holds };
}

const summary = (events: PageChangeEvent[]) => events.map((e) => `${e.kind} ${e.pageId}`);

describe('LocalFsWatcher coalescing and self-write suppression (core, windows ended by hand)', () => {
  it('create+change → added, create+delete → nothing, delete+create → replaced, identical rewrite → nothing', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'existing.txt'), 'v1');
    writeFileSync(join(root, 'same.txt'), 'same');
    writeFileSync(join(root, 'reborn.txt'), 'r');
    const w = await core(root);
    expect(w.core.stats.backend).toBe('native');

    writeFileSync(join(root, 'new.txt'), 'a');
    writeFileSync(join(root, 'new.txt'), 'ab');
    writeFileSync(join(root, 'tmp.txt'), 'x');
    rmSync(join(root, 'tmp.txt'));
    rmSync(join(root, 'existing.txt'));
    writeFileSync(join(root, 'existing.txt'), 'v2');
    writeFileSync(join(root, 'same.txt'), 'same');
    // Deleted and created again with the same content: still replaced (DESIGN §4: delete+create → replaced).
    rmSync(join(root, 'reborn.txt'));
    writeFileSync(join(root, 'reborn.txt'), 'r');
    writeFileSync(join(root, 'sentinel.txt'), 's');
    await waitFor(() => w.core.stats.rawEvents >= 1 && w.holds() === 1, 'raw events (and the hold they take)');
    await waitFor(async () => {
      // The window is open until flush(): keep flushing until the sentinel is in (raw events may trickle).
      await w.core.flush();
      return w.out.some((e) => e.pageId === 'file:sentinel.txt');
    }, 'the sentinel');
    const events = w.out.filter((e) => e.pageId !== 'file:sentinel.txt');
    // Raw events may trickle over several flushes: compare as a set (each flush is sorted by path).
    expect(summary(events).sort()).toEqual(['page_added file:new.txt', 'page_replaced file:existing.txt', 'page_replaced file:reborn.txt']);
    const added = events.find((e) => e.kind === 'page_added')!;
    expect(added.sourceId).toBe(`file:${root}`);
    expect(added.extra).toMatchObject({ relativePath: 'new.txt' });
    expect(added.dataType).toBe('file');
    expect(events.find((e) => e.pageId === 'file:existing.txt')!.related).toEqual(['file:existing.txt']);
    expect(w.holds()).toBe(0);
  });

  it('a rewrite with identical content emits nothing; a different one emits replaced', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'a.txt'), 'content');
    const w = await core(root);
    writeFileSync(join(root, 'a.txt'), 'content');
    await waitFor(() => w.core.stats.rawEvents >= 1, 'the raw event');
    await w.core.flush();
    expect(w.out).toEqual([]);
    writeFileSync(join(root, 'a.txt'), 'changed');
    await waitFor(async () => {
      await w.core.flush();
      return w.out.length > 0;
    }, 'the change');
    expect(summary(w.out)).toEqual(['page_replaced file:a.txt']);
  });

  it('ignores .git, node_modules, dotfiles and user globs, but not .gitignore / .gitattributes', async () => {
    const root = tempDir();
    const w = await core(root, { ignore: ['build/**', '*.log'] });
    for (const dir of ['.git', 'node_modules/pkg', 'build/out', '.cache', 'src']) mkdirSync(join(root, dir), { recursive: true });
    for (const file of ['.git/HEAD', 'node_modules/pkg/index.js', 'build/out/a.js', '.cache/x', '.env', 'debug.log', '.gitignore', '.gitattributes', 'src/a.ts']) {
      writeFileSync(join(root, file), file);
    }
    await waitFor(async () => {
      await w.core.flush();
      return w.out.length >= 3;
    }, 'the watched files');
    await w.core.rescan();
    expect(summary(w.out).sort()).toEqual(['page_added file:.gitattributes', 'page_added file:.gitignore', 'page_added file:src/a.ts']);
  });

  it('files in a new directory and files gone with a removed directory are all reported', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'old/deep'), { recursive: true });
    writeFileSync(join(root, 'old/a.txt'), 'a');
    writeFileSync(join(root, 'old/deep/b.txt'), 'b');
    const w = await core(root);
    mkdirSync(join(root, 'new/deeper'), { recursive: true });
    writeFileSync(join(root, 'new/deeper/c.txt'), 'c');
    writeFileSync(join(root, 'new/d.txt'), 'd');
    rmSync(join(root, 'old'), { recursive: true });
    await waitFor(async () => {
      await w.core.flush();
      return w.out.length >= 4;
    }, 'four changes');
    expect(summary(w.out).sort()).toEqual([
      'page_added file:new/d.txt',
      'page_added file:new/deeper/c.txt',
      'page_invalidated file:old/a.txt',
      'page_invalidated file:old/deep/b.txt',
    ]);
  });

  it('reconciles changes the backend never reported (a rescan diffs the tree against the known state)', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'keep.txt'), 'k');
    writeFileSync(join(root, 'gone.txt'), 'g');
    writeFileSync(join(root, 'edit.txt'), 'e1');
    // Polling with a long interval: nothing is seen until the rescan, as if every event were lost.
    const w = await core(root, { poll: true });
    expect(w.core.stats.backend).toBe('poll');
    rmSync(join(root, 'gone.txt'));
    writeFileSync(join(root, 'edit.txt'), 'e2-longer');
    writeFileSync(join(root, 'fresh.txt'), 'f');
    expect(w.out).toEqual([]);
    await w.core.rescan();
    expect(summary(w.out)).toEqual(['page_replaced file:edit.txt', 'page_added file:fresh.txt', 'page_invalidated file:gone.txt']);
    expect(w.out[0]!.extra!['contentHash']).toMatch(/^[0-9a-f]{40}$/);
  });

  it('a burst past the suspect threshold is reconciled with a full rescan once it calms', async () => {
    const root = tempDir();
    const w = await core(root, { debounceMs: 20, maxDelayMs: 200, suspectThreshold: 50 });
    for (let i = 0; i < 200; i++) writeFileSync(join(root, `f${i}.txt`), String(i));
    await waitFor(() => w.core.stats.rescans >= 1 && w.holds() === 0 && new Set(w.out.map((e) => e.pageId)).size === 200, 'the reconcile');
    expect(w.core.stats.suspectWindows).toBeGreaterThanOrEqual(1);
    expect(w.out.every((e) => e.kind === 'page_added')).toBe(true);
  });

  it('keeps its hold through a continuous storm (the native watcher buffers it), and releases it once the storm stops', { timeout: 120_000 }, async () => {
    const root = tempDir();
    // Default storm tracking: from the very first delivery (which may carry only a few events).
    const w = await core(root, { debounceMs: 20, maxDelayMs: 100, stormQuietMs: 10_000 });
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) await writeFile(join(root, `s${written++}.txt`), 'x');
    })();
    // Sample the hold while the storm goes on, from its first raw event: it must never lapse.
    const samples: number[] = [];
    await waitFor(() => w.core.stats.rawEvents > 0, 'the first raw event');
    await waitFor(() => (samples.push(w.holds()), w.out.length >= 50), 'events delivered while the storm goes on');
    const until = w.out.length + 100;
    await waitFor(() => (samples.push(w.holds()), w.out.length >= until), 'more deliveries during the storm');
    expect(samples.filter((h) => h !== 1)).toEqual([]);
    writing = false;
    await writer;
    await waitFor(() => w.holds() === 0 && w.out.length === written, 'the storm to end and every file to be reported', 90_000);
  });

  it('a suspect window in a storm that never ends is still reconciled (not only once the storm is over)', { timeout: 120_000 }, async () => {
    const root = tempDir();
    const w = await core(root, { debounceMs: 20, maxDelayMs: 100, suspectThreshold: 20, stormQuietMs: 600_000, maxReconcileDelayMs: 300 });
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) await writeFile(join(root, `n${written++ % 500}.txt`), String(written));
    })();
    try {
      await waitFor(() => w.core.stats.suspectWindows >= 1 && w.core.stats.rescans >= 1, 'a reconcile while the storm goes on', 60_000);
      expect(w.holds()).toBe(1);
    } finally {
      writing = false;
      await writer;
    }
  });

  it('a missing root fails with code ENOENT', async () => {
    const missing = join(tempDir(), 'nope');
    const c = new FsWatchCore(missing, SLOW, { emit: () => undefined, hold: () => () => undefined, error: () => undefined });
    await expect(c.start()).rejects.toMatchObject({ code: 'ENOENT' });
    const watcher = new LocalFsWatcher(missing);
    await expect(watcher.watch(new AbortController().signal)[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('LocalFsWatcher through the engine', () => {
  it('a file written under a watched root reaches a subscriber (hosted in the watch worker)', async () => {
    const root = tempDir();
    const e = await engine();
    const seen = new Collector();
    await e.subscribe({ predicate: { sourcePrefix: 'file:' }, handler: seen.push });
    const watcher = new LocalFsWatcher(root, { debounceMs: 20, dataType: 'design_monorepo_file' });
    const mapped = await e.mapSource(watcher);
    expect(mapped.sourceId).toBe(`file:${root}`);
    writeFileSync(join(root, 'hello.md'), '# hi');
    await waitFor(() => seen.has('file:hello.md', 'page_added'), 'hello.md');
    const event = seen.latest.get('file:hello.md')!;
    expect(event).toMatchObject({ sourceId: `file:${root}`, dataType: 'design_monorepo_file', extra: { relativePath: 'hello.md' } });
    writeFileSync(join(root, 'hello.md'), '# hello');
    await waitFor(() => seen.has('file:hello.md', 'page_replaced'), 'the rewrite');
    rmSync(join(root, 'hello.md'));
    await waitFor(() => seen.has('file:hello.md', 'page_invalidated'), 'the delete');
    expect(await e.unmapSource(watcher)).toBe(true);
  });

  it('mapSource rejects with code ENOENT for a missing root, and the polling fallback delivers', async () => {
    const root = tempDir();
    const e = await engine();
    await expect(e.mapSource(new LocalFsWatcher(join(root, 'missing')))).rejects.toMatchObject({ code: 'ENOENT' });
    const seen = new Collector();
    await e.subscribe({ handler: seen.push });
    await e.mapSource(new LocalFsWatcher(root, { poll: true, pollIntervalMs: 50 }));
    writeFileSync(join(root, 'polled.txt'), 'p');
    await waitFor(() => seen.has('file:polled.txt', 'page_added'), 'the polled file');
  });

  it('runs on the caller thread when iterated directly, and stops when the signal aborts', async () => {
    const root = tempDir();
    const controller = new AbortController();
    const watcher = new LocalFsWatcher(root, { debounceMs: 20 });
    const iterator = watcher.watch(controller.signal)[Symbol.asyncIterator]();
    const first = iterator.next();
    // The baseline is taken inside the first next(); write until the watcher reports.
    let n = 0;
    const writer = setInterval(() => writeFileSync(join(root, `w${n++}.txt`), 'x'), 50);
    const result = await first;
    clearInterval(writer);
    expect(result.value).toMatchObject({ kind: 'page_added', extra: { relativePath: expect.stringMatching(/^w\d+\.txt$/) } });
    controller.abort();
    // Whatever was queued drains, then the iteration ends.
    for (;;) if ((await iterator.next()).done === true) break;
  });
});

describe('LocalFsWatcher in the watch worker: closing engines while the native watcher delivers', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const churn = fileURLToPath(new URL('../fixtures/watchers/close-under-churn.mjs', import.meta.url));
  const run = (script: string, ...args: string[]) => {
    const node = process.env.CONVERGE_TEST_TARGET === 'dist' ? [script, ...args] : ['--import', 'tsx', script, ...args];
    return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, node, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
    });
  };

  // @parcel/watcher 2.6 takes the whole process down when a thread ends with a live subscription
  // (parcel-bundler/watcher#264), and its addon cannot be loaded again once the only thread that
  // loaded it has ended. Closing must unsubscribe before the thread goes, and every engine in the
  // process must watch natively.
  it.each([['the addon loaded only by watch workers', ''], ['the addon also loaded on the main thread', 'pin']])(
    'the process survives 4 engines closed mid-storm, each watching natively (%s)',
    async (_, pin) => {
      const child = await run(churn, '4', pin);
      expect(child.signal, child.stderr).toBeNull();
      expect(child.code, child.stderr).toBe(0);
      const result = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { closed: number; sourceErrors: string[] };
      expect(result).toEqual({ closed: 4, sourceErrors: [] });
    },
    60_000,
  );

  // Without close(): a CLI that calls process.exit() while the watcher delivers. Node ends the watch
  // worker after the exit listeners; before they closed its subscriptions first, 2 runs in 3 aborted.
  it('process.exit() mid-storm with a directory mapped ends with the asked code, 3 times out of 3', async () => {
    const script = fileURLToPath(new URL('../fixtures/watchers/exit-under-churn.mjs', import.meta.url));
    for (let attempt = 0; attempt < 3; attempt++) {
      const child = await run(script);
      expect(child.signal, child.stderr).toBeNull();
      expect(child.code, child.stderr).toBe(7);
      const { delivered } = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { delivered: number };
      expect(delivered).toBeGreaterThanOrEqual(20);
    }
  }, 90_000);
});
