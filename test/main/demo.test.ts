/**
 * The product demo end to end, small: a real git repository, a real watcher, the colony pool, a
 * storm and a loopback remote. It must converge to exactly the from-scratch digest.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runDemo, type DemoResult } from '../../src/main/demo/run-demo.js';
import { renderResult, type DemoView } from '../../src/main/demo/view.js';

function recordingView(): DemoView & { phases: string[]; results: DemoResult[] } {
  const phases: string[] = [];
  const results: DemoResult[] = [];
  return {
    phases,
    results,
    phase: (text) => phases.push(text),
    startProgress: () => undefined,
    progress: () => undefined,
    stopProgress: () => undefined,
    counters: () => undefined,
    result: (result) => results.push(result),
  };
}

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = process.env.CONVERGE_TEST_TARGET === 'dist' ? [join(root, 'dist/main/cli.js')] : ['--import', 'tsx', join(root, 'src/main/cli.ts')];

describe('converge demo', () => {
  it('runs from the command line and prints one JSON result with a verified digest', async () => {
    const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(process.execPath, [...cli, 'demo', '--files', '60', '--storm', '40', '--json'], { cwd: root, timeout: 170_000 }, (error, out) => {
        resolve({ code: error === null ? 0 : Number((error as { code?: unknown }).code ?? -1), stdout: out });
      });
    });
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as DemoResult;
    expect(result.ok).toBe(true);
    expect(result.digest.converged).toBe(result.digest.recomputed);
    expect(result.storm.commits).toBe(1);
  }, 180_000);

  it('converges a storm over a watched git repository to the from-scratch digest', async () => {
    const view = recordingView();
    const result = await runDemo({ files: 120, storm: 150, seed: 7 }, view);
    expect(result.digest.converged).toBe(result.digest.recomputed);
    expect(result.ok).toBe(true);
    // The storm really changed the tree and the engine really did the work.
    expect(result.storm.writes + result.storm.renames + result.storm.deletes).toBeGreaterThan(0);
    expect(result.episode.events).toBeGreaterThan(0);
    expect(result.episode.dispatches).toBeGreaterThan(0);
    expect(result.episode.failed).toBe(0);
    // The commit pushed to the loopback remote came back through the remote watcher.
    expect(result.remoteEvents).toBeGreaterThan(0);
    expect(view.results).toHaveLength(1);
    expect(view.phases.some((p) => p.startsWith('storm'))).toBe(true);
  }, 180_000);

  it('says FAILED, naming both digests, when the converged digest differs', () => {
    const result: DemoResult = {
      ok: false,
      files: 1,
      folders: 1,
      storm: { writes: 0, rewrites: 0, identical: 0, renames: 0, deletes: 0, commits: 1, pushed: 'c'.repeat(40) },
      digest: { converged: 'a'.repeat(64), recomputed: 'b'.repeat(64) },
      episode: { episodes: 1, events: 1, dispatches: 1, damped: 0, rateLimited: 0, deferred: 0, failed: 0, durationMs: 1, eventsPerSecond: 1000 },
      dashboard: { updates: 0, lines: 0 },
      remoteEvents: 0,
      totalMs: 1,
    };
    const text = renderResult(result, false);
    expect(text).toContain('FAILED');
    expect(text).toContain('aaaaaaaaaaaaaaaa');
    expect(text).toContain('bbbbbbbbbbbbbbbb');
  });
});
