/**
 * Engine options: what the caller may pass ({@link EngineOptions}, all optional) and what the engine
 * runs with ({@link ResolvedEngineOptions}), resolved once against frozen defaults in one place.
 */
import { z } from 'zod';
import type { TaskPoolOptions } from './task-pool.js';
import { DEFAULT_RING_BYTES, MAX_RING_BYTES, MIN_RING_BYTES } from '../shared/ring-layout.js';
import { parseInput } from '../shared/validation.js';
import { DEFAULT_MAX_DERIVATION_DEPTH } from '../shared/protocol.js';

/** Defaults of every engine option (DESIGN §3). */
export const ENGINE_DEFAULTS = Object.freeze({
  ringBytes: DEFAULT_RING_BYTES,
  onFull: 'wait' as 'wait' | 'throw',
  episodeBudget: 1000,
  /** Derived events more than this many hops from an external event are not dispatched. */
  maxDerivationDepth: DEFAULT_MAX_DERIVATION_DEPTH,
  rateLimit: Object.freeze({ minIntervalMs: 1000, burst: 4, trailing: true }),
  changeFeedSize: 1024,
  settleMs: 0,
  subscriptionCapacity: 100_000,
  /** How long close() waits for the engine to settle before it stops the threads anyway. */
  closeTimeoutMs: 10_000,
  /**
   * Main-thread dispatches (handler or pool-task calls) unacknowledged at once. Past it the worker
   * stops taking events, the ingest ring fills, and `dispatchChange` waits (or throws with onFull
   * 'throw'): backpressure reaches the producer and memory stays bounded.
   */
  maxInFlight: 1024,
  /**
   * V8 limits of the engine's own worker threads (bench/RESULTS.md "File storm"). The convergence
   * worker's:
   * - young generation capped at 16 MB: V8 lets it grow to 48 MB, ~34 MB of it resident under a
   *   sustained event storm; a smaller cap costs ingest CPU (+23 % per event at 8 MB, +50 % at 4 MB,
   *   ~+10 % at 16 MB);
   * - old generation kept just under 2 GB: with V8's default ceiling (4 GB) a heap may grow to 4x its
   *   live size between full collections, below 2 GB to about 2x. A worker that outgrows it ends
   *   with WorkerCrashedError (out of memory): raise it for very large page graphs.
   * The watch worker keeps V8's defaults: capping it saved another 25-45 MB in the storm bench, but
   * runs with it capped on a heavily loaded machine lost paths (see RESULTS), so it is opt-in.
   */
  resourceLimits: Object.freeze({
    convergence: Object.freeze({ maxYoungGenerationSizeMb: 16, maxOldGenerationSizeMb: 2000 }) as Readonly<ThreadResourceLimits>,
    watch: Object.freeze({}) as Readonly<ThreadResourceLimits>,
  }),
});

/**
 * V8 limits of a worker thread (Node's `ResourceLimits`), in MB; 0 or absent means V8's default.
 */
export interface ThreadResourceLimits {
  maxOldGenerationSizeMb?: number;
  maxYoungGenerationSizeMb?: number;
  codeRangeSizeMb?: number;
  stackSizeMb?: number;
}

/** Largest value of a timer option: Node's setTimeout limit (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Upper bounds of the size and time options, checked at createEngine (ValidationError naming the
 * option): a size the engine would try to allocate must not be able to take the process down.
 */
export const ENGINE_LIMITS = Object.freeze({
  ringBytes: MAX_RING_BYTES,
  changeFeedSize: 1_048_576,
  subscriptionCapacity: 10_000_000,
  maxInFlight: 1_048_576,
  maxDerivationDepth: 65_535,
  episodeBudget: Number.MAX_SAFE_INTEGER,
  burst: 1_000_000,
  poolThreads: 256,
  timerMs: MAX_TIMER_MS,
});

const ThreadLimitsSchema = z
  .object({
    maxOldGenerationSizeMb: z.number().finite().nonnegative().optional(),
    maxYoungGenerationSizeMb: z.number().finite().nonnegative().optional(),
    codeRangeSizeMb: z.number().finite().nonnegative().optional(),
    stackSizeMb: z.number().finite().nonnegative().optional(),
  })
  .strict();

/**
 * Options of the colony pool (the engine's `pool`, a Colony's `pool`): Piscina's sizing plus the
 * task table's. `minThreads` above `maxThreads` is refused here, naming the field: Piscina would
 * throw it later, on the first task, out of the caller's reach.
 */
export const PoolOptionsSchema = z
  .object({
    minThreads: z.number().int().nonnegative().max(ENGINE_LIMITS.poolThreads).optional(),
    maxThreads: z.number().int().positive().max(ENGINE_LIMITS.poolThreads).optional(),
    idleTimeout: z.number().finite().nonnegative().max(MAX_TIMER_MS).optional(),
    // The colony pool's own options (see TaskPoolOptions in task-pool.ts).
    resourceLimits: z
      .object({
        maxOldGenerationSizeMb: z.number().positive().optional(),
        maxYoungGenerationSizeMb: z.number().positive().optional(),
        codeRangeSizeMb: z.number().positive().optional(),
        stackSizeMb: z.number().positive().optional(),
      })
      .strict()
      .optional(),
    concurrency: z.number().int().positive().max(4096).optional(),
    capacity: z.number().int().positive().max(1 << 20).optional(),
    slotBytes: z.number().int().min(64).max(1 << 24).optional(),
    lingerMs: z.number().int().nonnegative().max(MAX_TIMER_MS).optional(),
    maxAttempts: z.number().int().positive().max(1000).optional(),
    claimTtlMs: z.number().int().positive().max(MAX_TIMER_MS).optional(),
    runLocally: z.boolean().optional(),
  })
  .strict()
  .refine((pool) => pool.minThreads === undefined || pool.maxThreads === undefined || pool.minThreads <= pool.maxThreads, {
    message: 'must not exceed maxThreads',
    path: ['minThreads'],
  });

