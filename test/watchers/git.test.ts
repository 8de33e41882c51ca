import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GitRemoteWatcher } from '../../src/main/index.js';
import { type GitServer, gitCli, gitFixture } from './git-server.js';
import { removeTempDirs, tempDir, waitFor } from './helpers.js';

const servers: GitServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await removeTempDirs();
});

async function fixture() {
  const { root, url, author, clone } = await gitFixture(servers, { 'a.txt': 'a1\n', 'b.txt': 'b1\n', 'docs/old-name.md': 'doc\n' });
  return { root, url, author, watched: clone };
}

describe('GitRemoteWatcher against a real loopback git server', () => {
  it('first poll is the baseline; a push gives added / replaced / invalidated (a rename = invalidated + added)', async () => {
    const { url, author, watched } = await fixture();
    const watcher = new GitRemoteWatcher(watched, { pollMs: 20 });
    expect(await watcher.poll()).toEqual([]);
    const baseline = watcher.lastSha!;
    writeFileSync(join(author, 'a.txt'), 'a2\n');
    rmSync(join(author, 'b.txt'));
    writeFileSync(join(author, 'c.txt'), 'c1\n');
    renameSync(join(author, 'docs/old-name.md'), join(author, 'docs/new-name.md'));
    await gitCli(author, 'add', '-A');
    await gitCli(author, 'commit', '-q', '-m', 'second');
    await gitCli(author, 'push', '-q', 'origin', 'main');
    const sha = (await gitCli(author, 'rev-parse', 'HEAD')).trim();
    const events = await watcher.poll();
    expect(watcher.lastSha).toBe(sha);
    expect(watcher.lastSha).not.toBe(baseline);
    expect(events.map((e) => `${e.kind} ${e.pageId}`)).toEqual([
      'page_added file:c.txt',
      'page_added file:docs/new-name.md',
      'page_replaced file:a.txt',
      'page_invalidated file:b.txt',
      'page_invalidated file:docs/old-name.md',
    ]);
    for (const event of events) expect(event.sourceId).toBe(`git:${url}@${sha}`);
    expect(await watcher.poll()).toEqual([]);
  });

  it('a failing fetch is counted, reported and retried with backoff; the watcher recovers', async () => {
    const { author, watched, root } = await fixture();
    const errors: unknown[] = [];
    const watcher = new GitRemoteWatcher(watched, { pollMs: 10, maxBackoffMs: 40, onError: (e) => errors.push(e) });
    const controller = new AbortController();
    const seen: string[] = [];
    const iteration = (async () => {
      for await (const event of watcher.watch(controller.signal)) seen.push(`${event.kind} ${event.pageId}`);
    })();
    await waitFor(() => watcher.lastSha !== undefined, 'the baseline');
    // Break the remote: fetches fail until it is back.
    renameSync(join(root, 'served/repo.git'), join(root, 'served/moved.git'));
    await waitFor(() => watcher.totalFailures >= 2, 'two failed fetches');
    expect(errors[0]).toMatchObject({ code: 'CONVERGE_GIT_FETCH', failures: 1 });
    expect(errors[1]).toMatchObject({ failures: 2 });
    renameSync(join(root, 'served/moved.git'), join(root, 'served/repo.git'));
    writeFileSync(join(author, 'after.txt'), 'x\n');
    await gitCli(author, 'add', '-A');
    await gitCli(author, 'commit', '-q', '-m', 'after outage');
    await gitCli(author, 'push', '-q', 'origin', 'main');
    await waitFor(() => seen.includes('page_added file:after.txt'), 'the change after the outage');
    expect(watcher.failures).toBe(0);
    controller.abort();
    await iteration;
  });

  it('polls only while its leader lock is held', async () => {
    const { watched } = await fixture();
    let leader = false;
    let asked = 0;
    const watcher = new GitRemoteWatcher(watched, { pollMs: 5, leaderLock: { tryAcquire: async () => (asked++, leader) } });
    const controller = new AbortController();
    const iteration = (async () => {
      for await (const _ of watcher.watch(controller.signal)) void _;
    })();
    await waitFor(() => asked >= 3, 'a few leadership checks');
    expect(watcher.lastSha).toBeUndefined();
    leader = true;
    await waitFor(() => watcher.lastSha !== undefined, 'the first poll as leader');
    controller.abort();
    await iteration;
  });

  it('a missing repository fails with code ENOENT', async () => {
    const watcher = new GitRemoteWatcher(join(tempDir(), 'nope'));
    await expect(watcher.watch().next()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
