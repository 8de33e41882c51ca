/**
 * ConvergeJob on real pool threads: fixed point, determinism and replay, conflicts (resolver and
 * dominance rules), tool failures and tiers, max_rounds, cancellation and early answers. Agents are
 * the modules in test/fixtures/jobs; tools are functions of the test, run on the runtime side.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConvergeJob,
  JobCancelledError,
  PiscinaJobPool,
  ReplayDivergedError,
  ToolCallError,
  ValidationError,
  type JobAgentDefinition,
  type JobContext,
} from '../../src/main/index.js';

const AGENTS = new URL('../fixtures/jobs/agents.mjs', import.meta.url);
const SELF_ELIGIBLE = new URL('../fixtures/jobs/self-eligible.mjs', import.meta.url);
const has = (key: string) => (context: Readonly<JobContext>) => context[key] !== undefined;
const agent = (name: string, extra: Partial<JobAgentDefinition> = {}): JobAgentDefinition => ({ name, module: AGENTS, export: name, ...extra });

// One pool for the whole file: starting threads is the slow part on a loaded 2-core machine.
const pool = new PiscinaJobPool({ maxThreads: 2 });
afterAll(() => pool.destroy());

/** A promise and its resolver (a gate a tool waits on). */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('ConvergeJob', () => {
  it('reaches the fixed point in N rounds: the round that changes nothing ends the job', async () => {
    const job = new ConvergeJob({
      pool,
      agents: [agent('seed'), agent('double', { eligible: has('a') }), { name: 'triple', module: SELF_ELIGIBLE }],
    });
    const result = await job.run({ topic: 't' });
    expect(result.status).toBe('converged');
    expect(result.tier).toBe('complete');
    expect(result.context).toEqual({ topic: 't', a: 1, b: 2, c: 6 });
    // a in round 1, b in round 2, c in round 3 (triple's module says it is not eligible before), nothing in round 4.
    expect(result.rounds).toBe(4);
    expect(result.trace.rounds.map((r) => r.changed)).toEqual([['a'], ['b'], ['c'], []]);
    expect(result.trace.rounds[0]!.agents.find((a) => a.agent === 'triple')).toMatchObject({ ok: true, eligible: false });
    expect(result.trace.rounds[0]!.eligible).toEqual(['seed', 'triple']);
  });

  it('is deterministic: two runs give the same trace byte for byte, and replay gives the same result without calling tools', async () => {
    let calls = 0;
    const tools = {
      search: {
        handler: (args: unknown) => {
          calls++;
          const q = (args as { q: string }).q;
          if (q === 'y') throw new Error('search backend down');
          return `hit:${q}`;
        },
        retries: 2,
        backoff: { baseMs: 1, maxMs: 4 },
      },
    };
    const make = () => new ConvergeJob({ pool, seed: 7, tools, agents: [agent('seed'), agent('careful', { optional: true, eligible: (c) => c.found === undefined }), agent('saysRed'), agent('saysBlue')], resolvers: [{ name: 'join', module: AGENTS, export: 'joinClaims' }] });
    const first = await make().run({ topic: 'x' });
    const second = await make().run({ topic: 'x' });
    expect(JSON.stringify(second.trace)).toBe(JSON.stringify(first.trace));
    expect(first.context.found).toEqual(['hit:x', 'CONVERGE_TOOL_FAILED:unavailable']);
    // The failed call was tried 3 times with seeded backoff waits recorded in the trace.
    const failedCall = first.trace.rounds[0]!.agents.find((a) => a.agent === 'careful')!.tools[1]!;
    expect(failedCall.attempts.map((a) => a.outcome)).toEqual(['unavailable', 'unavailable', 'unavailable']);
    expect(failedCall.attempts.slice(0, 2).every((a) => typeof a.delayMs === 'number')).toBe(true);

    const before = calls;
    const replayed = await ConvergeJob.replay(JSON.parse(JSON.stringify(first.trace)), { pool });
    expect(calls).toBe(before);
    expect(JSON.stringify(replayed.trace)).toBe(JSON.stringify(first.trace));
    expect(replayed.context).toEqual(first.context);
    expect(replayed.status).toBe(first.status);
  });

  it('an eligible() that throws fails that agent (recorded, replayed), not the job', async () => {
    const job = new ConvergeJob({
      pool,
      agents: [
        agent('seed'),
        agent('double', {
          optional: true,
          eligible: () => {
            throw new Error('cannot tell');
          },
        }),
      ],
    });
    const result = await job.run({});
    expect(result).toMatchObject({ status: 'converged', tier: 'degraded', context: { a: 1 } });
    expect(result.failures[0]!.error.message).toMatch(/eligible\(\) threw: cannot tell/);
    const replayed = await ConvergeJob.replay(result.trace, { pool });
    expect(JSON.stringify(replayed.trace)).toBe(JSON.stringify(result.trace));
  });

  it('replay refuses a trace the agents no longer match', async () => {
    const job = new ConvergeJob({ pool, tools: { search: () => 'ok' }, agents: [agent('lookup')] });
    const result = await job.run({ topic: 'a' });
    const tampered = JSON.parse(JSON.stringify(result.trace));
    tampered.rounds[0].agents[0].tools[0].args = { q: 'something else' };
    await expect(ConvergeJob.replay(tampered, { pool })).rejects.toBeInstanceOf(ReplayDivergedError);
  });

  it('records a conflict with both agents, values and the round, and a resolver decides it', async () => {
    const job = new ConvergeJob({ pool, agents: [agent('saysRed'), agent('saysBlue'), agent('alsoRed')], resolvers: [{ name: 'join', module: AGENTS, export: 'joinClaims' }] });
    const result = await job.run({});
    expect(result.status).toBe('converged');
    expect(result.context.color).toBe('red+blue+red');
    expect(result.conflicts[0]).toEqual({
      round: 1,
      key: 'color',
      claims: [
        { agent: 'alsoRed', op: 'set', value: 'red', confidence: 0.6, at: 2 },
        { agent: 'saysBlue', op: 'set', value: 'blue', confidence: 0.9, at: 1 },
        { agent: 'saysRed', op: 'set', value: 'red', confidence: 0.6, at: 2 },
      ],
      resolution: { by: 'resolver', resolver: 'join', op: 'set', value: 'red+blue+red' },
    });
    // The agents keep disagreeing; the same resolution changes nothing in round 2: fixed point.
    expect(result.rounds).toBe(2);
  });

  it('never merges a conflict silently: undecided, the key keeps its value, is marked incomplete, and the answer is partial', async () => {
    const job = new ConvergeJob({ pool, agents: [agent('saysRed'), agent('saysBlue'), agent('seed')], resolvers: [{ name: 'shrug', module: AGENTS, export: 'undecided' }] });
    const result = await job.run({ color: 'grey' });
    expect(result.context).toEqual({ color: 'grey', a: 1 });
    expect(result.status).toBe('partial');
    expect(result.tier).toBe('incomplete');
    expect(result.incomplete).toEqual(['color']);
    expect(result.conflicts.every((c) => c.resolution === null)).toBe(true);
  });

  it('dominance rules: higher-confidence and newer pick different winners; a tie decides nothing', async () => {
    const agents = [agent('saysRed'), agent('saysBlue')];
    const byConfidence = await new ConvergeJob({ pool, agents, dominance: 'higher-confidence' }).run({});
    expect(byConfidence.context.color).toBe('blue');
    expect(byConfidence.conflicts[0]!.resolution).toEqual({ by: 'dominance', rule: 'higher-confidence', agent: 'saysBlue', op: 'set', value: 'blue' });
    const byTime = await new ConvergeJob({ pool, agents, dominance: { color: 'newer' } }).run({});
    expect(byTime.context.color).toBe('red');
    expect(byTime.conflicts[0]!.resolution).toMatchObject({ rule: 'newer', agent: 'saysRed' });
    const tie = await new ConvergeJob({ pool, agents: [agent('saysRed'), agent('saysGreen')], dominance: 'higher-confidence' }).run({});
    expect(tie.status).toBe('partial');
    expect(tie.context.color).toBeUndefined();
    expect(tie.conflicts[0]!.resolution).toBeNull();
    // A rule declared for another key does not apply.
    const other = await new ConvergeJob({ pool, agents, dominance: { size: 'newer' } }).run({});
    expect(other.incomplete).toEqual(['color']);
  });

  it('a failed optional agent lowers the tier; a failed required agent makes the answer partial, never converged; keys marked', async () => {
    const optional = await new ConvergeJob({ pool, agents: [agent('seed'), agent('broken', { optional: true, writes: ['extra'] })] }).run({});
    expect(optional.status).toBe('converged');
    expect(optional.tier).toBe('degraded');
    expect(optional.incomplete).toEqual(['extra']);
    expect(optional.failures).toEqual([{ agent: 'broken', required: false, round: 2, error: { name: 'Error', code: 'CONVERGE_UNKNOWN', message: 'agent broken' } }]);

    const required = await new ConvergeJob({ pool, agents: [agent('seed'), agent('broken', { writes: ['extra'] })] }).run({});
    expect(required.status).toBe('partial');
    expect(required.tier).toBe('incomplete');
    expect(required.context).toEqual({ a: 1 });

    const nothing = await new ConvergeJob({ pool, agents: [agent('broken'), agent('garbage')] }).run({});
    expect(nothing.status).toBe('failed');
    expect(nothing.tier).toBe('none');
    expect(nothing.failures.find((f) => f.agent === 'garbage')!.error.message).toMatch(/effects\[0\]\.op/);
  });

  it('tool failures are classified (timeout, unavailable, rejected) and a failing tool degrades, not crashes, the job', async () => {
    const never = new Promise(() => undefined);
    const classes: Record<string, unknown> = {};
    for (const [name, handler] of Object.entries({
      timeout: () => never,
      unavailable: () => {
        throw new Error('503');
      },
      rejected: () => {
        throw new ToolCallError('search', 'rejected', 'bad query');
      },
    })) {
      const job = new ConvergeJob({ pool, tools: { search: { handler, timeoutMs: 20, retries: 1, backoff: { baseMs: 1 } } }, agents: [agent('seed'), agent('lookup', { optional: true, writes: ['hits'] })] });
      const result = await job.run({ topic: 'q' });
      expect(result.status).toBe('converged');
      expect(result.tier).toBe('degraded');
      const failure = result.failures[0]!;
      classes[name] = { failureClass: failure.error.failureClass, code: failure.error.code, attempts: result.trace.rounds[0]!.agents.find((a) => a.agent === 'lookup')!.tools[0]!.attempts.length };
    }
    expect(classes).toEqual({
      timeout: { failureClass: 'timeout', code: 'CONVERGE_TOOL_FAILED', attempts: 2 },
      unavailable: { failureClass: 'unavailable', code: 'CONVERGE_TOOL_FAILED', attempts: 2 },
      rejected: { failureClass: 'rejected', code: 'CONVERGE_TOOL_FAILED', attempts: 1 },
    });
  });

  it('opens the circuit breaker after N consecutive failures, half-opens after the cooldown (injected clock), closes on success', async () => {
    let now = 1_000;
    let up = false;
    let calls = 0;
    const job = new ConvergeJob({
      pool,
      clock: { now: () => now },
      tools: {
        search: {
          handler: () => {
            calls++;
            if (!up) throw new Error('down');
            return 'fine';
          },
          retries: 0,
          breaker: { failureThreshold: 2, cooldownMs: 5_000 },
        },
      },
      agents: [agent('lookup', { optional: true }), agent('seed')],
    });
    expect(job.breakerState('search')).toBe('closed');
    await job.run({ topic: 'q' }); // rounds 1 and 2 each fail once: 2 consecutive failures
    expect(calls).toBe(2);
    expect(job.breakerState('search')).toBe('open');
    const refused = await job.run({ topic: 'q' });
    expect(calls).toBe(2); // the open breaker refused without calling
    expect(refused.failures[0]!.error.failureClass).toBe('unavailable');
    expect(refused.failures[0]!.error.message).toMatch(/circuit breaker is open/);
    now += 4_999;
    expect(job.breakerState('search')).toBe('open');
    now += 1;
    expect(job.breakerState('search')).toBe('half-open');
    up = true;
    const healed = await job.run({ topic: 'q' });
    expect(job.breakerState('search')).toBe('closed');
    expect(healed.context.hits).toBe('fine');
    expect(healed.tier).toBe('complete');
    // A failed trial re-opens at once.
    up = false;
    await job.run({ topic: 'q' });
    expect(job.breakerState('search')).toBe('open');
    now += 5_000;
    await job.run({ topic: 'q' });
    expect(job.breakerState('search')).toBe('open');
  });

  it('stops at max_rounds when no fixed point comes', async () => {
    const result = await new ConvergeJob({ pool, maxRounds: 3, agents: [agent('counter')] }).run({});
    expect(result.status).toBe('max_rounds');
    expect(result.rounds).toBe(3);
    expect(result.context.ticks).toEqual([0, 1, 2]);
  });

  it('is cancelled by its signal while an agent waits on a tool', async () => {
    const started = deferred();
    const controller = new AbortController();
    const job = new ConvergeJob({ pool, tools: { gate: { handler: () => (started.resolve(), new Promise(() => undefined)), timeoutMs: 600_000 } }, agents: [agent('gated'), agent('seed')] });
    const running = job.run({}, { signal: controller.signal });
    await started.promise;
    controller.abort();
    const error = await running.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobCancelledError);
    expect(error).toMatchObject({ code: 'CONVERGE_CANCELLED', round: 1 });
    // The pool is still usable.
    expect((await new ConvergeJob({ pool, agents: [agent('seed')] }).run({})).status).toBe('converged');
  });

  it('gives an early answer once only optional work is left, and the final one later', async () => {
    const started = deferred();
    const open = deferred<string>();
    const job = new ConvergeJob({
      pool,
      tools: { gate: { handler: () => (started.resolve(), open.promise), timeoutMs: 600_000 } },
      agents: [agent('seed'), agent('gated', { optional: true, writes: ['enriched'] })],
    });
    const early = await job.run({}, { earlyAfterMs: 0 });
    expect(early.early).toBe(true);
    expect(early.status).toBe('partial');
    expect(early.tier).toBe('degraded');
    expect(early.context).toEqual({ a: 1 });
    expect(early.incomplete).toEqual(['enriched']);
    await started.promise;
    open.resolve('rich');
    const final = await early.later!;
    expect(final.status).toBe('converged');
    expect(final.tier).toBe('complete');
    expect(final.context).toEqual({ a: 1, enriched: 'rich' });
  });

  it('validates its input with errors that name the field', async () => {
    expect(() => new ConvergeJob({ agents: [] })).toThrow(ValidationError);
    expect(() => new ConvergeJob({ agents: [{ name: 'x', module: 'relative.mjs' }] })).toThrow(/agents\[0\]\.module/);
    expect(() => new ConvergeJob({ agents: [agent('seed'), agent('seed')] })).toThrow(/used twice/);
    expect(() => new ConvergeJob({ agents: [agent('seed')], dominance: 'loudest' as never })).toThrow(/dominance/);
    // Pool sizing is checked up front, not by Piscina when the first agent runs.
    expect(() => new ConvergeJob({ agents: [agent('seed')], pool: { minThreads: 3, maxThreads: 1 } })).toThrow(/pool\.minThreads/);
    expect(() => new ConvergeJob({ agents: [agent('seed')], pool: { maxThreads: 0 } })).toThrow(/pool\.maxThreads/);
    await expect(new ConvergeJob({ pool, agents: [agent('seed')] }).run({ bad: () => 1 } as never)).rejects.toThrow(/context\.bad/);
  });
});
