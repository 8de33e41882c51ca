import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/shared/errors.js';
import { DelegationProtocol, PoolManager } from '../../src/coordination/index.js';

describe('DelegationProtocol', () => {
  it('delegates directly, lists active delegations and revokes', async () => {
    let now = 1000;
    const delegation = new DelegationProtocol({ now: () => now });
    const d1 = await delegation.delegate('lead', 'dev', { scope: ['deploy', 'review'], type: 'direct' });
    now = 2000;
    const d2 = await delegation.delegate('lead', 'ops', { scope: 'deploy' });
    expect(await delegation.isActive(d1)).toBe(true);
    expect(await delegation.getDelegation(d2)).toEqual({
      id: d2,
      fromId: 'lead',
      toId: 'ops',
      scope: ['deploy'],
      type: 'direct',
      createdAt: 2000,
      revokedAt: null,
      active: true,
    });
    expect((await delegation.listDelegations({ fromId: 'lead' })).map((d) => d.id)).toEqual([d1, d2]);
    expect((await delegation.listDelegations({ toId: 'dev' })).map((d) => d.id)).toEqual([d1]);
    expect(await delegation.isDelegated('dev', 'lead', 'review')).toBe(true);
    expect(await delegation.isDelegated('ops', 'lead', 'review')).toBe(false);

    now = 3000;
    expect(await delegation.revoke(d1)).toBe(true);
    expect(await delegation.revoke(d1)).toBe(false);
    expect(await delegation.revoke('missing')).toBe(false);
    expect(await delegation.isActive(d1)).toBe(false);
    expect(await delegation.isActive('missing')).toBe(false);
    expect(await delegation.isDelegated('dev', 'lead', 'review')).toBe(false);
    expect((await delegation.listDelegations()).map((d) => d.id)).toEqual([d2]);
    expect(await delegation.listDelegations({ includeRevoked: true, toId: 'dev' })).toEqual([
      expect.objectContaining({ id: d1, revokedAt: 3000, active: false }),
    ]);
  });

  it('delegates to a pool: any member may act, others may not', async () => {
    const pools = new PoolManager();
    await pools.createPool({ id: 'oncall' });
    await pools.joinPool('oncall', 'alice');
    const delegation = new DelegationProtocol({ pools });
    const id = await delegation.delegate('lead', 'oncall', { scope: ['page'], type: 'pooled' });
    expect(await delegation.isDelegated('alice', 'lead', 'page')).toBe(true);
    expect(await delegation.isDelegated('bob', 'lead', 'page')).toBe(false);
    await pools.joinPool('oncall', 'bob');
    expect(await delegation.isDelegated('bob', 'lead', 'page')).toBe(true);
    expect(await delegation.isDelegated('bob', 'lead', 'deploy')).toBe(false);
    await delegation.revoke(id);
    expect(await delegation.isDelegated('alice', 'lead', 'page')).toBe(false);
    await expect(delegation.delegate('lead', 'no-such-pool', { scope: 'x', type: 'pooled' })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('validates its input', async () => {
    const delegation = new DelegationProtocol();
    await expect(delegation.delegate('a', 'a', { scope: 'x' })).rejects.toMatchObject({ field: 'toId' });
    await expect(delegation.delegate('a', 'b', { scope: [] })).rejects.toMatchObject({ field: 'options.scope' });
    await expect(delegation.delegate('a', 'b', { scope: 'x', type: 'proxy' as never })).rejects.toMatchObject({ field: 'options.type' });
    await expect(delegation.listDelegations({ toId: '' })).rejects.toMatchObject({ field: 'filter.toId' });
  });
});
