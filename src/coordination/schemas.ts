/**
 * Input schemas of the coordination API. Every public method validates its arguments with these
 * through {@link parseInput}, so a bad call rejects with a `ValidationError` naming the field.
 */
import { z } from 'zod';
import { parseInput } from '../shared/validation.js';

/** Longest id accepted (tasks, agents, pools, topics, capabilities). */
export const MAX_ID_LENGTH = 256;
const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;
/** setTimeout's ceiling; longer waits would fire at once. */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** A non-empty identifier of at most 256 characters. */
export const IdSchema = z.string().min(1, 'must not be empty').max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`);
const IdListSchema = z.array(IdSchema).readonly();

/** Task priority: a 32-bit signed integer (the SQL stores keep it in an integer column). */
export const PrioritySchema = z.number().int().min(INT32_MIN).max(INT32_MAX);
/** A claim TTL in ms. */
export const TtlSchema = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
/** A fencing token as handed out by a claim (the first claim gets 1). */
export const FencingTokenSchema = z.number().int().positive().max(INT32_MAX);
/** A point in time, epoch ms. */
export const NowMsSchema = z.number().finite();
/** A wait in ms, up to what setTimeout can express. */
export const TimeoutMsSchema = z.number().min(0).max(MAX_TIMEOUT_MS);

/** `submit`'s argument. */
export const SubmitTaskSchema = z.strictObject({
  id: IdSchema.optional(),
  payload: z.unknown(),
  poolId: IdSchema.nullish(),
  topic: IdSchema.nullish(),
  requiredCapabilities: IdListSchema.optional(),
  priority: PrioritySchema.optional(),
  claimTtlMs: TtlSchema.nullish(),
});

const filterShape = {
  poolIds: IdListSchema.optional(),
  capabilities: IdListSchema.optional(),
  topics: IdListSchema.optional(),
};

/** `claimNext`'s filter. Unknown keys are refused (a misspelt field must not widen what is claimed). */
export const TaskFilterSchema = z.strictObject({ ...filterShape, topicRequired: z.boolean().optional() });

/** `listPendingTasksForAgent`'s options. */
export const AgentListOptionsSchema = z.strictObject({
  ...filterShape,
  sortByPriority: z.boolean().optional(),
  refreshFromStore: z.boolean().optional(),
});

/** `listPendingTasks`' options. */
export const ListOptionsSchema = z.strictObject({ refreshFromStore: z.boolean().optional() });

/** Options of the calls a claim holder makes. */
export const HolderOptionsSchema = z.strictObject({ fencingToken: FencingTokenSchema.optional() });

/** `failTask`'s options: a fencing token only makes sense with the agent that holds it. */
export const FailOptionsSchema = z
  .strictObject({ agentId: IdSchema.optional(), fencingToken: FencingTokenSchema.optional() })
  .refine((options) => options.fencingToken === undefined || options.agentId !== undefined, {
    path: ['fencingToken'],
    message: 'a fencing token needs the agentId that holds it',
  });

/** `waitUntilDone`'s options. */
export const WaitOptionsSchema = z.strictObject({ timeoutMs: TimeoutMsSchema });

/** Most tasks one batched claim may take. */
export const MAX_CLAIM_BATCH = 10_000;

/** `claimNext`'s third argument. */
export const ClaimBatchOptionsSchema = z.strictObject({ max: z.number().int().min(1).max(MAX_CLAIM_BATCH) });

/**
 * Validates an id. The common valid case is checked inline (this sits on the claim hot path, where a
 * schema call per argument is a measurable share of a microsecond); anything else goes through
 * {@link IdSchema} so the error is the schema's own.
 */
export function parseId(value: unknown, name: string): string {
  if (typeof value === 'string' && value.length > 0 && value.length <= MAX_ID_LENGTH) return value;
  return parseInput(IdSchema, value, name);
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_ID_LENGTH;
}

function isIdList(value: unknown): value is readonly string[] {
  if (!Array.isArray(value)) return false;
  for (const item of value) if (!isId(item)) return false;
  return true;
}

function isInt(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

/**
 * True only for inputs {@link SubmitTaskSchema} accepts, checked without allocating. The submit hot
 * path takes the input as is when this holds and falls back to the schema (which also produces the
 * error) when it does not. Conservative by construction: it may send a valid input to the schema,
 * never an invalid one past it (a property test holds it to that).
 */
export function isPlainSubmitInput(value: unknown): value is z.output<typeof SubmitTaskSchema> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const input = value as Record<string, unknown>;
  for (const key in input) if (!isSubmitKey(key)) return false;
  const { id, poolId, topic, requiredCapabilities, priority, claimTtlMs } = input;
  return (
    'payload' in input &&
    (id === undefined || isId(id)) &&
    (poolId === undefined || poolId === null || isId(poolId)) &&
    (topic === undefined || topic === null || isId(topic)) &&
    (requiredCapabilities === undefined || isIdList(requiredCapabilities)) &&
    (priority === undefined || isInt(priority, INT32_MIN, INT32_MAX)) &&
    (claimTtlMs === undefined || claimTtlMs === null || isInt(claimTtlMs, 1, Number.MAX_SAFE_INTEGER))
  );
}

/** True only for a `{ fencingToken? }` that {@link HolderOptionsSchema} accepts; see {@link isPlainSubmitInput}. */
export function isPlainHolderOptions(value: unknown): value is z.output<typeof HolderOptionsSchema> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  for (const key in value) if (key !== 'fencingToken') return false;
  const token = (value as { fencingToken?: unknown }).fencingToken;
  return token === undefined || isInt(token, 1, INT32_MAX);
}

function isSubmitKey(key: string): boolean {
  switch (key) {
    case 'id':
    case 'payload':
    case 'poolId':
    case 'topic':
    case 'requiredCapabilities':
    case 'priority':
    case 'claimTtlMs':
      return true;
    default:
      return false;
  }
}

/** Most settlements one `settleMany` call may carry. */
export const MAX_SETTLE_BATCH = 10_000;

/** One item of `settleMany`. */
export const SettlementInputSchema = z.strictObject({
  taskId: IdSchema,
  outcome: z.enum(['completed', 'failed', 'released']),
  result: z.unknown().optional(),
  fencingToken: FencingTokenSchema.optional(),
});

/** `settleMany`'s items: distinct task ids. */
export const SettlementsSchema = z
  .array(SettlementInputSchema)
  .max(MAX_SETTLE_BATCH)
  .superRefine((items, ctx) => {
    const seen = new Set<string>();
    items.forEach((item, index) => {
      if (seen.has(item.taskId)) ctx.addIssue({ code: 'custom', path: [index, 'taskId'], message: `task ${JSON.stringify(item.taskId)} appears twice in one batch` });
      seen.add(item.taskId);
    });
  });
