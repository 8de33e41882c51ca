import { afterEach, describe, expect, it } from 'vitest';
import { BlackboardSource, createEngine, editDiff, type Engine } from '../../src/main/index.js';
import { Collector, waitFor } from './helpers.js';

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

describe('editDiff', () => {
  it('marks removed and added tokens', () => {
    expect(editDiff('the quick brown fox', 'the quick red fox jumps')).toBe('the quick [-brown-]{+red+} fox{+ jumps+}');
    expect(editDiff('same', 'same')).toBe('same');
  });
});

describe('BlackboardSource', () => {
  it('write/update/delete → added/replaced (with editDiff)/invalidated; relations → edges, through the engine', async () => {
    const e = await createEngine();
    engines.push(e);
    const seen = new Collector();
    await e.subscribe({ handler: seen.push });
    const board = new BlackboardSource();
    await e.mapSource(board);
    await board.write('req-1', 'The pump delivers 10 l/min');
    await board.write('spec-1', 'Pump spec', { relations: [{ to: 'req-1', type: 'satisfies' }] });
    await board.update('req-1', 'The pump delivers 12 l/min');
    await board.write('spec-1', 'Pump spec', { relations: [{ to: 'req-2', type: 'satisfies' }] });
    expect(await board.delete('spec-1')).toBe(true);
    expect(await board.delete('spec-1')).toBe(false);
    await expect(board.update('nope', 1)).rejects.toMatchObject({ code: 'CONVERGE_NOT_FOUND' });
    await waitFor(() => seen.events.length === 8, 'eight events');
    await e.waitForQuiescence();
    expect(seen.events.map((x) => `${x.kind} ${x.pageId}${x.related ? ` → ${x.related[0]}` : ''}`)).toEqual([
      'page_added blackboard:req-1',
      'page_added blackboard:spec-1',
      'page_graph_edge_added blackboard:spec-1 → blackboard:req-1',
      'page_replaced blackboard:req-1 → blackboard:req-1',
      'page_graph_edge_removed blackboard:spec-1 → blackboard:req-1',
      'page_graph_edge_added blackboard:spec-1 → blackboard:req-2',
      'page_graph_edge_removed blackboard:spec-1 → blackboard:req-2',
      'page_invalidated blackboard:spec-1',
    ]);
    const replaced = seen.events.find((x) => x.kind === 'page_replaced')!;
    expect(replaced.editDiff).toBe('The pump delivers [-10-]{+12+} l/min');
    expect(seen.events.filter((x) => x.kind.startsWith('page_graph_edge')).every((x) => x.edgeType === 'satisfies')).toBe(true);
  });

  it('an identical rewrite emits nothing; snapshot lists the records', async () => {
    const board = new BlackboardSource({ sourceId: 'bb:test' });
    const controller = new AbortController();
    const got: string[] = [];
    const iteration = (async () => {
      for await (const event of board.watch(controller.signal)) got.push(`${event.kind} ${event.pageId}`);
    })();
    await board.write('k', { b: 1, a: 2 });
    await board.write('k', { a: 2, b: 1 });
    await board.write('k', { a: 3, b: 1 });
    controller.abort();
    await iteration;
    expect(got).toEqual(['page_added blackboard:k', 'page_replaced blackboard:k']);
    expect(await board.snapshot()).toEqual([{ pageId: 'blackboard:k', version: '3', dataType: 'blackboard_record', extra: { key: 'k' } }]);
  });
});
