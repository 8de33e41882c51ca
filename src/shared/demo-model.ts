/**
 * The derivation the demo converges (`converge demo`): per-file summaries → per-folder rollups →
 * one project digest. Pure functions, shared by the pool task that summarises files, the
 * main-thread handlers that roll them up, and the from-scratch recomputation the demo checks the
 * converged digest against — one definition, so a mismatch can only come from the engine.
 */
import { createHash } from 'node:crypto';

/** What the pool task derives from one file's bytes. */
export interface FileSummary {
  readonly bytes: number;
  readonly lines: number;
  readonly words: number;
  /** sha1 of the content, hex. */
  readonly hash: string;
}

/** What a folder's rollup page holds. */
export interface FolderRollup {
  readonly files: number;
  readonly bytes: number;
  readonly lines: number;
  /** sha1 over the sorted `(name, hash)` pairs of the folder's files, hex. */
  readonly hash: string;
}

const NEWLINE = 0x0a;

/** Summarises one file's content. */
export function summarizeContent(content: Uint8Array): FileSummary {
  let lines = 0;
  let words = 0;
  let inWord = false;
  for (let i = 0; i < content.length; i++) {
    const byte = content[i]!;
    if (byte === NEWLINE) lines++;
    // ASCII whitespace ends a word; anything else continues one.
    const space = byte === 0x20 || byte === NEWLINE || byte === 0x09 || byte === 0x0d;
    if (!space && !inWord) words++;
    inWord = !space;
  }
  if (content.length > 0 && content[content.length - 1] !== NEWLINE) lines++;
  return { bytes: content.length, lines, words, hash: createHash('sha1').update(content).digest('hex') };
}

/** The folder a relative POSIX path lives in (`.` for the root). */
export function folderOf(relativePath: string): string {
  const slash = relativePath.lastIndexOf('/');
  return slash === -1 ? '.' : relativePath.slice(0, slash);
}

/** Rolls a folder's file summaries up, independent of the order they arrive in. */
export function rollupFolder(files: ReadonlyMap<string, FileSummary>): FolderRollup {
  const names = [...files.keys()].sort();
  const hash = createHash('sha1');
  let bytes = 0;
  let lines = 0;
  for (const name of names) {
    const summary = files.get(name)!;
    bytes += summary.bytes;
    lines += summary.lines;
    hash.update(`${name}\0${summary.hash}\n`);
  }
  return { files: names.length, bytes, lines, hash: hash.digest('hex') };
}

/** The project digest over every non-empty folder's rollup, independent of arrival order. */
export function projectDigest(folders: ReadonlyMap<string, FolderRollup>): string {
  const hash = createHash('sha256');
  for (const name of [...folders.keys()].sort()) {
    const rollup = folders.get(name)!;
    if (rollup.files === 0) continue;
    hash.update(`${name}\0${rollup.files}\0${rollup.bytes}\0${rollup.lines}\0${rollup.hash}\n`);
  }
  return hash.digest('hex');
}
