/**
 * Tools of a ConvergeJob: what an agent reaches through `ctx.callTool(name, args)`. Calls execute
 * here, on the job's runtime side, each with a timeout, retries with exponential backoff and
 * jitter, and a circuit breaker per tool; a call that fails for good is classified `timeout`,
 * `unavailable` or `rejected` (DESIGN §6, seed 001 §3).
 *
 * The jitter is seeded from the job's seed and the call's place in the job (agent, round, call
 * number, attempt), not from `Math.random`, so the same job makes the same waits and writes the
 * same trace. The breaker reads an injectable clock, so its transitions are testable without sleeps.
 */
import { ToolCallError, type ToolFailureClass } from '../shared/job-protocol.js';
import { ValidationError } from '../shared/errors.js';
import { jsonCopy } from './job-merge.js';

/** A source of epoch milliseconds. */
export interface JobClock {
  now(): number;
}

/** The real clock. */
export const SYSTEM_CLOCK: JobClock = Object.freeze({ now: () => Date.now() });

/** Options of {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker. Default 5. */
  readonly failureThreshold?: number;
  /** How long an open breaker refuses calls before it lets one trial call through. Default 30 000 ms. */
  readonly cooldownMs?: number;
}

/** `closed`: calls go through. `open`: calls fail at once as `unavailable`. `half-open`: one trial call decides. */
export type CircuitState = 'closed' | 'open' | 'half-open';

export const BREAKER_DEFAULTS = Object.freeze({ failureThreshold: 5, cooldownMs: 30_000 });

/**
 * A per-tool circuit breaker: opens after `failureThreshold` consecutive failures, half-opens
 * `cooldownMs` later (one trial call at a time), closes again on a trial's success and re-opens on
 * its failure. Rejections (the tool answered "no") count as the tool being up.
 */
export class CircuitBreaker {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  readonly #clock: JobClock;
  #failures = 0;
  #openedAt: number | null = null;
  #trialInFlight = false;

  constructor(options: CircuitBreakerOptions = {}, clock: JobClock = SYSTEM_CLOCK) {
    this.failureThreshold = positiveInt(options.failureThreshold ?? BREAKER_DEFAULTS.failureThreshold, 'breaker.failureThreshold');
    this.cooldownMs = nonNegative(options.cooldownMs ?? BREAKER_DEFAULTS.cooldownMs, 'breaker.cooldownMs');
    this.#clock = clock;
  }

