/**
 * The acceptance storm: 20,000 files created and rewritten by a child process under a watched root.
 * Every path's final state must reach the subscriber: compared at the end with a directory listing
 * and content hashes. Nothing may be lost, even if the kernel's inotify queue overflows.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import { createEngine, type Engine, LocalFsWatcher } from '../../src/main/index.js';
import { Collector, removeTempDirs, tempDir, waitFor } from './helpers.js';

const WRITER = fileURLToPath(new URL('../fixtures/watchers/storm-writer.mjs', import.meta.url));
const FILES = 20_000;
const DIRS = 40;

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.close();
  engine = undefined;
  await removeTempDirs({ background: true });
});

/** `file:<relative path>` → sha1 of the content, for every file under root. */
function listing(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const dir of readdirSync(root)) {
    for (const name of readdirSync(join(root, dir))) {
      out.set(`file:${dir}/${name}`, createHash('sha1').update(readFileSync(join(root, dir, name))).digest('hex'));
    }
  }
  return out;
}

/** Paths whose last event does not describe their final state. */
function mismatches(seen: Collector, expected: Map<string, string>): string[] {
  const wrong: string[] = [];
  for (const [pageId, hash] of expected) {
    const last = seen.latest.get(pageId);
    if (last === undefined || last.kind === 'page_invalidated' || last.extra?.['contentHash'] !== hash) wrong.push(pageId);
  }
  for (const [pageId, last] of seen.latest) if (!expected.has(pageId) && last.kind !== 'page_invalidated') wrong.push(pageId);
  return wrong;
}

it(`a storm of ${FILES} file creations and rewrites from a child process delivers every path's final state`, { timeout: 300_000 }, async () => {
  const root = tempDir('converge-storm-');
  engine = await createEngine({ episodeBudget: 10_000_000 });
  const seen = new Collector();
  await engine.subscribe({ predicate: { sourcePrefix: 'file:' }, handler: seen.push });
  await engine.mapSource(new LocalFsWatcher(root, { debounceMs: 50 }));

  const { stdout } = await promisify(execFile)(process.execPath, [WRITER, root, String(FILES), String(DIRS)]);
  expect(stdout.trim()).toBe('done');
  const expected = listing(root);
  expect(expected.size).toBe(FILES - FILES / 10);

  // The watcher catches up (condition with a deadline), then the engine must settle with nothing left.
  await waitFor(() => mismatches(seen, expected).length === 0, 'every path to reach its final state', 240_000);
  const report = await engine.waitForQuiescence({ timeoutMs: 60_000 });
  expect(report).not.toBeNull();
  expect(mismatches(seen, expected)).toEqual([]);
  // Deleted files that were reported at all end invalidated; none of them is still "present".
  for (let i = 3; i < FILES; i += 10) {
    const last = seen.latest.get(`file:d${i % DIRS}/f${i}.txt`);
    expect(last === undefined || last.kind === 'page_invalidated').toBe(true);
  }
});
