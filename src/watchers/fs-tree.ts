/**
 * What a file watcher knows about its tree: per file the stat fingerprint and a content hash. Every
 * decision is a comparison of this state with the disk *now*, so a burst of raw events collapses to
 * each path's net change (create+change → added, create+delete → nothing, delete+create → replaced,
 * even with the same content: the file was born again) and a rewrite in place with identical content
 * is no change at all.
 *
 * Sized for storms of 100k files: the state lives in typed columns (one slot per file, about 70 bytes
 * plus the path string), not in an object per file, and the disk is read with synchronous calls in
 * short time slices ({@link SLICE_MS}) that yield to the event loop between them. A promise per stat
 * or read costs a thread-pool round trip and several allocations; a stat call costs a microsecond or
 * two. The slices keep the thread responsive (on the embedder's thread when iterated directly).
 */
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { IgnoreMatcher } from './ignore.js';

/** A path's net change between the known state and the disk. */
export type NetChange = 'added' | 'replaced' | 'removed';

/** Longest stretch of synchronous file-system work before yielding to the event loop. */
const SLICE_MS = 8;
/** Bytes of one SHA-1 digest. */
const HASH_BYTES = 20;
/** Read buffer kept for small files (larger ones get a buffer of their own). */
const READ_BUFFER_BYTES = 64 * 1024;

