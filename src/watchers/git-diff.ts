/** Tree diffs between two commits with isomorphic-git (shared by the git watchers and checkpoints). */
import * as fs from 'node:fs';
import { loadGit } from './git-module.js';

/** One path's change between two commits. Renames and copies appear as a removal plus an addition. */
export interface TreeChange {
  path: string;
  change: 'added' | 'removed' | 'modified';
}

/** Files that differ between commits `from` and `to` of the repository at `dir`, sorted by path. */
export async function diffCommits(dir: string, from: string, to: string): Promise<TreeChange[]> {
  const { git } = await loadGit();
  const changes = (await git.walk({
    fs,
    dir,
    trees: [git.TREE({ ref: from }), git.TREE({ ref: to })],
    map: async (path, [a, b]) => {
      if (path === '.') return undefined;
      const [typeA, typeB] = await Promise.all([a?.type(), b?.type()]);
      const [oidA, oidB] = await Promise.all([a?.oid(), b?.oid()]);
      // Identical subtrees are skipped whole: the walk costs what changed, not the repository's size.
      if (typeA === 'tree' && typeB === 'tree') return oidA === oidB ? null : undefined;
      const fileA = typeA === 'blob' ? oidA : undefined;
      const fileB = typeB === 'blob' ? oidB : undefined;
      if (fileA === fileB) return undefined;
      if (fileA === undefined) return { path, change: 'added' };
      if (fileB === undefined) return { path, change: 'removed' };
      return { path, change: 'modified' };
    },
  })) as (TreeChange | undefined)[];
  return changes.filter((c): c is TreeChange => c !== undefined && c !== null && typeof c === 'object' && 'change' in c).sort((x, y) => (x.path < y.path ? -1 : 1));
}
