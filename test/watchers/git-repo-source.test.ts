import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, type Engine, GitRepoSource } from '../../src/main/index.js';
import { type GitServer, gitCli, gitFixture } from './git-server.js';
import { Collector, removeTempDirs, waitFor } from './helpers.js';

const servers: GitServer[] = [];
const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await removeTempDirs();
});

async function fixture() {
  const { url, author, clone } = await gitFixture(servers, { 'design.md': 'v1\n' });
  const engine = await createEngine();
  engines.push(engine);
  const seen = new Collector();
  await engine.subscribe({ handler: seen.push });
  return { url, author, tree: clone, engine, seen };
}

describe('GitRepoSource', () => {
  it('reports tree edits (files created after the watch started) and upstream pushes; checkpoints at quiescence without reporting the commit', async () => {
    const { url, author, tree, engine, seen } = await fixture();
    const tags: string[] = [];
    const source = new GitRepoSource(tree, { localFs: { debounceMs: 20 }, remote: { pollMs: 30 }, onCheckpoint: (tag) => tags.push(tag) });
    await engine.mapSource(source);
    writeFileSync(join(tree, 'created-later.md'), 'new\n');
    await waitFor(() => seen.has('file:created-later.md', 'page_added'), 'the new file');
    expect(seen.latest.get('file:created-later.md')!.dataType).toBe('design_monorepo_file');

    await waitFor(() => tags.length >= 1, 'a checkpoint at quiescence');
    expect(tags[0]).toMatch(/^auto_quiescence_\d{8}T\d{6}\.\d{3}Z$/);
    expect(await gitCli(tree, 'status', '--porcelain')).toBe('');
    expect(await gitCli(tree, 'show', '--name-only', '--format=', tags[0]!)).toContain('created-later.md');
    // The commit is not reported back: the next event seen is the sentinel written after it.
    const before = seen.events.length;
    writeFileSync(join(tree, 'sentinel.md'), 's\n');
    await waitFor(() => seen.has('file:sentinel.md'), 'the sentinel');
    expect(seen.events.slice(before).map((e) => e.pageId)).toEqual(['file:sentinel.md']);

    writeFileSync(join(author, 'upstream.md'), 'from a push\n');
    await gitCli(author, 'add', '.');
    await gitCli(author, 'commit', '-q', '-m', 'upstream');
    await gitCli(author, 'push', '-q', 'origin', 'main');
    const sha = (await gitCli(author, 'rev-parse', 'HEAD')).trim();
    await waitFor(() => seen.events.some((e) => e.pageId === 'file:upstream.md' && e.sourceId === `git:${url}@${sha}`), 'the upstream commit');
  });

  it('restoreCheckpoint brings the tree back to a tag (and the watcher reports the restore)', async () => {
    const { tree, engine, seen } = await fixture();
    const source = new GitRepoSource(tree, { localFs: { debounceMs: 20 }, remote: false, checkpointOnQuiescence: false });
    await engine.mapSource(source);
    writeFileSync(join(tree, 'design.md'), 'v2\n');
    const tag = (await source.checkpoint())!;
    expect(await source.listCheckpoints()).toEqual([tag]);
    await waitFor(() => seen.has('file:design.md', 'page_replaced'), 'the v2 edit');
    writeFileSync(join(tree, 'design.md'), 'v3\n');
    writeFileSync(join(tree, 'scratch.md'), 'scratch\n');
    await gitCli(tree, 'add', 'scratch.md');
    await waitFor(() => seen.has('file:scratch.md'), 'the scratch file');
    const replacedBefore = seen.events.filter((e) => e.pageId === 'file:design.md').length;
    await source.restoreCheckpoint(tag);
    expect(readFileSync(join(tree, 'design.md'), 'utf8')).toBe('v2\n');
    await waitFor(() => seen.events.filter((e) => e.pageId === 'file:design.md').length > replacedBefore && seen.has('file:scratch.md', 'page_invalidated'), 'the restore');
    await expect(source.restoreCheckpoint('auto_quiescence_missing')).rejects.toMatchObject({ code: 'CONVERGE_CHECKPOINT' });
  });

  it('with checkpointOnQuiescence: false, quiescence leaves the tree uncommitted', async () => {
    const { tree, engine, seen } = await fixture();
    const source = new GitRepoSource(tree, { localFs: { debounceMs: 20 }, remote: false, checkpointOnQuiescence: false });
    await engine.mapSource(source);
    writeFileSync(join(tree, 'left.md'), 'x\n');
    await waitFor(() => seen.has('file:left.md'), 'the edit');
    await engine.waitForQuiescence();
    expect(await source.listCheckpoints()).toEqual([]);
    expect(await gitCli(tree, 'status', '--porcelain')).toContain('left.md');
  });
});
