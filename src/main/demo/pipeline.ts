/**
 * The demo's derivation pipeline on a live engine:
 *
 *   file:<path>      ──task (colony pool)──►  summary:<path>     (bytes, lines, words, hash)
 *   summary:<path>   ──handler────────────►  rollup:<folder>    (files, bytes, lines, hash)
 *   rollup:<folder>  ──handler────────────►  digest:project     (sha256 over the rollups)
 *   digest:project   ──handler, damped────►  the dashboard metric (total lines, 1 % tolerance)
 *
 * Every stage is idempotent and order-proof: a summary carries the monotonic time its read started
 * and a rollup a per-folder version, and each stage keeps only the newest it has seen, so the
 * converged digest cannot depend on the order dispatches ran in — only on what the engine delivered.
 */
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { type FileSummary, folderOf, type FolderRollup, projectDigest, rollupFolder } from '../../shared/demo-model.js';
import type { PageChangeEvent } from '../../shared/events.js';
import type { Engine } from '../engine.js';

const SUMMARY = 'file_summary';
const ROLLUP = 'folder_rollup';
const DIGEST = 'project_digest';

/** The pool task module: the built `.js` when it exists, else its TypeScript source (development). */
function summarizeTaskFile(): string {
  const built = new URL('../../workers/demo-summarize.task.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return fileURLToPath(built);
  return fileURLToPath(new URL('../../workers/demo-summarize.task.ts', import.meta.url));
}

export class DemoPipeline {
  readonly #engine: Engine;
  /** Newest read time per path, tombstones included: older summaries are stale and ignored. */
  readonly #readAt = new Map<string, bigint>();
  readonly #folders = new Map<string, Map<string, FileSummary>>();
  readonly #folderVersion = new Map<string, number>();
  readonly #rollups = new Map<string, { version: number; rollup: FolderRollup }>();
  #digest = projectDigest(new Map());
  readonly #waiters = new Map<string, { present: boolean; resolve: () => void }[]>();
  readonly #remoteShas = new Set<string>();
  readonly #remoteWaiters = new Map<string, () => void>();
  /** Events the remote watcher reported for commits fetched from `origin`. */
  remoteEvents = 0;
  /** Deliveries the damped dashboard subscription actually received. */
  dashboardUpdates = 0;
  /** The dashboard's latest total-lines figure. */
  dashboardLines = 0;

  constructor(engine: Engine) {
    this.#engine = engine;
  }

  /** The digest the pipeline has converged to so far. */
  get digest(): string {
    return this.#digest;
  }

  /** Resolves once a summary of `path` has arrived saying it exists (`present`) or is gone. */
  whenSeen(path: string, present: boolean): Promise<void> {
    const files = this.#folders.get(folderOf(path));
    if ((files?.has(path) ?? false) === present && this.#readAt.has(path)) return Promise.resolve();
    return new Promise((resolve) => {
      let list = this.#waiters.get(path);
      if (list === undefined) this.#waiters.set(path, (list = []));
      list.push({ present, resolve });
    });
  }

  /** Resolves once the remote watcher has reported changes of commit `sha`. */
  whenRemoteCommit(sha: string): Promise<void> {
    if (this.#remoteShas.has(sha)) return Promise.resolve();
    return new Promise((resolve) => this.#remoteWaiters.set(sha, resolve));
  }

  /** Subscribes the four stages. `fileDataType` is what the file source stamps on its events. */
  async start(fileDataType: string): Promise<void> {
    await this.#engine.subscribe({
      // Edits in the tree (sourceId `file:<root>`); commits seen on the remote are counted below.
      predicate: { dataType: fileDataType, sourcePrefix: 'file:', pageIdPrefix: 'file:' },
      task: { filename: summarizeTaskFile() },
      outputs: [{ dataType: SUMMARY }],
    });
    await this.#engine.subscribe({
      predicate: { dataType: fileDataType, sourcePrefix: 'git:' },
      handler: (event) => {
        this.remoteEvents++;
        const sha = event.sourceId.slice(event.sourceId.lastIndexOf('@') + 1);
        this.#remoteShas.add(sha);
        this.#remoteWaiters.get(sha)?.();
      },
    });
    await this.#engine.subscribe({
      predicate: { dataType: SUMMARY },
      handler: (event) => this.#onSummary(event),
      outputs: [{ dataType: ROLLUP }],
    });
    await this.#engine.subscribe({
      predicate: { dataType: ROLLUP },
      handler: (event) => this.#onRollup(event),
      outputs: [{ dataType: DIGEST }],
    });
    await this.#engine.subscribe({
      predicate: { dataType: DIGEST },
      tolerance: { mode: 'relative', value: 0.01 },
      handler: (event) => {
        this.dashboardUpdates++;
        this.dashboardLines = Number(event.extra?.value ?? 0);
      },
    });
  }

  #onSummary(event: PageChangeEvent): Promise<void> | undefined {
    const extra = event.extra ?? {};
    const path = String(extra.path);
    const readAt = BigInt(String(extra.readAt));
    if ((this.#readAt.get(path) ?? -1n) >= readAt) return undefined;
    this.#readAt.set(path, readAt);
    const folder = folderOf(path);
    let files = this.#folders.get(folder);
    if (files === undefined) this.#folders.set(folder, (files = new Map()));
    if (event.kind === 'page_invalidated') files.delete(path);
    else files.set(path, { bytes: Number(extra.bytes), lines: Number(extra.lines), words: Number(extra.words), hash: String(extra.hash) });
    const waiting = this.#waiters.get(path);
    if (waiting !== undefined) {
      const present = event.kind !== 'page_invalidated';
      const still = waiting.filter((w) => w.present !== present);
      for (const w of waiting) if (w.present === present) w.resolve();
      if (still.length === 0) this.#waiters.delete(path);
      else this.#waiters.set(path, still);
    }
    const version = (this.#folderVersion.get(folder) ?? 0) + 1;
    this.#folderVersion.set(folder, version);
    const rollup = rollupFolder(files);
    return this.#engine.dispatchChange({
      kind: 'page_added',
      pageId: `rollup:${folder}`,
      sourceId: 'demo:rollup',
      dataType: ROLLUP,
      extra: { folder, version, ...rollup, value: rollup.lines },
    });
  }

  #onRollup(event: PageChangeEvent): Promise<void> | undefined {
    const extra = event.extra ?? {};
    const folder = String(extra.folder);
    const version = Number(extra.version);
    if ((this.#rollups.get(folder)?.version ?? 0) >= version) return undefined;
    const rollup: FolderRollup = { files: Number(extra.files), bytes: Number(extra.bytes), lines: Number(extra.lines), hash: String(extra.hash) };
    this.#rollups.set(folder, { version, rollup });
    const current = new Map<string, FolderRollup>();
    let lines = 0;
    for (const [name, entry] of this.#rollups) {
      current.set(name, entry.rollup);
      lines += entry.rollup.lines;
    }
    this.#digest = projectDigest(current);
    return this.#engine.dispatchChange({
      kind: 'page_added',
      pageId: 'digest:project',
      sourceId: 'demo:digest',
      dataType: DIGEST,
      extra: { digest: this.#digest, value: lines },
    });
  }
}
