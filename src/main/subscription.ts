/**
 * What `engine.subscribe` takes and returns, and the checks of its input. Kept apart from engine.ts
 * so that scopes can speak about subscriptions without importing the engine.
 */
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { type NumericTolerance, type PagePredicate, validatePredicate, validateTolerance } from '../shared/predicates.js';
import { parseInput } from '../shared/validation.js';
import type { SubscriptionHandler, TaskTarget } from './dispatcher.js';

/** What `engine.subscribe` takes. */
export interface SubscribeOptions {
  predicate?: PagePredicate;
  tolerance?: NumericTolerance;
  /** Predicates describing the events this subscription's handler emits (for cycle detection). */
  outputs?: PagePredicate[];
  /** Runs on the main thread; a returned promise holds quiescence until it settles. */
  handler?: SubscriptionHandler;
  /**
   * Runs in the colony pool: `filename` is a module (path or URL) whose export `name` (default
   * `default`) is called as `(event, ctx)` in a pool thread; `ctx.dispatchChange(events)` emits
   * changes from there, counted like a handler's. Its promise holds quiescence until it settles.
   */
  task?: { filename: string | URL; name?: string };
}

/** What `engine.subscribe` returns. */
export interface Subscription {
  readonly id: string;
  /** `convergence:dispatch:<id>` */
  readonly dispatchKey: string;
  unsubscribe(): Promise<boolean>;
}

/**
 * The shape of subscribe options. Predicates and tolerances are checked afterwards by their own
 * validators, which throw ValidationError directly (no translation to zod issues and back).
 */
const SubscribeSchema = z
  .object({
    predicate: z.unknown().optional(),
    tolerance: z.unknown().optional(),
    outputs: z.array(z.unknown()).optional(),
    handler: z.custom<SubscriptionHandler>((v) => typeof v === 'function', 'must be a function').optional(),
    task: z
      .object({ filename: z.union([z.string().min(1), z.instanceof(URL)]), name: z.string().min(1).optional() })
      .strict()
      .optional(),
  })
  .strict()
  .refine((v) => !(v.handler !== undefined && v.task !== undefined), { message: 'give either handler or task, not both', path: ['task'] });

/** Subscribe options after validation, with a task normalised to a module URL. */
export interface ParsedSubscription {
  predicate: PagePredicate;
  tolerance: NumericTolerance | undefined;
  outputs: PagePredicate[] | undefined;
  handler: SubscriptionHandler | undefined;
  task: TaskTarget | undefined;
}

/** Validates subscribe options; ValidationError names the field (`subscription.predicate.kinds[0]`). */
export function parseSubscribeOptions(options: unknown): ParsedSubscription {
  const input = parseInput(SubscribeSchema, options, 'subscription');
  return {
    predicate: input.predicate === undefined ? {} : validatePredicate(input.predicate, 'subscription.predicate'),
    tolerance: input.tolerance === undefined ? undefined : validateTolerance(input.tolerance, 'subscription.tolerance'),
    outputs: input.outputs?.map((output, i) => validatePredicate(output, `subscription.outputs[${i}]`)),
    handler: input.handler,
    task: input.task === undefined ? undefined : taskTarget(input.task),
  };
}

/** Normalises a task option to a module URL and an export name. */
function taskTarget(task: { filename: string | URL; name?: string | undefined }): TaskTarget {
  const module = task.filename instanceof URL ? task.filename.href : task.filename.startsWith('file:') ? task.filename : pathToFileURL(task.filename).href;
  return { module, name: task.name ?? 'default' };
}
