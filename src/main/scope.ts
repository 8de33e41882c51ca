/**
 * Ownership of subscriptions: `engine.scope(ownerId)` hands out an {@link EngineScope} that records
 * what it subscribed, unsubscribes all of it on `dispose()`, and serialises it so that
 * `engine.restoreScope(data)` can bring the same subscriptions back, with the same ids, after a
 * suspension (a process restart, a job handed to another host).
 */
import { z } from 'zod';
import { ClosedError } from '../shared/errors.js';
import type { NumericTolerance, PagePredicate } from '../shared/predicates.js';
import type { SubscriptionSpec } from '../shared/protocol.js';
import type { SubscribeOptions, Subscription } from './subscription.js';

/** Format version of {@link SerializedScope}. */
export const SCOPE_FORMAT_VERSION = 1;

/** What `scope.serialize()` returns: plain JSON-safe data. */
export interface SerializedScope {
  version: typeof SCOPE_FORMAT_VERSION;
  ownerId: string;
  subscriptions: {
    id: string;
    predicate: PagePredicate;
    tolerance?: NumericTolerance;
    outputs?: PagePredicate[];
    /** Pool subscriptions keep their task (a module URL is data); handlers are code and do not. */
    task?: { filename: string; name: string };
  }[];
}

/** Shape check of serialised scopes (predicates are validated again when re-subscribed). */
export const SerializedScopeSchema = z
  .object({
    version: z.literal(SCOPE_FORMAT_VERSION),
    ownerId: z.string().min(1),
    subscriptions: z.array(
      z.object({
        id: z.string().regex(/^sub_[0-9a-f]{12}$/, 'must be a subscription id (sub_<12 hex>)'),
        predicate: z.record(z.string(), z.unknown()),
        tolerance: z.record(z.string(), z.unknown()).optional(),
        outputs: z.array(z.record(z.string(), z.unknown())).optional(),
        task: z.object({ filename: z.string().min(1), name: z.string().min(1) }).strict().optional(),
      }),
    ),
  })
  .strict();

/**
 * @internal What a scope needs from its engine. The engine hands a scope this object instead of
 * itself, so that subscribing on behalf of an owner is not a public method of the engine.
 */
export interface ScopeHost {
  subscribe(options: SubscribeOptions, ownerId: string): Promise<Subscription>;
  unsubscribe(id: string): Promise<boolean>;
  describe(id: string): SubscriptionSpec | undefined;
}

/** Subscriptions owned by one owner. */
export class EngineScope {
  readonly ownerId: string;
  readonly #engine: ScopeHost;
  readonly #ids: Set<string>;
  #disposed = false;

  /** @internal Use `engine.scope(ownerId)` or `engine.restoreScope(data)`. */
  constructor(engine: ScopeHost, ownerId: string, ids: readonly string[]) {
    this.#engine = engine;
    this.ownerId = ownerId;
    this.#ids = new Set(ids);
  }

  /** Ids of the subscriptions this scope owns, in subscription order. */
  get subscriptionIds(): string[] {
    return [...this.#ids];
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (this.#disposed) throw new ClosedError(`scope ${this.ownerId}`);
    const sub = await this.#engine.subscribe(options, this.ownerId);
    this.#ids.add(sub.id);
    return { ...sub, unsubscribe: () => this.unsubscribe(sub.id) };
  }

  /** Unsubscribes one of this scope's subscriptions; false if the scope does not own it. */
  async unsubscribe(id: string): Promise<boolean> {
    if (!this.#ids.has(id)) return false;
    this.#ids.delete(id);
    return this.#engine.unsubscribe(id);
  }

  /** Unsubscribes everything this scope owns. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const ids = [...this.#ids];
    this.#ids.clear();
    for (const id of ids) await this.#engine.unsubscribe(id).catch(() => false);
  }

  /** Plain data describing this scope's subscriptions (handlers excluded: they are code). */
  serialize(): SerializedScope {
    const subscriptions: SerializedScope['subscriptions'] = [];
    for (const id of this.#ids) {
      const spec = this.#engine.describe(id);
      if (spec === undefined) continue;
      const entry: SerializedScope['subscriptions'][number] = { id, predicate: structuredClone(spec.predicate) };
      if (spec.tolerance !== undefined) entry.tolerance = { ...spec.tolerance };
      if (spec.outputs !== undefined) entry.outputs = structuredClone(spec.outputs);
      if (spec.task !== undefined) entry.task = { filename: spec.task.module, name: spec.task.name };
      subscriptions.push(entry);
    }
    return { version: SCOPE_FORMAT_VERSION, ownerId: this.ownerId, subscriptions };
  }
}
