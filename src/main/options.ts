/**
 * Engine options: what the caller may pass ({@link EngineOptions}, all optional) and what the engine
 * runs with ({@link ResolvedEngineOptions}), resolved once against frozen defaults in one place.
 */
import { z } from 'zod';
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
});

const OptionsSchema = z
  .object({
    ringBytes: z.number().int().min(MIN_RING_BYTES).max(MAX_RING_BYTES).optional(),
    onFull: z.enum(['wait', 'throw']).optional(),
    episodeBudget: z.number().int().positive().optional(),
    maxDerivationDepth: z.number().int().positive().max(1_000_000).optional(),
    rateLimit: z
      .object({
        minIntervalMs: z.number().finite().positive().optional(),
        burst: z.number().int().min(1).optional(),
        trailing: z.boolean().optional(),
      })
      .strict()
      .optional(),
    changeFeedSize: z.number().int().nonnegative().optional(),
    settleMs: z.number().finite().nonnegative().optional(),
    subscriptionCapacity: z.number().int().positive().optional(),
    closeTimeoutMs: z.number().finite().nonnegative().optional(),
    pool: z
      .object({
        minThreads: z.number().int().nonnegative().optional(),
        maxThreads: z.number().int().positive().optional(),
        idleTimeout: z.number().finite().nonnegative().optional(),
      })
      .strict()
      .optional(),
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
  readonly pool: Readonly<{ minThreads?: number; maxThreads?: number; idleTimeout?: number }>;
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
    pool: Object.freeze({ ...(input.pool ?? {}) }),
    store: input.store,
  });
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
