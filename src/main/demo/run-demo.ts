/**
 * `converge demo` (what `npm start` runs): a temporary git repository of generated files, watched by
 * the engine; a derivation pipeline whose first stage runs in the colony pool; a seeded storm of
 * writes, rewrites, renames and deletes plus a commit pushed to a loopback remote; quiescence; and a
 * check that the converged digest equals a from-scratch recomputation of the working tree.
 */
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createEngine, type Engine } from '../engine.js';
import type { QuiescenceReport } from '../../shared/protocol.js';
import { DemoPipeline } from './pipeline.js';
import { createWorkspace, recomputeDigest, runStorm, type StormTally } from './workspace.js';
import { type DemoView, createView } from './view.js';
import { demoSource } from './source.js';

/** `converge demo` options. */
export interface DemoOptions {
  /** Files in the generated repository (default 2,000). */
  files?: number;
  /** File operations in the storm (default 3,000). */
  storm?: number;
  /** Print one JSON document instead of the live view and table. */
  json?: boolean;
  /** Seed of the workspace and storm generators (default 1). */
  seed?: number;
}

export const DEMO_DEFAULTS = Object.freeze({ files: 2_000, storm: 3_000, seed: 1 });

/** What the demo measured; `ok` is whether the converged digest matched the recomputation. */
export interface DemoResult {
  ok: boolean;
  files: number;
  folders: number;
  storm: StormTally;
  digest: { converged: string; recomputed: string };
  /** The storm phase, from its first write until quiescence after the remote commit came back. */
  episode: {
    /** Episodes (quiescence announcements) during the storm phase. */
    episodes: number;
    events: number;
    dispatches: number;
    damped: number;
    rateLimited: number;
    deferred: number;
    failed: number;
    /** Time spent inside episodes (the engine converging), summed. */
    durationMs: number;
    /** Events over the whole storm phase's wall time. */
    eventsPerSecond: number;
  };
  dashboard: { updates: number; lines: number };
  /** Events the remote watcher reported for the commit pushed to the loopback remote. */
  remoteEvents: number;
  totalMs: number;
}

/** Longest the demo waits for the engine to settle after a phase. */
const SETTLE_TIMEOUT_MS = 120_000;

