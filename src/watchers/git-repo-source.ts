/**
 * `GitRepoSource` (DESIGN §4): a git working tree as a live source. `watch()` merges a
 * LocalFsWatcher (edits in the tree — including files created after the watch started; mapped into
 * an engine it runs in the watch worker) and a GitRemoteWatcher (upstream commits) through a
 * CompositeWatcher. Mapped into an engine, it also
 * checkpoints at quiescence (commit + tag `auto_quiescence_<ISO>`) unless `checkpointOnQuiescence:
 * false`; `restoreCheckpoint(id)` brings the tree back.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { PageChangeEvent } from '../shared/events.js';
import { GitCheckpointer } from './checkpoint.js';
import { CompositeWatcher } from './composite-watcher.js';
import { SourceNotFoundError } from './errors.js';
import { GitRemoteWatcher, type GitRemoteWatcherOptions } from './git-remote-watcher.js';
import { LocalFsWatcher, type LocalFsWatcherOptions } from './local-fs-watcher.js';
import { type ContextPageSource, NO_WATCH_CONTEXT, type WatchContext, reportSourceError } from './source.js';

/** Options of {@link GitRepoSource}. */
export interface GitRepoSourceOptions {
  /** `dataType` of every event. Default `design_monorepo_file`. */
  dataType?: string;
  /** Options of the tree watcher (dataType is taken from above). */
  localFs?: Omit<LocalFsWatcherOptions, 'dataType'>;
  /** Options of the remote watcher; `false` watches the tree only. */
  remote?: Omit<GitRemoteWatcherOptions, 'dataType'> | false;
  /** Commit and tag uncommitted changes at each quiescence. Default true. */
  checkpointOnQuiescence?: boolean;
  /** Called with each checkpoint tag made. */
  onCheckpoint?: (tag: string) => void;
}

export class GitRepoSource implements ContextPageSource {
  readonly static = false;
  readonly reportsReady = true;
  readonly dir: string;
  readonly sourceId: string;
  readonly checkpointer: GitCheckpointer;
  readonly #options: GitRepoSourceOptions;

  constructor(dir: string, options: GitRepoSourceOptions = {}) {
    this.dir = resolve(dir);
    this.sourceId = `git-repo:${this.dir}`;
    this.#options = options;
    this.checkpointer = new GitCheckpointer(this.dir);
  }

  async *watch(signal: AbortSignal = new AbortController().signal, context: WatchContext = NO_WATCH_CONTEXT): AsyncGenerator<PageChangeEvent> {
    if (!existsSync(join(this.dir, '.git'))) throw new SourceNotFoundError(join(this.dir, '.git'));
    const dataType = this.#options.dataType ?? 'design_monorepo_file';
    const children: ContextPageSource[] = [new LocalFsWatcher(this.dir, { ...this.#options.localFs, dataType })];
    if (this.#options.remote !== false) children.push(new GitRemoteWatcher(this.dir, { ...this.#options.remote, dataType }));
    let stopCheckpoints: (() => void) | undefined;
    if (this.#options.checkpointOnQuiescence !== false && context.onQuiescence !== undefined) {
      stopCheckpoints = context.onQuiescence(() => {
        this.checkpointer.checkpoint().then(
          (tag) => tag !== undefined && this.#options.onCheckpoint?.(tag),
          (error: unknown) => reportSourceError(this.sourceId, error, context),
        );
      });
    }
    try {
      yield* new CompositeWatcher(children, { sourceId: this.sourceId }).watch(signal, context);
    } finally {
      stopCheckpoints?.();
    }
  }

  /** Commits and tags uncommitted changes now (what quiescence does); undefined when clean. */
  checkpoint(): Promise<string | undefined> {
    return this.checkpointer.checkpoint();
  }

  /** Brings the working tree back to checkpoint `id` (a tag). */
  restoreCheckpoint(id: string): Promise<void> {
    return this.checkpointer.restore(id);
  }

  /** Checkpoint tags, oldest first. */
  listCheckpoints(): Promise<string[]> {
    return this.checkpointer.list();
  }
}
