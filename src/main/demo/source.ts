/**
 * The source the demo maps: the git working tree as pages (`file:<relative path>`) through
 * `GitRepoSource` — a LocalFsWatcher over the tree and a GitRemoteWatcher polling `origin` — so that
 * both edits in the tree and commits pushed to the remote reach the engine.
 */
import type { ContextPageSource } from '../../watchers/source.js';
import { GitRepoSource } from '../../watchers/git-repo-source.js';

export const DEMO_FILE_DATA_TYPE = 'demo_file';

/** How often the demo polls its loopback remote. */
const REMOTE_POLL_MS = 250;

export async function demoSource(dir: string): Promise<{ source: ContextPageSource; dataType: string }> {
  const source = new GitRepoSource(dir, {
    dataType: DEMO_FILE_DATA_TYPE,
    remote: { pollMs: REMOTE_POLL_MS },
    // The demo commits and pushes itself at the end of its storm; a checkpoint commit racing it for
    // the index lock would only add noise to what the demo shows.
    checkpointOnQuiescence: false,
  });
  return { source, dataType: DEMO_FILE_DATA_TYPE };
}
