/**
 * The public subscription index (DESIGN §2): {@link SubscriptionIndexCore} (how subscriptions are
 * filed and matched, see `subscription-index-core.ts`) with every predicate validated by its zod
 * schema before it is filed.
 */
import { type PagePredicate, validatePredicate } from './predicates.js';
import { SubscriptionIndexCore } from './subscription-index-core.js';

export { DEFAULT_SUBSCRIPTION_CAPACITY, SubscriptionIndexCore } from './subscription-index-core.js';
export type { IndexedSubscription, SubscriptionIndexKey, SubscriptionIndexOptions } from './subscription-index-core.js';

/**
 * Holds subscriptions and answers which of them match an event (see {@link SubscriptionIndexCore}).
 * `add` validates the predicate: a {@link ValidationError} names the field, e.g.
 * `predicate.edgeReach.root`, and nothing changes.
 */
export class SubscriptionIndex<T = unknown> extends SubscriptionIndexCore<T> {
  protected override checkPredicate(value: unknown): PagePredicate {
    return validatePredicate(value, 'predicate');
  }
}