function isMissing(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs `fn` over `items` synchronously in slices of about {@link SLICE_MS}, yielding between slices. */
export async function forEachSliced<T>(items: readonly T[], fn: (item: T) => void): Promise<void> {
  let sliceStart = performance.now();
  for (let i = 0; i < items.length; i++) {
    fn(items[i]!);
    if ((i & 63) === 63 && performance.now() - sliceStart >= SLICE_MS) {
      await yieldToLoop();
      sliceStart = performance.now();
    }
  }
}

/**
 * A string of its own for a key kept as long as the file exists. A path cut out of the native
 * watcher's absolute path is a V8 "sliced string" that keeps the whole absolute path alive (about
 * 100 bytes more per file, 10 MB at 100k files).
 */
function flatCopy(rel: string): string {
  return rel.length < 13 ? rel : Buffer.from(rel, 'utf8').toString('utf8');
}

/** Per-file state in columns: path → slot, fingerprint columns, 20-byte hashes. */
class FileTable {
  readonly #slots = new Map<string, number>();
  readonly #free: number[] = [];
  #size = new Float64Array(0);
  #mtime = new Float64Array(0);
  #ctime = new Float64Array(0);
  #ino = new Float64Array(0);
  /** Creation time (0 where the file system does not report it): a new file at a known path. */
  #birth = new Float64Array(0);
  /** 1 when the slot's hash is known (0: it must be taken as changed, see {@link invalidate}). */
  #hashed = new Uint8Array(0);
  /** The last {@link mark} epoch that saw the slot's file on disk. */
  #seen = new Uint32Array(0);
  #hashes = Buffer.alloc(0);

  get count(): number {
    return this.#slots.size;
  }

  has(rel: string): boolean {
    return this.#slots.has(rel);
  }

  paths(): IterableIterator<string> {
    return this.#slots.keys();
  }

  /** True when `stats` matches the fingerprint kept for `rel`. */
  sameFingerprint(rel: string, stats: Stats): boolean {
    const slot = this.#slots.get(rel);
    if (slot === undefined) return false;
    return (
      this.#size[slot] === stats.size &&
      this.#mtime[slot] === stats.mtimeMs &&
      this.#ctime[slot] === stats.ctimeMs &&
      this.#ino[slot] === stats.ino &&
      this.#birth[slot] === stats.birthtimeMs
    );
  }

  /** The file at `rel` is not the one known there: another inode, or born again (ext4 reuses inode numbers at once). */
  reborn(rel: string, stats: Stats): boolean {
    const slot = this.#slots.get(rel);
    return slot !== undefined && (this.#ino[slot] !== stats.ino || this.#birth[slot] !== stats.birthtimeMs);
  }

  /** The kept hash of `rel` equals `digest`. */
  sameHash(rel: string, digest: Buffer): boolean {
    const slot = this.#slots.get(rel);
    if (slot === undefined || this.#hashed[slot] === 0) return false;
    return this.#hashes.compare(digest, 0, HASH_BYTES, slot * HASH_BYTES, slot * HASH_BYTES + HASH_BYTES) === 0;
  }

  /** Hex hash of `rel`, if known. */
  hash(rel: string): string | undefined {
    const slot = this.#slots.get(rel);
    if (slot === undefined || this.#hashed[slot] === 0) return undefined;
    return this.#hashes.toString('hex', slot * HASH_BYTES, slot * HASH_BYTES + HASH_BYTES);
  }

  set(rel: string, stats: Stats, digest: Buffer): void {
    let slot = this.#slots.get(rel);
    if (slot === undefined) {
      slot = this.#free.pop() ?? this.#slots.size;
      if (slot >= this.#size.length) this.#grow();
      this.#slots.set(flatCopy(rel), slot);
    }
    this.#size[slot] = stats.size;
    this.#mtime[slot] = stats.mtimeMs;
    this.#ctime[slot] = stats.ctimeMs;
    this.#ino[slot] = stats.ino;
    this.#birth[slot] = stats.birthtimeMs;
    this.#hashed[slot] = 1;
    digest.copy(this.#hashes, slot * HASH_BYTES, 0, HASH_BYTES);
  }

  /** Notes that a walk of epoch `epoch` found `rel` on disk. */
  mark(rel: string, epoch: number): void {
    const slot = this.#slots.get(rel);
    if (slot !== undefined) this.#seen[slot] = epoch;
  }

  /** Known paths that no walk of epoch `epoch` marked. */
  unmarked(epoch: number): string[] {
    const out: string[] = [];
    for (const [rel, slot] of this.#slots) if (this.#seen[slot] !== epoch) out.push(rel);
    return out;
  }

  /** Forgets the hash of `rel`: its next check reads it and reports a change. */
  invalidate(rel: string): void {
    const slot = this.#slots.get(rel);
    if (slot !== undefined) this.#hashed[slot] = 0;
  }

  delete(rel: string): boolean {
    const slot = this.#slots.get(rel);
    if (slot === undefined) return false;
    this.#slots.delete(rel);
    this.#hashed[slot] = 0;
    this.#free.push(slot);
    return true;
  }

  #grow(): void {
    const capacity = Math.max(1_024, this.#size.length * 2);
    const grow = (old: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const next = new Float64Array(capacity);
      next.set(old);
      return next;
    };
    this.#size = grow(this.#size);
    this.#mtime = grow(this.#mtime);
    this.#ctime = grow(this.#ctime);
    this.#ino = grow(this.#ino);
    this.#birth = grow(this.#birth);
    const hashed = new Uint8Array(capacity);
    hashed.set(this.#hashed);
    this.#hashed = hashed;
    const seen = new Uint32Array(capacity);
    seen.set(this.#seen);
    this.#seen = seen;
    const hashes = Buffer.alloc(capacity * HASH_BYTES);
    this.#hashes.copy(hashes);
    this.#hashes = hashes;
  }
}

export class FsTree {
  readonly root: string;
  readonly #ignored: IgnoreMatcher;
  readonly files = new FileTable();
  readonly dirs = new Set<string>();
  /** Directories {@link check} found where it expected a file; the caller expands them. */
  readonly discovered: string[] = [];
  readonly #buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  #epoch = 0;

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
    const pending = [rel];
    let sliceStart = performance.now();
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      let entries;
      try {
        entries = readdirSync(join(this.root, dir), { withFileTypes: true });
      } catch (error) {
        if (isMissing(error)) continue;
        throw error;
      }
      if (dir === rel && rel !== '') dirs.push(rel);
      for (const entry of entries) {
        const child = dir === '' ? entry.name : `${dir}/${entry.name}`;
        if (this.#ignored(child)) continue;
        if (entry.isDirectory()) {
          dirs.push(child);
          pending.push(child);
        } else files.push(child);
      }
      if (performance.now() - sliceStart >= SLICE_MS) {
        await yieldToLoop();
        sliceStart = performance.now();
      }
    }
    return { files, dirs };
  }

  /**
   * Compares `rel` on disk with the known state and updates it. `trustStat`: a file whose stat
   * fingerprint is unchanged is taken as unchanged without reading it (a rescan); otherwise the
   * content is hashed (a path an event named: its mtime may have moved with identical content).
   */
  check(rel: string, trustStat: boolean): NetChange | undefined {
    const abs = join(this.root, rel);
    let stats: Stats | undefined;
    try {
      stats = lstatSync(abs, { throwIfNoEntry: false });
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    if (stats === undefined) return this.#forget(rel);
    if (stats.isDirectory()) {
      // A file became a directory: the file is gone (its contents are found by the caller's scan).
      if (!this.dirs.has(rel)) this.discovered.push(rel);
      this.dirs.add(rel);
      return this.#forget(rel);
    }
    const known = this.files.has(rel);
    if (trustStat && known && this.files.sameFingerprint(rel, stats)) return undefined;
    let digest: Buffer;
    try {
      digest = stats.isSymbolicLink() ? createHash('sha1').update(readlinkSync(abs)).digest() : this.#hashFile(abs, stats.size);
    } catch (error) {
      if (!isMissing(error)) throw error;
      return this.#forget(rel);
    }
    if (known && this.files.sameHash(rel, digest) && !this.files.reborn(rel, stats)) {
      this.files.set(rel, stats, digest);
      return undefined;
    }
    this.files.set(rel, stats, digest);
    return known ? 'replaced' : 'added';
  }

  /** SHA-1 of a file's content, read to its end (it may have grown since it was stat-ed). */
  #hashFile(abs: string, size: number): Buffer {
    const hash = createHash('sha1');
    const fd = openSync(abs, 'r');
    try {
      const buffer = size < this.#buffer.length ? this.#buffer : Buffer.allocUnsafe(Math.min(size + 1, 16 * 1024 * 1024));
      // A short read is the end of the file (a write after it raises an event of its own).
      for (let n = buffer.length; n === buffer.length; ) {
        n = readSync(fd, buffer, 0, buffer.length, null);
        hash.update(buffer.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
    return hash.digest();
  }

  #forget(rel: string): NetChange | undefined {
    return this.files.delete(rel) ? 'removed' : undefined;
  }

  /** Known files at or under `rel` (a directory that may have gone). */
  knownUnder(rel: string): string[] {
    const prefix = `${rel}/`;
    const out: string[] = [];
    for (const path of this.files.paths()) if (path.startsWith(prefix)) out.push(path);
    for (const dir of this.dirs) if (dir === rel || dir.startsWith(prefix)) this.dirs.delete(dir);
    return out;
  }

  /**
   * Reconciles the whole tree with the disk, streaming: each directory is listed and its files
   * checked before the next one is read, so that a tree of 100k files never becomes 100k-element
   * arrays and sets that live through the walk. Then the known files the walk did not see are
   * checked (they are gone, or moved into a directory listed earlier). `trust(rel)`: the file's stat
   * fingerprint may stand for its content (see {@link check}). Reports every net change to `found`.
   */
  async reconcileAll(trust: (rel: string) => boolean, found: (rel: string, change: NetChange) => void): Promise<void> {
    const epoch = (this.#epoch = (this.#epoch + 1) >>> 0 || 1);
    this.dirs.clear();
    const visit = (rel: string): void => {
      const change = this.check(rel, trust(rel));
      this.files.mark(rel, epoch);
      if (change !== undefined) found(rel, change);
    };
    const pending = [''];
    let sliceStart = performance.now();
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      let names: string[];
      try {
        names = readdirSync(join(this.root, dir));
      } catch (error) {
        if (isMissing(error) || (error as { code?: unknown }).code === 'ENOTDIR') continue;
        throw error;
      }
      for (const name of names) {
        const child = dir === '' ? name : `${dir}/${name}`;
        if (this.#ignored(child)) continue;
        // No file types from readdir (a Dirent per entry): check() stats anyway and tells directories apart.
        visit(child);
        if (this.dirs.has(child)) pending.push(child);
        if (performance.now() - sliceStart >= SLICE_MS) {
          await yieldToLoop();
          sliceStart = performance.now();
        }
      }
    }
    // check() queued the directories it met as discoveries; the walk has listed them already.
    this.discovered.length = 0;
    await forEachSliced(this.files.unmarked(epoch), visit);
  }

  /**
   * The paths to check so that everything under `rel` ('' = the whole tree) is reconciled: what is
   * on disk now plus what was known there before. Directories found are remembered.
   */
  async reconcileSet(rel: string): Promise<string[]> {
    const known = rel === '' ? [...this.files.paths()] : this.knownUnder(rel);
    if (rel === '') this.dirs.clear();
    const { files, dirs } = await this.list(rel);
    for (const dir of dirs) this.dirs.add(dir);
    const set = new Set(known);
    for (const file of files) set.add(file);
    return [...set];
  }
}