/** Runs the demo; resolves with its result (`ok: false` when the digest does not match). */
export async function runDemo(options: DemoOptions = {}, view: DemoView = createView({ json: options.json === true })): Promise<DemoResult> {
  const files = options.files ?? DEMO_DEFAULTS.files;
  const operations = options.storm ?? DEMO_DEFAULTS.storm;
  const seed = options.seed ?? DEMO_DEFAULTS.seed;
  const started = performance.now();
  view.phase(`creating a git repository of ${files.toLocaleString('en-US')} files with a loopback remote`);
  const workspace = await createWorkspace({ files, seed });
  let engine: Engine | undefined;
  let stopTicker = (): void => undefined;
  try {
    // Every derived stage multiplies the work of an event (file → summary → rollup → digest →
    // dashboard): the budget, which cuts runaway derivation, must allow the whole honest cascade.
    // The rollup and digest pages change with every file: a 250 ms per-page interval shows the rate
    // limiter (and its trailing delivery of each page's final state) without a 1 s tail per page.
    engine = await createEngine({ episodeBudget: 50 * (files + operations) + 10_000, rateLimit: { minIntervalMs: 250, burst: 4 } });
    const live = engine;
    const pipeline = new DemoPipeline(live);
    const source = await demoSource(workspace.dir);
    await pipeline.start(source.dataType);
    await live.mapSource(source.source);
    stopTicker = startTicker(live, view);

    view.phase('initial scan: one page per file, summarised in the colony pool');
    await live.dispatchChange(
      workspace.files.map((relativePath) => ({
        kind: 'page_added' as const,
        pageId: `file:${relativePath}`,
        sourceId: `file:${workspace.dir}`,
        dataType: source.dataType,
        extra: { relativePath },
      })),
    );
    await settle(live);

    // The storm's figures: engine-wide counters before and after, and the episodes in between
    // (quiet gaps between storm operations end an episode; the next write starts another).
    const before = (await live.getStatus()).counters as unknown as Record<string, number>;
    let episodes = 0;
    let episodeMs = 0;
    live.on('quiescence', (report) => {
      episodes++;
      episodeMs += report.durationMs;
    });
    const stormStarted = performance.now();
    view.phase(`storm: ${operations.toLocaleString('en-US')} writes, rewrites, renames and deletes, then a commit pushed to the remote`);
    view.startProgress(operations);
    const tally = await runStorm(workspace, { operations, seed: seed + 1, onProgress: (done) => view.progress(done) });
    view.stopProgress();

    view.phase('waiting for quiescence');
    await barrier(workspace.dir, pipeline);
    if (tally.writes + tally.rewrites + tally.renames + tally.deletes > 0) {
      // The pushed commit changed files: wait until the remote watcher has fetched it and reported.
      await withDeadline(pipeline.whenRemoteCommit(tally.pushed), `the remote watcher did not report commit ${tally.pushed}`);
    }
    await settle(live);
    const stormMs = performance.now() - stormStarted;
    stopTicker();
    const after = (await live.getStatus()).counters as unknown as Record<string, number>;
    const delta = (name: string): number => (after[name] ?? 0) - (before[name] ?? 0);
    const recomputed = await recomputeDigest(workspace.dir);
    const result: DemoResult = {
      ok: recomputed.digest === pipeline.digest,
      files: recomputed.files,
      folders: recomputed.folders,
      storm: tally,
      digest: { converged: pipeline.digest, recomputed: recomputed.digest },
      episode: {
        episodes,
        events: delta('eventsReceived'),
        dispatches: delta('dispatchesEmitted'),
        damped: delta('dispatchesDamped'),
        rateLimited: delta('dispatchesRateLimited'),
        deferred: delta('dispatchesDeferred'),
        failed: delta('dispatchesFailed'),
        durationMs: episodeMs,
        eventsPerSecond: stormMs > 0 ? (delta('eventsReceived') * 1000) / stormMs : 0,
      },
      dashboard: { updates: pipeline.dashboardUpdates, lines: pipeline.dashboardLines },
      remoteEvents: pipeline.remoteEvents,
      totalMs: performance.now() - started,
    };
    view.result(result);
    return result;
  } finally {
    stopTicker();
    await engine?.close();
    await workspace.dispose();
  }
}

async function settle(engine: Engine): Promise<QuiescenceReport> {
  const report = await engine.waitForQuiescence({ timeoutMs: SETTLE_TIMEOUT_MS });
  if (report === null) throw new Error(`the engine did not settle within ${SETTLE_TIMEOUT_MS / 1000} s`);
  return report;
}

/**
 * A barrier through the watcher: the storm's last writes may still be in the kernel's queue when
 * the storm returns, where no engine can see them yet. A marker file written after them and
 * removed again comes through the same queue, so once the pipeline has seen both, everything
 * written before it has reached the engine.
 */
async function barrier(dir: string, pipeline: DemoPipeline): Promise<void> {
  const marker = 'zz-converge-barrier.txt';
  await writeFile(join(dir, marker), 'barrier\n');
  await withDeadline(pipeline.whenSeen(marker, true), 'the watcher did not report the barrier file');
  await rm(join(dir, marker));
  await withDeadline(pipeline.whenSeen(marker, false), 'the watcher did not report the barrier file removed');
}

async function withDeadline(promise: Promise<void>, message: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([promise, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(message)), SETTLE_TIMEOUT_MS)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Feeds the view live counters until stopped. */
function startTicker(engine: Engine, view: DemoView): () => void {
  let stopped = false;
  const timer = setInterval(() => {
    engine
      .getStatus()
      .then((status) => {
        if (!stopped) view.counters(status.counters as unknown as Record<string, number>, status.state);
      })
      .catch(() => undefined);
  }, 250);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
