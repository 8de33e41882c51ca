/**
 * Checkpoints of a git working tree (seed 000's DesignCheckpointer): at each quiescence that leaves
 * uncommitted changes, commit them and tag the commit `auto_quiescence_<ISO-8601>` (basic format,
 * since `:` is not allowed in git ref names: `auto_quiescence_20261129T195012.345Z`);
 * `restoreCheckpoint(id)` brings the working tree back to a tag. Only `.git` is written by a
 * checkpoint, and file watchers ignore `.git`, so a checkpoint is never reported back as a change.
 */
import * as fs from 'node:fs';
import { loadGit } from './git-module.js';
import { CheckpointError } from './errors.js';

/** Prefix of the tags made at quiescence. */
export const CHECKPOINT_TAG_PREFIX = 'auto_quiescence_';

/** Options of {@link GitCheckpointer}. */
export interface GitCheckpointerOptions {
  author?: { name: string; email: string };
  /** Clock for tag names (tests). */
  now?: () => Date;
}

export class GitCheckpointer {
  readonly dir: string;
  readonly #author: { name: string; email: string };
  readonly #now: () => Date;
  #running: Promise<string | undefined> | undefined;

  constructor(dir: string, options: GitCheckpointerOptions = {}) {
    this.dir = dir;
    this.#author = options.author ?? { name: 'converge', email: 'converge@localhost' };
    this.#now = options.now ?? (() => new Date());
  }

  /** Commits and tags uncommitted changes; resolves with the tag, or undefined when the tree is clean. */
  checkpoint(): Promise<string | undefined> {
    // One at a time: two quiescences in quick succession must not commit the same changes twice.
    const next = (this.#running ?? Promise.resolve(undefined)).catch(() => undefined).then(() => this.#checkpointOnce());
    this.#running = next;
    return next;
  }

  async #checkpointOnce(): Promise<string | undefined> {
    const dir = this.dir;
    const { git } = await loadGit();
    try {
      const matrix = await git.statusMatrix({ fs, dir });
      // [path, head, workdir, stage]: 1/1/1 is unmodified; anything else is a change to record.
      const changed = matrix.filter(([, head, workdir, stage]) => !(head === 1 && workdir === 1 && stage === 1));
      if (changed.length === 0) return undefined;
      for (const [path, , workdir] of changed) {
        if (workdir === 0) await git.remove({ fs, dir, filepath: path });
        else await git.add({ fs, dir, filepath: path });
      }
      const stamp = this.#now().toISOString().replace(/[-:]/g, '');
      const existing = new Set(await git.listTags({ fs, dir }));
      let tag = `${CHECKPOINT_TAG_PREFIX}${stamp}`;
      for (let n = 1; existing.has(tag); n++) tag = `${CHECKPOINT_TAG_PREFIX}${stamp}-${n}`;
      const oid = await git.commit({ fs, dir, message: `converge checkpoint at quiescence (${tag})`, author: this.#author });
      await git.tag({ fs, dir, ref: tag, object: oid });
      return tag;
    } catch (error) {
      throw new CheckpointError(`checkpoint of ${dir} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  }

  /** Tags made by checkpoints, oldest first. */
  async list(): Promise<string[]> {
    const { git } = await loadGit();
    return (await git.listTags({ fs, dir: this.dir })).filter((t) => t.startsWith(CHECKPOINT_TAG_PREFIX)).sort();
  }

  /**
   * Brings the working tree (and index) back to the checkpoint `id`; HEAD stays on its branch, so
   * the next checkpoint records the restore as a new commit. Files the watcher sees change are
   * reported as usual: a restore is a real change of the tree.
   */
  async restore(id: string): Promise<void> {
    const dir = this.dir;
    const { git } = await loadGit();
    let oid: string;
    try {
      oid = await git.resolveRef({ fs, dir, ref: `refs/tags/${id}` });
      const target = await git.readTag({ fs, dir, oid }).then((t) => t.tag.object).catch(() => oid);
      oid = target;
    } catch (error) {
      throw new CheckpointError(`no checkpoint ${JSON.stringify(id)} in ${dir}`, { cause: error });
    }
    try {
      // Files tracked now but absent from the checkpoint go; the checkpoint's files come back.
      const now = new Set(await git.listFiles({ fs, dir }));
      const then = new Set(await git.listFiles({ fs, dir, ref: oid }));
      for (const path of now) {
        if (!then.has(path)) {
          await fs.promises.rm(`${dir}/${path}`, { force: true });
          await git.remove({ fs, dir, filepath: path });
        }
      }
      await git.checkout({ fs, dir, ref: oid, force: true, noUpdateHead: true });
    } catch (error) {
      throw new CheckpointError(`restoring ${id} in ${dir} failed`, { cause: error });
    }
  }
}
