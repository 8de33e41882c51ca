/** Shared fixtures of the watcher tests: temporary directories and condition waits with deadlines. */
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
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

export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
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
