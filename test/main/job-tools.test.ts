/**
 * The pure parts of a job, without threads: the circuit breaker's transitions on an injected clock,
 * the tool policy (timeouts, retries, seeded jitter, classes), and the merge (conflicts, dominance,
 * deterministic application).
 */
import { describe, expect, it } from 'vitest';
import { applyDominance, canonicalJson, CircuitBreaker, ToolCallError, type ConflictClaim } from '../../src/main/index.js';
import { applyRound, findConflicts, validateEffects } from '../../src/main/job-merge.js';
import { ToolBox } from '../../src/main/job-tools.js';

describe('CircuitBreaker (injected clock)', () => {
  it('closed → open after N consecutive failures → half-open after the cooldown → closed on a successful trial', () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 100 }, { now: () => now });
    breaker.onFailure();
    breaker.onFailure();
    breaker.onSuccess(); // not consecutive: the count restarts
    breaker.onFailure();
    breaker.onFailure();
    expect(breaker.state).toBe('closed');
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onFailure();
    expect(breaker.state).toBe('open');
    expect(breaker.tryAcquire()).toBe(false);
    now = 99;
    expect(breaker.state).toBe('open');
    now = 100;
    expect(breaker.state).toBe('half-open');
    expect(breaker.tryAcquire()).toBe(true); // the one trial
    expect(breaker.tryAcquire()).toBe(false); // a second caller waits for the trial's verdict
    breaker.onSuccess();
    expect(breaker.state).toBe('closed');
    expect(breaker.failures).toBe(0);
  });

  it('a failed trial re-opens it for a full cooldown', () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 50 }, { now: () => now });
    breaker.onFailure();
    now = 50;
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onFailure();
    expect(breaker.state).toBe('open');
    now = 99;
    expect(breaker.state).toBe('open');
    now = 100;
    expect(breaker.state).toBe('half-open');
  });
});

describe('ToolBox', () => {
  const site = { agent: 'a', round: 1, seq: 0 };
  const signal = new AbortController().signal;

  it('retries unavailable calls with seeded, reproducible backoff and stops at once on a rejection', async () => {
    let calls = 0;
    const flaky = () => {
      if (++calls % 3 !== 0) throw new Error('busy');
      return { ok: calls };
    };
    const box = (seed: string) => new ToolBox({ flaky: { handler: flaky, retries: 3, backoff: { baseMs: 1, maxMs: 8 } } }, { seed });
    calls = 0;
    const one = await box('s').call('flaky', { x: 1 }, site, signal);
    calls = 0;
    const two = await box('s').call('flaky', { x: 1 }, site, signal);
    expect(one).toEqual(two);
    expect(one).toMatchObject({ ok: true, value: { ok: 3 } });
    expect(one.attempts.map((a) => a.outcome)).toEqual(['unavailable', 'unavailable', 'ok']);
    // Delays lie in [ceiling/2, ceiling] for ceilings 1 and 2 ms.
    expect(one.attempts[0]!.delayMs).toBeGreaterThanOrEqual(0);
    expect(one.attempts[1]!.delayMs).toBeGreaterThanOrEqual(1);
    expect(one.attempts[1]!.delayMs).toBeLessThanOrEqual(2);

    let rejected = 0;
    const refusing = new ToolBox({ no: { handler: () => (rejected++, Promise.reject(new ToolCallError('no', 'rejected', 'forbidden'))), retries: 5 } });
    const refused = await refusing.call('no', null, site, signal);
    expect(refused).toMatchObject({ ok: false, failure: { failureClass: 'rejected', message: 'forbidden' } });
    expect(rejected).toBe(1);
    // Rejections mean the tool is up: the breaker stays closed.
    expect(refusing.breaker('no')!.state).toBe('closed');
    expect(await new ToolBox({}).call('missing', null, site, signal)).toMatchObject({ ok: false, failure: { failureClass: 'rejected' } });
  });

  it('classifies a call that never answers as timeout, and an answer that is not JSON as rejected', async () => {
    const box = new ToolBox({ slow: { handler: () => new Promise(() => undefined), timeoutMs: 5, retries: 1, backoff: { baseMs: 0 } }, odd: () => new Map() });
    expect(await box.call('slow', null, site, signal)).toMatchObject({ ok: false, failure: { failureClass: 'timeout' }, attempts: [{ outcome: 'timeout' }, { outcome: 'timeout' }] });
    expect(await box.call('odd', null, site, signal)).toMatchObject({ ok: false, failure: { failureClass: 'rejected' } });
  });
});

