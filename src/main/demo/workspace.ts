/**
 * The demo's workspace: a temporary git working tree of generated files with a bare remote served
 * over loopback HTTP, a seeded storm of file operations against it, and the from-scratch
 * recomputation of the digest the engine must converge to.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { type FileSummary, folderOf, type FolderRollup, projectDigest, rollupFolder, summarizeContent } from '../../shared/demo-model.js';
import { type GitHttpServer, startGitHttpServer } from './git-http-server.js';

const run = promisify(execFile);

/** Files per generated folder. */
const FILES_PER_FOLDER = 40;

const WORDS = ['context', 'page', 'event', 'ring', 'worker', 'quiescence', 'episode', 'damper', 'limit', 'graph', 'digest', 'rollup', 'source', 'watch', 'task', 'colony', 'converge', 'index', 'frame', 'batch'];

/** A small, seeded PRNG (mulberry32): the same seed gives the same workspace and storm. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function content(random: () => number): string {
  const lines = 1 + Math.floor(random() * 30);
  let text = '';
  for (let l = 0; l < lines; l++) {
    const words = 1 + Math.floor(random() * 8);
    const parts: string[] = [];
    for (let w = 0; w < words; w++) parts.push(WORDS[Math.floor(random() * WORDS.length)]!);
    text += `${parts.join(' ')}\n`;
  }
  return text;
}

/** A generated repository: its working tree, its remote and the server that serves the remote. */
export interface DemoWorkspace {
  readonly root: string;
  /** The working tree the engine watches (a clone of the remote). */
  readonly dir: string;
  readonly remoteUrl: string;
  /** Relative paths of the files the generator created, for the storm to pick from. */
  readonly files: string[];
  dispose(): Promise<void>;
}

async function git(dir: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', ['-c', 'user.name=converge', '-c', 'user.email=demo@converge.invalid', ...args], { cwd: dir, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** Creates `files` files in a fresh git repository, commits and pushes them to a loopback remote. */
export async function createWorkspace({ files, seed = 1 }: { files: number; seed?: number }): Promise<DemoWorkspace> {
  const root = await mkdtemp(join(tmpdir(), 'converge-demo-'));
  let server: GitHttpServer | undefined;
  try {
    const bare = join(root, 'remote.git');
    await run('git', ['init', '--bare', '-q', '-b', 'main', bare]);
    server = await startGitHttpServer(root);
    const dir = join(root, 'work');
    await mkdir(dir);
    await git(dir, 'init', '-q', '-b', 'main');
    const random = seededRandom(seed);
    const paths: string[] = [];
    const folders = Math.max(1, Math.ceil(files / FILES_PER_FOLDER));
    for (let i = 0; i < files; i++) {
      const folder = i % folders;
      paths.push(`pkg-${String(folder % 10).padStart(2, '0')}/mod-${String(folder).padStart(3, '0')}/file-${String(i).padStart(5, '0')}.txt`);
    }
    await Promise.all([...new Set(paths.map((p) => dirname(p)))].map((d) => mkdir(join(dir, d), { recursive: true })));
    await writeFile(join(dir, '.gitignore'), 'node_modules\n');
    for (let i = 0; i < paths.length; i += 200) {
      await Promise.all(paths.slice(i, i + 200).map((p) => writeFile(join(dir, p), content(random))));
    }
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-q', '-m', 'generated workspace');
    const remoteUrl = server.url('remote.git');
    await git(dir, 'remote', 'add', 'origin', remoteUrl);
    await git(dir, 'push', '-q', 'origin', 'main');
    const running = server;
    return {
      root,
      dir,
      remoteUrl,
      files: paths,
      dispose: async () => {
        await running.close();
        await rm(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await server?.close();
    await rm(root, { recursive: true, force: true });
    throw error;
  }
}

/** What a storm did, by kind of operation. */
export interface StormTally {
  writes: number;
  rewrites: number;
  identical: number;
  renames: number;
  deletes: number;
  commits: number;
  /** The commit pushed to the remote at the end. */
  pushed: string;
}

/**
 * Runs `operations` seeded file operations against the working tree (new files, rewrites, rewrites
 * with identical content, renames, deletes), then commits everything and pushes it to the remote.
 * `onProgress` is called after each operation.
 */
export async function runStorm(
  workspace: DemoWorkspace,
  { operations, seed = 2, onProgress }: { operations: number; seed?: number; onProgress?: (done: number) => void },
): Promise<StormTally> {
  const random = seededRandom(seed);
  const live = [...workspace.files];
  const tally: StormTally = { writes: 0, rewrites: 0, identical: 0, renames: 0, deletes: 0, commits: 0, pushed: '' };
  let created = 0;
  for (let op = 0; op < operations; op++) {
    const roll = random();
    const pick = (): number => Math.floor(random() * live.length);
    if (roll < 0.2 || live.length < 2) {
      const folder = live.length > 0 ? folderOf(live[pick()]!) : 'pkg-00/mod-000';
      const path = `${folder}/new-${String(created++).padStart(5, '0')}.txt`;
      await writeFile(join(workspace.dir, path), content(random));
      live.push(path);
      tally.writes++;
    } else if (roll < 0.65) {
      await writeFile(join(workspace.dir, live[pick()]!), content(random));
      tally.rewrites++;
    } else if (roll < 0.75) {
      const path = live[pick()]!;
      const full = join(workspace.dir, path);
      await writeFile(full, await readFile(full));
      tally.identical++;
    } else if (roll < 0.9) {
      const index = pick();
      const from = live[index]!;
      const to = `${folderOf(live[pick()]!)}/moved-${String(op).padStart(5, '0')}.txt`;
      await rename(join(workspace.dir, from), join(workspace.dir, to));
      live[index] = to;
      tally.renames++;
    } else {
      const index = pick();
      await rm(join(workspace.dir, live[index]!));
      live.splice(index, 1);
      tally.deletes++;
    }
    onProgress?.(op + 1);
  }
  await git(workspace.dir, 'add', '-A');
  await git(workspace.dir, 'commit', '-q', '--allow-empty', '-m', 'storm');
  await git(workspace.dir, 'push', '-q', 'origin', 'main');
  tally.commits++;
  tally.pushed = (await git(workspace.dir, 'rev-parse', 'HEAD')).trim();
  return tally;
}

/** Walks the working tree (skipping `.git` and dotfiles, as the watcher does) and recomputes the digest. */
export async function recomputeDigest(dir: string): Promise<{ digest: string; files: number; folders: number }> {
  const byFolder = new Map<string, Map<string, FileSummary>>();
  let count = 0;
  async function walk(relative: string): Promise<void> {
    for (const entry of await readdir(join(dir, relative), { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const folder = folderOf(path);
        let files = byFolder.get(folder);
        if (files === undefined) byFolder.set(folder, (files = new Map()));
        files.set(path, summarizeContent(await readFile(join(dir, path))));
        count++;
      }
    }
  }
  await walk('');
  const rollups = new Map<string, FolderRollup>();
  for (const [folder, files] of byFolder) rollups.set(folder, rollupFolder(files));
  return { digest: projectDigest(rollups), files: count, folders: rollups.size };
}
