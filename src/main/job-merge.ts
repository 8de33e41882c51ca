/**
 * The serial merge of a ConvergeJob round (DESIGN §6, seed 001 §2): agents ran in parallel, and
 * their effects are now checked, compared and applied one at a time in a fixed order — agent name,
 * then effect order — so that the same effects always give the same context.
 *
 * Two or more agents writing different values to one key in a round is a conflict. It is never
 * merged silently: a declared dominance rule or a resolver agent decides it, and an undecided
 * conflict leaves the key as it was and marks it incomplete.
 */
import { ValidationError } from '../shared/errors.js';

/** A JSON object: the context of a job. */
export type JobContext = Record<string, unknown>;

/** What an agent returns: changes to top-level context keys. `confidence` (0..1) and `at` (any number, larger is newer) feed dominance rules. */
export type JobEffect =
  | { readonly op: 'set'; readonly key: string; readonly value: unknown; readonly confidence?: number; readonly at?: number }
  | { readonly op: 'append'; readonly key: string; readonly value: unknown; readonly confidence?: number; readonly at?: number }
  | { readonly op: 'remove'; readonly key: string; readonly confidence?: number; readonly at?: number };

/** How a conflict is decided without a resolver: the claim with the largest `at`, or the largest `confidence`. A tie decides nothing. */
export type DominanceRule = 'newer' | 'higher-confidence';

/** One rule for every key, or rules per key (`'*'` for the rest). */
export type Dominance = DominanceRule | Readonly<Record<string, DominanceRule>>;

/** One agent's write in a conflict. */
export interface ConflictClaim {
  readonly agent: string;
  readonly op: 'set' | 'remove';
  readonly value?: unknown;
  readonly confidence?: number;
  readonly at?: number;
}

/** How a conflict ended. */
export type ConflictResolution =
  | { readonly by: 'dominance'; readonly rule: DominanceRule; readonly agent: string; readonly op: 'set' | 'remove'; readonly value?: unknown }
  | { readonly by: 'resolver'; readonly resolver: string; readonly op: 'set' | 'remove'; readonly value?: unknown };

/** A recorded conflict: the round, the key, every claim (by agent name) and the resolution, or null when nothing decided it. */
export interface JobConflict {
  readonly round: number;
  readonly key: string;
  readonly claims: readonly ConflictClaim[];
  readonly resolution: ConflictResolution | null;
}

/** An effect the merge could not apply (an append to a key that holds no array). */
export interface RejectedEffect {
  readonly agent: string;
  readonly index: number;
  readonly key: string;
  readonly reason: string;
}

/** A successful agent run's effects, in the agent's order. */
export interface AgentEffects {
  readonly agent: string;
  readonly effects: readonly JobEffect[];
}

export const DOMINANCE_RULES: readonly DominanceRule[] = Object.freeze(['newer', 'higher-confidence']);

/** JSON text with object keys sorted: equal values give equal text. Throws on what JSON cannot hold. */
export function canonicalJson(value: unknown, field = 'value'): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new ValidationError(field, `must be JSON: ${String(value)} is not a finite number`);
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map((item, i) => canonicalJson(item, `${field}[${i}]`)).join(',')}]`;
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new ValidationError(field, 'must be JSON: only plain objects, arrays and primitives');
      const record = value as Record<string, unknown>;
      const parts: string[] = [];
      for (const key of Object.keys(record).sort()) {
        if (record[key] === undefined) continue;
        parts.push(`${JSON.stringify(key)}:${canonicalJson(record[key], `${field}.${key}`)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new ValidationError(field, `must be JSON, got ${typeof value}`);
  }
}

/** A private JSON copy of `value` (validated). */
export function jsonCopy<T>(value: T, field: string): T {
  return JSON.parse(canonicalJson(value, field)) as T;
}

/** Checks an agent's output and returns its effects (an array, `{ effects }`, or nothing). */
export function validateEffects(output: unknown): JobEffect[] {
  if (output === undefined || output === null) return [];
  const list = Array.isArray(output) ? output : (output as { effects?: unknown }).effects;
  if (!Array.isArray(list)) throw new ValidationError('effects', 'an agent must return an array of effects, { effects: [...] }, or nothing');
  return list.map((raw, i): JobEffect => {
    const field = `effects[${i}]`;
    if (raw === null || typeof raw !== 'object') throw new ValidationError(field, 'must be { op, key, value?, confidence?, at? }');
    const e = raw as Record<string, unknown>;
    if (e.op !== 'set' && e.op !== 'append' && e.op !== 'remove') throw new ValidationError(`${field}.op`, `must be 'set', 'append' or 'remove', got ${JSON.stringify(e.op)}`);
    if (typeof e.key !== 'string' || e.key === '') throw new ValidationError(`${field}.key`, 'must be a non-empty string');
    // Assigning `__proto__` on a plain object would replace its prototype, not set a key.
    if (e.key === '__proto__') throw new ValidationError(`${field}.key`, '"__proto__" cannot be a context key');
    const out: Record<string, unknown> = { op: e.op, key: e.key };
    if (e.op !== 'remove') {
      if (e.value === undefined) throw new ValidationError(`${field}.value`, `is required for '${e.op}'`);
      out.value = jsonCopy(e.value, `${field}.value`);
    }
    if (e.confidence !== undefined) {
      if (typeof e.confidence !== 'number' || !(e.confidence >= 0 && e.confidence <= 1)) throw new ValidationError(`${field}.confidence`, 'must be a number in [0, 1]');
      out.confidence = e.confidence;
    }
    if (e.at !== undefined) {
      if (typeof e.at !== 'number' || !Number.isFinite(e.at)) throw new ValidationError(`${field}.at`, 'must be a finite number');
      out.at = e.at;
    }
    return out as JobEffect;
  });
}

