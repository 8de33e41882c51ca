/**
 * DESIGN §5 as a user meets it through the coordination entry alone: the managers with their
 * default stores, and the error classes the entry exports.
 */
import { describe, expect, it } from 'vitest';
import * as c from '../../src/coordination/index.js';
import * as shared from '../../src/shared/errors.js';

describe('coordination contract (DESIGN §5)', () => {
  it('a TaskManager and a PoolManager with their own default stores: pooled tasks are accepted, and given poolIds decide visibility', async () => {
    const tm = new c.TaskManager();
    const pm = new c.PoolManager();
    try {
      await pm.createPool({ id: 'gpu' });
      expect(await pm.joinPool('gpu', 'member')).toBe(true);
      const task = await tm.submit({ payload: { job: 1 }, poolId: 'gpu' });
      expect(task).toMatchObject({ state: 'pending', poolId: 'gpu' });
      const mine = { poolIds: await pm.getPoolsForAgent('member') };
      const theirs = { poolIds: await pm.getPoolsForAgent('outsider') };
      expect((await tm.listPendingTasksForAgent('member', mine)).map((t) => t.id)).toEqual([task.id]);
      expect(await tm.listPendingTasksForAgent('outsider', theirs)).toEqual([]);
      // Without poolIds, the TaskManager's store decides, and it knows no member of 'gpu'.
      expect(await tm.listPendingTasksForAgent('member')).toEqual([]);
      expect(await tm.claimNext('outsider', theirs)).toBeNull();
      expect(await tm.claimNext('member', mine, { max: 3 })).toMatchObject([{ id: task.id, assignedTo: 'member' }]);
    } finally {
      await tm.close();
      await pm.close();
    }
  });

  it('exports the shared error classes, the very ones the stores throw', async () => {
    for (const name of ['ConvergeError', 'ValidationError', 'NotAuthorizedError', 'NotFoundError', 'DuplicateIdError', 'InvalidStateError', 'ClosedError', 'TimeoutError', 'StoreError', 'ErrorCode'] as const) {
      expect(c[name], name).toBe(shared[name]);
    }
    const tm = new c.TaskManager();
    const { id } = await tm.submit({ payload: 1 });
    await tm.claim('agent', id);
    const refused = tm.report('other', id, 'r');
    await expect(refused).rejects.toBeInstanceOf(c.NotAuthorizedError);
    await expect(refused).rejects.toBeInstanceOf(c.ConvergeError);
    await expect(refused).rejects.toMatchObject({ code: c.ErrorCode.NOT_AUTHORIZED });
    await expect(tm.submit({ id: id, payload: 2 })).rejects.toBeInstanceOf(c.DuplicateIdError);
    await expect(tm.submit({ payload: 1, priority: 0.5 })).rejects.toBeInstanceOf(c.ValidationError);
    await tm.close();
    await expect(tm.getTask(id)).rejects.toBeInstanceOf(c.ClosedError);
  });
});
