/** Shared fixtures of the watcher tests: temporary directories and condition waits with deadlines. */
import { spawn } from 'node:child_process';
import { mkdtempSync, realpathSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PageChangeEvent } from '../../src/main/index.js';

const dirs: string[] = [];

/** A fresh directory (real path), removed by {@link removeTempDirs}. */
export function tempDir(prefix = 'converge-watch-'): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  dirs.push(dir);
  return dir;
}

/**
 * Removes the temporary directories. `background`: hand the removal to a detached `rm -rf` (deleting
 * tens of thousands of files can take minutes on a busy disk, and nothing waits for it).
 */
export async function removeTempDirs(options: { background?: boolean } = {}): Promise<void> {
  const list = dirs.splice(0);
  if (options.background === true && process.platform !== 'win32') {
    for (const dir of list) spawn('rm', ['-rf', dir], { detached: true, stdio: 'ignore' }).unref();
    return;
  }
  await Promise.all(list.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 3 })));
}

/**
 * Resolves once `condition()` holds; rejects with `what` after `timeoutMs`. Checks on every turn of
 * the event loop with a short pause: a wait on a condition, never a sleep standing in for one.
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Collects events; `latest` keeps the last event per page id. */
export class Collector {
  readonly events: PageChangeEvent[] = [];
  readonly latest = new Map<string, PageChangeEvent>();
  readonly push = (event: PageChangeEvent): void => {
    this.events.push(event);
    this.latest.set(event.pageId, event);
  };
  has(pageId: string, kind?: PageChangeEvent['kind']): boolean {
    const e = this.latest.get(pageId);
    return e !== undefined && (kind === undefined || e.kind === kind);
  }
}