/** Validates a dominance declaration. */
export function validateDominance(value: unknown): Dominance | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') {
    if (!DOMINANCE_RULES.includes(value as DominanceRule)) throw new ValidationError('dominance', `must be ${DOMINANCE_RULES.map((r) => `'${r}'`).join(' or ')}, or a map of key → rule`);
    return value as DominanceRule;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ValidationError('dominance', 'must be a rule or a map of key → rule');
  const out: Record<string, DominanceRule> = {};
  for (const key of Object.keys(value).sort()) {
    const rule = (value as Record<string, unknown>)[key];
    if (!DOMINANCE_RULES.includes(rule as DominanceRule)) throw new ValidationError(`dominance.${key}`, `must be ${DOMINANCE_RULES.map((r) => `'${r}'`).join(' or ')}`);
    out[key] = rule as DominanceRule;
  }
  return out;
}

/**
 * The conflicts of a round: keys that two or more agents `set`/`remove` to different values. An
 * agent's claim on a key is its last set/remove of that key; appends never conflict (they compose in
 * merge order). Keys in sorted order, claims in agent-name order.
 */
export function findConflicts(runs: readonly AgentEffects[]): Map<string, ConflictClaim[]> {
  const claims = new Map<string, Map<string, ConflictClaim>>();
  for (const run of runs) {
    for (const effect of run.effects) {
      if (effect.op === 'append') continue;
      let byAgent = claims.get(effect.key);
      if (byAgent === undefined) claims.set(effect.key, (byAgent = new Map()));
      const claim: { -readonly [K in keyof ConflictClaim]: ConflictClaim[K] } = { agent: run.agent, op: effect.op };
      if (effect.op === 'set') claim.value = effect.value;
      if (effect.confidence !== undefined) claim.confidence = effect.confidence;
      if (effect.at !== undefined) claim.at = effect.at;
      byAgent.set(run.agent, claim);
    }
  }
  const out = new Map<string, ConflictClaim[]>();
  for (const key of [...claims.keys()].sort()) {
    const list = [...claims.get(key)!.values()].sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0));
    if (list.length < 2) continue;
    const first = claimText(list[0]!);
    if (list.some((claim) => claimText(claim) !== first)) out.set(key, list);
  }
  return out;
}

function claimText(claim: ConflictClaim): string {
  return claim.op === 'remove' ? 'remove' : `set:${canonicalJson(claim.value)}`;
}

/** The rule declared for `key`, if any. */
export function ruleFor(dominance: Dominance | undefined, key: string): DominanceRule | undefined {
  if (dominance === undefined) return undefined;
  if (typeof dominance === 'string') return dominance;
  return dominance[key] ?? dominance['*'];
}

/** Decides a conflict by `rule`: the single claim with the strictly largest `at` / `confidence`; null on a tie or when none has one. */
export function applyDominance(rule: DominanceRule, claims: readonly ConflictClaim[]): ConflictResolution | null {
  const score = (claim: ConflictClaim): number | undefined => (rule === 'newer' ? claim.at : claim.confidence);
  let best: ConflictClaim | undefined;
  let bestScore = Number.NEGATIVE_INFINITY;
  let tie = false;
  for (const claim of claims) {
    const s = score(claim);
    if (s === undefined) continue;
    if (s > bestScore) {
      best = claim;
      bestScore = s;
      tie = false;
    } else if (s === bestScore) tie = true;
  }
  if (best === undefined || tie) return null;
  return best.op === 'remove' ? { by: 'dominance', rule, agent: best.agent, op: 'remove' } : { by: 'dominance', rule, agent: best.agent, op: 'set', value: best.value };
}

/**
 * Applies a round to `context` (not mutated): every effect in agent-name then effect order, except
 * the set/remove effects on conflicted keys, whose resolutions are applied afterwards in key order
 * (an unresolved key keeps its value). Returns the new context, the keys whose value changed, and
 * the effects that could not apply.
 */
export function applyRound(
  context: JobContext,
  runs: readonly AgentEffects[],
  conflicts: ReadonlyMap<string, ConflictResolution | null>,
): { context: JobContext; changed: string[]; rejected: RejectedEffect[] } {
  const next: JobContext = { ...context };
  const changed = new Set<string>();
  const rejected: RejectedEffect[] = [];
  const write = (key: string, op: 'set' | 'remove', value: unknown): void => {
    if (op === 'remove') {
      if (Object.hasOwn(next, key)) {
        delete next[key];
        changed.add(key);
      }
      return;
    }
    if (!Object.hasOwn(next, key) || canonicalJson(next[key]) !== canonicalJson(value)) {
      next[key] = value;
      changed.add(key);
    }
  };
  for (const run of runs) {
    run.effects.forEach((effect, index) => {
      if (effect.op === 'append') {
        const current = next[effect.key];
        if (current !== undefined && !Array.isArray(current)) {
          rejected.push({ agent: run.agent, index, key: effect.key, reason: 'append to a key that holds no array' });
          return;
        }
        next[effect.key] = [...((current as unknown[] | undefined) ?? []), effect.value];
        changed.add(effect.key);
        return;
      }
      if (conflicts.has(effect.key)) return;
      write(effect.key, effect.op, effect.op === 'set' ? effect.value : undefined);
    });
  }
  for (const key of [...conflicts.keys()].sort()) {
    const resolution = conflicts.get(key);
    if (resolution != null) write(key, resolution.op, resolution.value);
  }
  return { context: next, changed: [...changed].sort(), rejected };
}
