/**
 * What a file watcher knows about its tree: per file the stat fingerprint and a content hash. Every
 * decision is a comparison of this state with the disk *now*, so a burst of raw events collapses to
 * each path's net change (create+change → added, create+delete → nothing, delete+create → replaced,
 * even with the same content: the file was born again) and a rewrite in place with identical content
 * is no change at all.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { IgnoreMatcher } from './ignore.js';

/** Stat fingerprint plus content hash of one file (or symlink: its target string is the content). */
export interface FileState {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  /** Creation time (0 where the file system does not report it): a new file at a known path. */
  birthNs: bigint;
  hash: string;
}

/** A path's net change between the known state and the disk. */
export type NetChange = 'added' | 'replaced' | 'removed';

type BigStats = Awaited<ReturnType<typeof statPath>>;

/** Files opened at once while hashing or stat-ing. */
const IO_CONCURRENCY = 32;

async function statPath(abs: string) {
  return lstat(abs, { bigint: true });
}

function isMissing(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Runs `fn` over `items` with at most {@link IO_CONCURRENCY} in flight. */
export async function forEachLimited<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(IO_CONCURRENCY, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

export class FsTree {
  readonly root: string;
  readonly #ignored: IgnoreMatcher;
  readonly files = new Map<string, FileState>();
  readonly dirs = new Set<string>();
  /** Directories {@link check} found where it expected a file; the caller expands them. */
  readonly discovered: string[] = [];

  constructor(root: string, ignored: IgnoreMatcher) {
    this.root = root;
    this.#ignored = ignored;
  }

  /** True when `rel` is ignored (default names, dotfiles, user globs). */
  ignored(rel: string): boolean {
    return this.#ignored(rel);
  }

  /** Root-relative paths of every file and directory under `rel` ('' = the root) on disk now. */
  async list(rel: string): Promise<{ files: string[]; dirs: string[] }> {
    const files: string[] = [];
    const dirs: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(join(this.root, dir), { withFileTypes: true });
      } catch (error) {
        if (isMissing(error)) return;
        throw error;
      }
      if (dir === rel && rel !== '') dirs.push(rel);
      const subdirs: string[] = [];
      for (const entry of entries) {
        const child = dir === '' ? entry.name : `${dir}/${entry.name}`;
        if (this.#ignored(child)) continue;
        if (entry.isDirectory()) subdirs.push(child);
        else files.push(child);
      }
      dirs.push(...subdirs);
      await forEachLimited(subdirs, walk);
    };
    await walk(rel);
    return { files, dirs };
  }

  /**
   * Compares `rel` on disk with the known state and updates it. `trustStat`: a file whose stat
   * fingerprint is unchanged is taken as unchanged without reading it (a rescan); otherwise the
   * content is hashed (a path an event named: its mtime may have moved with identical content).
   */
  async check(rel: string, trustStat: boolean): Promise<NetChange | undefined> {
    const abs = join(this.root, rel);
    const prev = this.files.get(rel);
    let stats: BigStats;
    try {
      stats = await statPath(abs);
    } catch (error) {
      if (!isMissing(error)) throw error;
      return this.#forget(rel);
    }
    if (stats.isDirectory()) {
      // A file became a directory: the file is gone (its contents are found by the caller's scan).
      if (!this.dirs.has(rel)) this.discovered.push(rel);
      this.dirs.add(rel);
      return this.#forget(rel);
    }
    if (prev !== undefined && prev.size === stats.size && prev.mtimeNs === stats.mtimeNs && prev.ctimeNs === stats.ctimeNs && prev.ino === stats.ino && prev.birthNs === stats.birthtimeNs) {
      if (trustStat) return undefined;
    }
    let content: Buffer | string;
    try {
      content = stats.isSymbolicLink() ? await readlink(abs) : await readFile(abs);
    } catch (error) {
      if (!isMissing(error)) throw error;
      return this.#forget(rel);
    }
    const hash = createHash('sha1').update(content).digest('hex');
    this.files.set(rel, { size: stats.size, mtimeNs: stats.mtimeNs, ctimeNs: stats.ctimeNs, ino: stats.ino, birthNs: stats.birthtimeNs, hash });
    if (prev === undefined) return 'added';
    // Deleted and created again (ext4 reuses the inode number at once; the birth time tells).
    const reborn = prev.ino !== stats.ino || prev.birthNs !== stats.birthtimeNs;
    return prev.hash === hash && !reborn ? undefined : 'replaced';
  }

  #forget(rel: string): NetChange | undefined {
    return this.files.delete(rel) ? 'removed' : undefined;
  }

  /** Known files at or under `rel` (a directory that may have gone). */
  knownUnder(rel: string): string[] {
    const prefix = `${rel}/`;
    const out: string[] = [];
    for (const path of this.files.keys()) if (path.startsWith(prefix)) out.push(path);
    for (const dir of this.dirs) if (dir === rel || dir.startsWith(prefix)) this.dirs.delete(dir);
    return out;
  }

  /**
   * The paths to check so that everything under `rel` ('' = the whole tree) is reconciled: what is
   * on disk now plus what was known there before. Directories found are remembered.
   */
  async reconcileSet(rel: string): Promise<string[]> {
    const known = rel === '' ? [...this.files.keys()] : this.knownUnder(rel);
    if (rel === '') this.dirs.clear();
    const { files, dirs } = await this.list(rel);
    for (const dir of dirs) this.dirs.add(dir);
    const set = new Set(known);
    for (const file of files) set.add(file);
    return [...set];
  }
}