  get state(): CircuitState {
    if (this.#openedAt === null) return 'closed';
    return this.#clock.now() - this.#openedAt >= this.cooldownMs ? 'half-open' : 'open';
  }

  /** Consecutive failures counted so far. */
  get failures(): number {
    return this.#failures;
  }

  /** Whether a call may go out now. In `half-open`, only one trial at a time is let through. */
  tryAcquire(): boolean {
    switch (this.state) {
      case 'closed':
        return true;
      case 'open':
        return false;
      case 'half-open':
        if (this.#trialInFlight) return false;
        this.#trialInFlight = true;
        return true;
    }
  }

  onSuccess(): void {
    this.#failures = 0;
    this.#openedAt = null;
    this.#trialInFlight = false;
  }

  onFailure(): void {
    this.#failures++;
    const trial = this.#trialInFlight;
    this.#trialInFlight = false;
    if (trial || this.#failures >= this.failureThreshold) this.#openedAt = this.#clock.now();
  }
}

/** What a tool handler receives besides its arguments. */
export interface ToolCallContext {
  readonly tool: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** Aborted when the attempt times out or the job is cancelled. */
  readonly signal: AbortSignal;
}

/** A tool's implementation. Throw a `ToolCallError` with `failureClass: 'rejected'` (or any error with `retryable: false`) to refuse a call without retries. */
export type ToolHandler = (args: unknown, ctx: ToolCallContext) => unknown;

/** Exponential backoff between attempts: `min(maxMs, baseMs · factor^(attempt−1))`, of which a seeded half is jitter. */
export interface BackoffOptions {
  readonly baseMs?: number;
  readonly maxMs?: number;
  readonly factor?: number;
}

/** A tool and its call policy. */
export interface ToolDefinition {
  readonly handler: ToolHandler;
  /** Per attempt. Default 10 000 ms. */
  readonly timeoutMs?: number;
  /** Further attempts after a `timeout` or `unavailable` failure. Default 2. */
  readonly retries?: number;
  readonly backoff?: BackoffOptions;
  readonly breaker?: CircuitBreakerOptions;
}

export const TOOL_DEFAULTS = Object.freeze({ timeoutMs: 10_000, retries: 2, backoff: Object.freeze({ baseMs: 100, maxMs: 5_000, factor: 2 }) });

/** One attempt of a tool call, as the trace records it. */
export interface ToolAttemptTrace {
  readonly outcome: 'ok' | ToolFailureClass;
  /** The backoff waited before the next attempt. */
  readonly delayMs?: number;
}

/** One tool call as the trace records it: what was asked, what came back. */
export interface ToolCallTrace {
  readonly seq: number;
  readonly tool: string;
  readonly args: unknown;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly failure?: { readonly failureClass: ToolFailureClass; readonly message: string };
  readonly attempts: readonly ToolAttemptTrace[];
}

/** Where in the job a call happens: seeds its jitter. */
export interface CallSite {
  readonly agent: string;
  readonly round: number;
  readonly seq: number;
}

interface ResolvedTool {
  readonly handler: ToolHandler;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly baseMs: number;
  readonly maxMs: number;
  readonly factor: number;
  readonly breaker: CircuitBreaker;
}

/** The tools of one job runtime, their policies and their breakers. */
export class ToolBox {
  readonly #tools = new Map<string, ResolvedTool>();
  readonly #seed: string;

  constructor(tools: Readonly<Record<string, ToolHandler | ToolDefinition>>, options: { clock?: JobClock; seed?: string } = {}) {
    this.#seed = options.seed ?? '0';
    const clock = options.clock ?? SYSTEM_CLOCK;
    for (const name of Object.keys(tools).sort()) {
      const given = tools[name];
      const def: ToolDefinition = typeof given === 'function' ? { handler: given } : (given as ToolDefinition);
      if (def === null || typeof def !== 'object' || typeof def.handler !== 'function') throw new ValidationError(`tools.${name}`, 'must be a function or { handler, timeoutMs?, retries?, backoff?, breaker? }');
      const backoff = def.backoff ?? {};
      this.#tools.set(name, {
        handler: def.handler,
        timeoutMs: positiveInt(def.timeoutMs ?? TOOL_DEFAULTS.timeoutMs, `tools.${name}.timeoutMs`),
        retries: nonNegative(def.retries ?? TOOL_DEFAULTS.retries, `tools.${name}.retries`),
        baseMs: nonNegative(backoff.baseMs ?? TOOL_DEFAULTS.backoff.baseMs, `tools.${name}.backoff.baseMs`),
        maxMs: nonNegative(backoff.maxMs ?? TOOL_DEFAULTS.backoff.maxMs, `tools.${name}.backoff.maxMs`),
        factor: nonNegative(backoff.factor ?? TOOL_DEFAULTS.backoff.factor, `tools.${name}.backoff.factor`),
        breaker: new CircuitBreaker(def.breaker, clock),
      });
    }
  }

  /** The breaker of `tool`, for inspection. */
  breaker(tool: string): CircuitBreaker | undefined {
    return this.#tools.get(tool)?.breaker;
  }

  /** Calls `tool` under its policy. Never throws: the outcome, failed or not, is the returned record. */
  async call(tool: string, args: unknown, site: CallSite, signal: AbortSignal): Promise<ToolCallTrace> {
    const def = this.#tools.get(tool);
    const attempts: ToolAttemptTrace[] = [];
    const fail = (failureClass: ToolFailureClass, message: string): ToolCallTrace => ({ seq: site.seq, tool, args, ok: false, failure: { failureClass, message }, attempts });
    if (def === undefined) {
      attempts.push({ outcome: 'rejected' });
      return fail('rejected', `no tool named ${JSON.stringify(tool)} (known: ${[...this.#tools.keys()].join(', ') || 'none'})`);
    }
    for (let attempt = 1; ; attempt++) {
      if (!def.breaker.tryAcquire()) {
        attempts.push({ outcome: 'unavailable' });
        return fail('unavailable', 'circuit breaker is open');
      }
      const outcome = await attemptOnce(def, tool, args, attempt, signal);
      if (outcome.ok) {
        def.breaker.onSuccess();
        attempts.push({ outcome: 'ok' });
        return { seq: site.seq, tool, args, ok: true, value: outcome.value, attempts };
      }
      if (outcome.failureClass === 'rejected') def.breaker.onSuccess();
      else def.breaker.onFailure();
      if (outcome.failureClass === 'rejected' || attempt > def.retries || signal.aborted) {
        attempts.push({ outcome: outcome.failureClass });
        return fail(outcome.failureClass, outcome.message);
      }
      const delayMs = backoffDelay(def, attempt, `${this.#seed}|${site.agent}|${site.round}|${site.seq}|${attempt}`);
      attempts.push({ outcome: outcome.failureClass, delayMs });
      await sleep(delayMs, signal);
    }
  }
}

type AttemptOutcome = { ok: true; value: unknown } | { ok: false; failureClass: ToolFailureClass; message: string };

async function attemptOnce(def: ResolvedTool, tool: string, args: unknown, attempt: number, outer: AbortSignal): Promise<AttemptOutcome> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(outer.reason);
  outer.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<AttemptOutcome>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new ToolCallError(tool, 'timeout', `no answer within ${def.timeoutMs} ms`));
      resolve({ ok: false, failureClass: 'timeout', message: `no answer within ${def.timeoutMs} ms` });
    }, def.timeoutMs);
  });
  const ran = (async (): Promise<AttemptOutcome> => {
    try {
      const value = await def.handler(args, { tool, attempt, signal: controller.signal });
      // Answers go into the trace (replayed, stored, compared byte for byte): JSON only.
      return { ok: true, value: value === undefined ? null : jsonCopy(value, 'value') };
    } catch (error) {
      return { ok: false, failureClass: classify(error), message: error instanceof ToolCallError ? error.message.replace(/^tool "[^"]*" \w+: /, '') : errorMessage(error) };
    }
  })();
  try {
    return await Promise.race([ran, timedOut]);
  } finally {
    clearTimeout(timer);
    outer.removeEventListener('abort', onAbort);
  }
}

function classify(error: unknown): ToolFailureClass {
  if (error instanceof ToolCallError) return error.failureClass;
  // Bad input to the tool, or an answer that is not JSON: retrying cannot help.
  if (error instanceof ValidationError) return 'rejected';
  if (error !== null && typeof error === 'object' && (error as { retryable?: unknown }).retryable === false) return 'rejected';
  return 'unavailable';
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function backoffDelay(def: ResolvedTool, attempt: number, key: string): number {
  const ceiling = Math.min(def.maxMs, def.baseMs * def.factor ** (attempt - 1));
  return Math.round(ceiling / 2 + (ceiling / 2) * seededUnit(key));
}

/** A number in [0, 1) that depends only on `key` (FNV-1a, then a murmur3 finaliser). */
export function seededUnit(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 0x1_0000_0000;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function positiveInt(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) throw new ValidationError(field, `must be a positive integer, got ${String(value)}`);
  return value;
}

function nonNegative(value: number, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new ValidationError(field, `must be a finite number >= 0, got ${String(value)}`);
  return value;
}