describe('merge', () => {
  it('finds conflicts only between different values from different agents; appends never conflict', () => {
    const conflicts = findConflicts([
      { agent: 'a', effects: [{ op: 'set', key: 'k', value: { x: 1, y: 2 } }, { op: 'append', key: 'list', value: 1 }] },
      { agent: 'b', effects: [{ op: 'set', key: 'k', value: { y: 2, x: 1 } }, { op: 'append', key: 'list', value: 2 }, { op: 'remove', key: 'gone' }] },
      { agent: 'c', effects: [{ op: 'set', key: 'gone', value: 1 }, { op: 'set', key: 'gone', value: 2 }] },
    ]);
    expect([...conflicts.keys()]).toEqual(['gone']);
    expect(conflicts.get('gone')).toEqual([
      { agent: 'b', op: 'remove' },
      { agent: 'c', op: 'set', value: 2 },
    ]);
  });

  it('applies effects in agent then effect order, skips conflicted writes, then applies resolutions; reports what changed', () => {
    const runs = [
      { agent: 'a', effects: [{ op: 'append', key: 'log', value: 'a1' }, { op: 'set', key: 'same', value: 1 }, { op: 'set', key: 'k', value: 'A' }] as const },
      { agent: 'b', effects: [{ op: 'append', key: 'log', value: 'b1' }, { op: 'set', key: 'k', value: 'B' }, { op: 'append', key: 'n', value: 1 }] as const },
    ];
    const out = applyRound({ same: 1, n: 5 }, runs, new Map([['k', { by: 'resolver', resolver: 'r', op: 'set', value: 'R' } as const]]));
    expect(out.context).toEqual({ same: 1, n: 5, log: ['a1', 'b1'], k: 'R' });
    expect(out.changed).toEqual(['k', 'log']);
    expect(out.rejected).toEqual([{ agent: 'b', index: 2, key: 'n', reason: 'append to a key that holds no array' }]);
    const undecided = applyRound({ k: 'old' }, runs.slice(0, 1).concat(runs.slice(1)), new Map([['k', null]]));
    expect(undecided.context.k).toBe('old');
  });

  it('dominance: the strictly best claim wins; ties and missing scores decide nothing', () => {
    const claims: ConflictClaim[] = [
      { agent: 'a', op: 'set', value: 1, confidence: 0.2, at: 10 },
      { agent: 'b', op: 'remove', confidence: 0.8, at: 5 },
      { agent: 'c', op: 'set', value: 3 },
    ];
    expect(applyDominance('higher-confidence', claims)).toEqual({ by: 'dominance', rule: 'higher-confidence', agent: 'b', op: 'remove' });
    expect(applyDominance('newer', claims)).toEqual({ by: 'dominance', rule: 'newer', agent: 'a', op: 'set', value: 1 });
    expect(applyDominance('newer', [claims[0]!, { ...claims[2]!, at: 10 }])).toBeNull();
    expect(applyDominance('higher-confidence', [claims[2]!])).toBeNull();
  });

  it('validates effects, naming the field', () => {
    expect(validateEffects(null)).toEqual([]);
    expect(validateEffects({ effects: [{ op: 'remove', key: 'k', extra: 1 }] })).toEqual([{ op: 'remove', key: 'k' }]);
    expect(() => validateEffects([{ op: 'set', key: 'k' }])).toThrow(/effects\[0\]\.value/);
    expect(() => validateEffects([{ op: 'set', key: '__proto__', value: {} }])).toThrow(/effects\[0\]\.key/);
    expect(() => validateEffects([{ op: 'append', key: 'k', value: 1, confidence: 2 }])).toThrow(/confidence/);
    expect(() => validateEffects('nope')).toThrow(/effects/);
  });

  it('canonical JSON ignores key order and refuses what JSON cannot hold', () => {
    expect(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null })).toBe('{"a":null,"b":[1,{"c":2,"d":1}]}');
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(/x/);
    expect(() => canonicalJson({ when: new Date(0) })).toThrow(/when/);
  });
});
