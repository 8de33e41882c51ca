/**
 * `GitRemoteWatcher` (DESIGN §4): polls a remote with isomorphic-git — fetch, then a tree diff
 * between the previous and the new commit of the branch: added → page_added, removed →
 * page_invalidated, modified → page_replaced (renames and copies: the old path invalidated, the new
 * one added). sourceId `git:<url>@<sha>`. The first successful poll is the baseline. A failed fetch
 * is counted, reported and retried with exponential backoff; it is never fatal. With a leader lock
 * (e.g. `PostgresStore.leaderLock(name)`) only the replica holding it polls.
 */
import * as fs from 'node:fs';
import { resolve } from 'node:path';
import { loadGit } from './git-module.js';
import { z } from 'zod';
import type { PageChangeEvent } from '../shared/events.js';
import { parseInput } from '../shared/validation.js';
import { sleep } from './abortable.js';
import { GitFetchError, SourceNotFoundError } from './errors.js';
import { diffCommits, type TreeChange } from './git-diff.js';
import { type ContextPageSource, NO_WATCH_CONTEXT, type WatchContext, reportSourceError } from './source.js';

/** What a leader lock must offer (PostgresStore's LeaderLock does). */
export interface LeaderGate {
  tryAcquire(): Promise<boolean>;
}

/** Options of {@link GitRemoteWatcher}. */
export interface GitRemoteWatcherOptions {
  remote?: string;
  branch?: string;
  /** Interval between fetches. Default 30 000 ms. */
  pollMs?: number;
  /** Longest backoff after failures. Default 10 × pollMs. */
  maxBackoffMs?: number;
  /** An isomorphic-git HTTP client. Default `isomorphic-git/http/node`. */
  http?: unknown;
  /** Extra headers for every request (e.g. authorization). */
  headers?: Record<string, string>;
  dataType?: string;
  /** Only poll while this lock is held. */
  leaderLock?: LeaderGate;
  onError?: (error: unknown) => void;
}

const OptionsSchema = z
  .object({
    remote: z.string().min(1).optional(),
    branch: z.string().min(1).optional(),
    pollMs: z.number().finite().positive().optional(),
    maxBackoffMs: z.number().finite().positive().optional(),
    http: z.unknown().optional(),
    headers: z.record(z.string(), z.string()).optional(),
    dataType: z.string().min(1).optional(),
    leaderLock: z.custom<LeaderGate>((v) => typeof (v as LeaderGate | null)?.tryAcquire === 'function', 'must have tryAcquire()').optional(),
    onError: z.custom<(error: unknown) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .strict();

/** Builds the events of a commit-to-commit change list. */
export function gitChangeEvents(changes: readonly TreeChange[], sourceId: string, dataType: string, sha: string): PageChangeEvent[] {
  const ts = Date.now();
  const added: PageChangeEvent[] = [];
  const replaced: PageChangeEvent[] = [];
  const invalidated: PageChangeEvent[] = [];
  for (const { path, change } of changes) {
    const pageId = `file:${path}`;
    const base = { pageId, sourceId, dataType, extra: { relativePath: path, sha }, ts };
    if (change === 'added') added.push({ kind: 'page_added', ...base });
    else if (change === 'removed') invalidated.push({ kind: 'page_invalidated', ...base, reason: 'removed upstream' });
    else replaced.push({ kind: 'page_replaced', ...base, related: [pageId] });
  }
  return [...added, ...replaced, ...invalidated];
}

export class GitRemoteWatcher implements ContextPageSource {
  readonly static = false;
  /** Ready after the first poll (the baseline) was tried, or the first leadership check said no. */
  readonly reportsReady = true;
  readonly dir: string;
  readonly remote: string;
  readonly branch: string;
  readonly #options: GitRemoteWatcherOptions;
  readonly #pollMs: number;
  #lastSha: string | undefined;
  /** Failed fetches in a row (0 after a success). */
  failures = 0;
  /** Failed fetches in all. */
  totalFailures = 0;

  constructor(dir: string, options: GitRemoteWatcherOptions = {}) {
    this.#options = parseInput(OptionsSchema, options, 'options') as GitRemoteWatcherOptions;
    this.dir = resolve(dir);
    this.remote = this.#options.remote ?? 'origin';
    this.branch = this.#options.branch ?? 'main';
    this.#pollMs = this.#options.pollMs ?? 30_000;
  }

  get sourceId(): string {
    return `git:${this.dir}#${this.remote}/${this.branch}`;
  }

  /** The commit of the last successful poll (undefined before the baseline). */
  get lastSha(): string | undefined {
    return this.#lastSha;
  }

  async *watch(signal: AbortSignal = new AbortController().signal, context: WatchContext = NO_WATCH_CONTEXT): AsyncGenerator<PageChangeEvent> {
    if (!fs.existsSync(resolve(this.dir, '.git'))) throw new SourceNotFoundError(resolve(this.dir, '.git'));
    let delay = 0;
    while (!signal.aborted) {
      if (delay > 0 && !(await sleep(delay, signal))) return;
      delay = this.#pollMs;
      if (this.#options.leaderLock !== undefined && !(await this.#isLeader(context))) {
        context.ready?.();
        continue;
      }
      let events: PageChangeEvent[];
      try {
        events = await this.poll();
        context.ready?.();
      } catch (error) {
        context.ready?.();
        this.failures++;
        this.totalFailures++;
        this.#report(new GitFetchError(this.remote, this.failures, { cause: error }), context);
        const max = this.#options.maxBackoffMs ?? this.#pollMs * 10;
        delay = Math.min(max, this.#pollMs * 2 ** Math.min(this.failures, 16));
        continue;
      }
      if (events.length === 0) continue;
      const release = context.hold();
      try {
        for (const event of events) {
          if (signal.aborted) return;
          yield event;
        }
      } finally {
        release();
      }
    }
  }

  async #isLeader(context: WatchContext): Promise<boolean> {
    try {
      return await this.#options.leaderLock!.tryAcquire();
    } catch (error) {
      this.#report(error, context);
      return false;
    }
  }

  /** Fetches once and returns the changes since the last poll (none on the first: the baseline). */
  async poll(): Promise<PageChangeEvent[]> {
    const { git, http: nodeHttp } = await loadGit();
    const url = (await git.getConfig({ fs, dir: this.dir, path: `remote.${this.remote}.url` })) as string | undefined;
    await git.fetch({
      fs,
      http: (this.#options.http ?? nodeHttp) as Parameters<typeof git.fetch>[0]['http'],
      dir: this.dir,
      remote: this.remote,
      ref: this.branch,
      singleBranch: true,
      tags: false,
      ...(this.#options.headers === undefined ? {} : { headers: this.#options.headers }),
    });
    this.failures = 0;
    const sha = await git.resolveRef({ fs, dir: this.dir, ref: `refs/remotes/${this.remote}/${this.branch}` });
    const previous = this.#lastSha;
    this.#lastSha = sha;
    if (previous === undefined || previous === sha) return [];
    const changes = await diffCommits(this.dir, previous, sha);
    return gitChangeEvents(changes, `git:${url ?? this.remote}@${sha}`, this.#options.dataType ?? 'design_monorepo_file', sha);
  }

  #report(error: unknown, context: WatchContext): void {
    reportSourceError(this.sourceId, error, context, this.#options.onError);
  }
}