const OptionsSchema = z
  .object({
    ringBytes: z.number().int().min(MIN_RING_BYTES).max(ENGINE_LIMITS.ringBytes).optional(),
    onFull: z.enum(['wait', 'throw']).optional(),
    episodeBudget: z.number().int().positive().max(ENGINE_LIMITS.episodeBudget).optional(),
    rateLimit: z
      .object({
        minIntervalMs: z.number().finite().positive().max(MAX_TIMER_MS).optional(),
        burst: z.number().int().min(1).max(ENGINE_LIMITS.burst).optional(),
        trailing: z.boolean().optional(),
      })
      .strict()
      .optional(),
    changeFeedSize: z.number().int().nonnegative().max(ENGINE_LIMITS.changeFeedSize).optional(),
    settleMs: z.number().finite().nonnegative().max(MAX_TIMER_MS).optional(),
    subscriptionCapacity: z.number().int().positive().max(ENGINE_LIMITS.subscriptionCapacity).optional(),
    closeTimeoutMs: z.number().finite().nonnegative().max(MAX_TIMER_MS).optional(),
    maxInFlight: z.number().int().positive().max(ENGINE_LIMITS.maxInFlight).optional(),
    maxDerivationDepth: z.number().int().positive().max(ENGINE_LIMITS.maxDerivationDepth).optional(),
    resourceLimits: z.object({ convergence: ThreadLimitsSchema.optional(), watch: ThreadLimitsSchema.optional() }).strict().optional(),
    pool: PoolOptionsSchema.optional(),
    store: z.unknown().optional(),
  })
  .strict();

/** Options of {@link createEngine}. Every field is optional; see {@link ENGINE_DEFAULTS}. */
export type EngineOptions = z.input<typeof OptionsSchema>;

/** Options after defaults, as the engine uses them. Frozen. */
export interface ResolvedEngineOptions {
  readonly ringBytes: number;
  readonly onFull: 'wait' | 'throw';
  readonly episodeBudget: number;
  readonly maxDerivationDepth: number;
  readonly rateLimit: Readonly<{ minIntervalMs: number; burst: number; trailing: boolean }>;
  readonly changeFeedSize: number;
  readonly settleMs: number;
  readonly subscriptionCapacity: number;
  readonly closeTimeoutMs: number;
  readonly maxInFlight: number;
  /** Per thread, the caller's fields over {@link ENGINE_DEFAULTS}'. */
  readonly resourceLimits: Readonly<{ convergence: Readonly<ThreadResourceLimits>; watch: Readonly<ThreadResourceLimits> }>;
  readonly pool: Readonly<TaskPoolOptions>;
  readonly store: unknown;
}

/** Validates options (ValidationError names the field, e.g. `options.rateLimit.burst`) and applies defaults. */
export function resolveEngineOptions(options: unknown = {}): ResolvedEngineOptions {
  const input = parseInput(OptionsSchema, options ?? {}, 'options');
  return Object.freeze({
    ringBytes: input.ringBytes ?? ENGINE_DEFAULTS.ringBytes,
    onFull: input.onFull ?? ENGINE_DEFAULTS.onFull,
    episodeBudget: input.episodeBudget ?? ENGINE_DEFAULTS.episodeBudget,
    maxDerivationDepth: input.maxDerivationDepth ?? ENGINE_DEFAULTS.maxDerivationDepth,
    rateLimit: Object.freeze({ ...ENGINE_DEFAULTS.rateLimit, ...stripUndefined(input.rateLimit ?? {}) }),
    changeFeedSize: input.changeFeedSize ?? ENGINE_DEFAULTS.changeFeedSize,
    settleMs: input.settleMs ?? ENGINE_DEFAULTS.settleMs,
    subscriptionCapacity: input.subscriptionCapacity ?? ENGINE_DEFAULTS.subscriptionCapacity,
    closeTimeoutMs: input.closeTimeoutMs ?? ENGINE_DEFAULTS.closeTimeoutMs,
    maxInFlight: input.maxInFlight ?? ENGINE_DEFAULTS.maxInFlight,
    resourceLimits: Object.freeze({
      convergence: threadLimits(ENGINE_DEFAULTS.resourceLimits.convergence, input.resourceLimits?.convergence),
      watch: threadLimits(ENGINE_DEFAULTS.resourceLimits.watch, input.resourceLimits?.watch),
    }),
    pool: Object.freeze({ ...(input.pool ?? {}) }),
    store: input.store,
  });
}

/**
 * A thread's limits: the caller's fields over the defaults, and a 0 left out, so that V8's default
 * applies (Node passes a 0 old-generation limit through to V8, which then runs out of memory at once).
 */
function threadLimits(defaults: Readonly<ThreadResourceLimits>, input: ThreadResourceLimits | undefined): Readonly<ThreadResourceLimits> {
  const merged: ThreadResourceLimits = { ...defaults, ...stripUndefined(input ?? {}) };
  return Object.freeze(Object.fromEntries(Object.entries(merged).filter(([, mb]) => mb !== 0)) as ThreadResourceLimits);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
