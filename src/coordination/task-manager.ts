/**
 * The task-claiming API that workers build on: submit, claim, report, fail, cancel, expire and wait.
 * A validating facade over a {@link TaskStore}; it keeps no cache, so every read is the store's truth
 * and any number of managers (in one process or many) can share one store.
 *
 * ## Fencing tokens
 * Every claim increments the task's `fencingToken` and returns it in the claimed {@link Task}. Pass it
 * back as `{ fencingToken }` to `report`, `failTask`, `renewClaim` and `startTask`: if your claim
 * expired, was released by `releaseExpiredClaims` and the task was claimed again (even by an agent
 * with your id, e.g. after a restart), the token is stale and the call rejects with
 * `StaleClaimError` (a `NotAuthorizedError`, code `CONVERGE_NOT_AUTHORIZED`). Without a token only
 * the agent id is checked.
 */
import { z } from 'zod';
import { ClosedError, StoreError, ValidationError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';
import { lastIdHead, newId } from './ids.js';
import { MemoryStore } from './memory-store.js';
import { assertPlainData } from './plain-data.js';
import {
  AgentListOptionsSchema,
  ClaimBatchOptionsSchema,
  MAX_CLAIM_BATCH,
  MAX_ID_LENGTH,
  MAX_SETTLE_BATCH,
  SettlementsSchema,
  FailOptionsSchema,
  HolderOptionsSchema,
  ListOptionsSchema,
  NowMsSchema,
  SubmitTaskSchema,
  TaskFilterSchema,
  TtlSchema,
  WaitOptionsSchema,
  isPlainHolderOptions,
  isPlainSubmitInput,
  parseId,
} from './schemas.js';
import type { ClaimHolder, NewTask, SettleOutcome, Settlement, Task, TaskFilter } from './task.js';
import type { SettledAndClaimed, TaskStore } from './task-store.js';

/** Options of {@link TaskManager}. */
export interface TaskManagerOptions {
  /** Where tasks live. Default: a new {@link MemoryStore} owned (and closed) by this manager. */
  readonly store?: TaskStore;
  /** Claim TTL of tasks submitted without `claimTtlMs`. Default: none (claims never expire). */
  readonly defaultClaimTtlMs?: number;
  /** Clock for `claimedAt` and for the time part of generated ids (epoch ms). Default `Date.now`. */
  readonly now?: () => number;
}

/** `submit`'s argument. */
export interface SubmitTaskInput<P = unknown> {
  /** Default: a time-ordered `task_…` id. */
  readonly id?: string;
  /** Any JSON value for the SQLite and PostgreSQL stores (undefined is stored as null). */
  readonly payload: P;
  /** Only members of this pool see the task (see {@link TaskFilter}). */
  readonly poolId?: string | null;
  readonly topic?: string | null;
  /** Stored deduplicated and sorted. */
  readonly requiredCapabilities?: readonly string[];
  /** 32-bit integer; higher is claimed first. Default 0. */
  readonly priority?: number;
  /** Claim lifetime without renewal; default the manager's `defaultClaimTtlMs`, else never. */
  readonly claimTtlMs?: number | null;
}

/** `listPendingTasksForAgent`'s options. */
export interface AgentTaskListOptions extends TaskFilter {
  /** Sort by (−priority, id) instead of submission order. */
  readonly sortByPriority?: boolean;
  /** Accepted for compatibility: reads always go to the store, so they are always fresh. */
  readonly refreshFromStore?: boolean;
}

/** Options of the calls only a claim holder may make. */
export interface HolderOptions {
  /** The token from the claimed Task; a stale one rejects with `StaleClaimError`. */
  readonly fencingToken?: number;
}

/** `claimNext`'s third argument: claim up to `max` tasks at once. */
export interface ClaimBatchOptions {
  /** At most this many tasks (1 … 10 000). */
  readonly max: number;
}

/** One item of {@link TaskManager.settleMany}. */
export interface TaskSettlement {
  readonly taskId: string;
  /** `completed` (like `report`), `failed` (like `failTask` by the holder), `released` (back to pending, unstarted). */
  readonly outcome: 'completed' | 'failed' | 'released';
  /** The result (completed) or the reason (failed): plain JSON data. Ignored for released. */
  readonly result?: unknown;
  /** The token from the claimed Task; a stale one refuses this item alone with `StaleClaimError`. */
  readonly fencingToken?: number;
}

/** Options of `failTask`. */
export interface FailTaskOptions extends HolderOptions {
  /** When set, only this agent (the claim holder) may fail the task. */
  readonly agentId?: string;
}

const OptionsSchema = z.strictObject({
  store: z.custom<TaskStore>((value) => typeof value === 'object' && value !== null && typeof (value as TaskStore).claimNext === 'function', 'must be a TaskStore').optional(),
  defaultClaimTtlMs: TtlSchema.optional(),
  now: z.custom<() => number>((value) => typeof value === 'function', 'must be a function returning epoch ms').optional(),
});

const NO_CAPABILITIES: readonly string[] = Object.freeze([]);
const NO_FILTER: TaskFilter = Object.freeze({});
const NO_OPTIONS = Object.freeze({});
/** What `report` returns when the store settled synchronously: one shared, already-resolved promise. */
const DONE: Promise<void> = Promise.resolve();
const toVoid = (): void => undefined;

/** Submits, hands out and settles tasks (DESIGN §5). All methods are async and validate their input. */
export class TaskManager {
  readonly #store: TaskStore;
  /**
   * The store again when it is exactly a {@link MemoryStore} (not a subclass, which may override the
   * contract's methods): then submit and report call its argument-list variants and allocate no
   * intermediate objects. Null otherwise.
   */
  readonly #memory: MemoryStore | null;
  readonly #ownsStore: boolean;
  readonly #now: () => number;
  /** Whether `now` was injected: then generated ids take their time from it too (deterministic tests). */
  readonly #clockInjected: boolean;
  readonly #defaultClaimTtlMs: number | null;
  #closed = false;

  constructor(options: TaskManagerOptions = {}) {
    const resolved = parseInput(OptionsSchema, options, 'options');
    this.#ownsStore = resolved.store === undefined;
    this.#store = resolved.store ?? new MemoryStore();
    this.#memory = Object.getPrototypeOf(this.#store) === MemoryStore.prototype ? (this.#store as MemoryStore) : null;
    this.#now = resolved.now ?? Date.now;
    this.#clockInjected = resolved.now !== undefined;
    this.#defaultClaimTtlMs = resolved.defaultClaimTtlMs ?? null;
  }

  /** The store this manager reads and writes. */
  get store(): TaskStore {
    return this.#store;
  }

  /** Creates a pending task. A taken id → `DuplicateIdError`. */
  async submit<P>(input: SubmitTaskInput<P>): Promise<Task<P>> {
    this.#assertOpen();
    const memory = this.#memory;
    if (memory !== null && isPlainSubmitInput(input)) {
      assertPlainData(input.payload, 'input.payload');
      const capabilities = input.requiredCapabilities;
      const payload = input.payload ?? null;
      const poolId = input.poolId ?? null;
      const topic = input.topic ?? null;
      const requiredCapabilities = capabilities === undefined || capabilities.length === 0 ? NO_CAPABILITIES : normalizeCapabilities(capabilities);
      const priority = input.priority ?? 0;
      const claimTtlMs = input.claimTtlMs === undefined ? this.#defaultClaimTtlMs : input.claimTtlMs;
      const given = input.id;
      if (given !== undefined) return memory.insertTaskFields(given, null, payload, poolId, topic, requiredCapabilities, priority, claimTtlMs) as Task<P>;
      // Generated last: no caller code (a getter on the input) runs between newId and the insert,
      // so the head handed over is this id's.
      const id = this.#newTaskId();
      return memory.insertTaskFields(id, lastIdHead(), payload, poolId, topic, requiredCapabilities, priority, claimTtlMs) as Task<P>;
    }
    // Returned, not awaited: awaiting the memory store's plain value would suspend this function
    // for nothing (a measurable share of the claim hot path).
    return this.#store.insertTask(this.#newTask(input, 'input')) as Task<P> | Promise<Task<P>>;
  }

  /** Creates all the tasks in one atomic step (all or none). */
  async submitMany<P>(inputs: readonly SubmitTaskInput<P>[]): Promise<Task<P>[]> {
    this.#assertOpen();
    if (!Array.isArray(inputs)) parseInput(z.array(z.unknown()), inputs, 'inputs');
    const tasks = inputs.map((input, index) => this.#newTask(input, `inputs[${index}]`));
    return (await this.#store.insertTasks(tasks)) as Task<P>[];
  }

  /**
   * Claims `taskId` for `agentId` if it is pending. Of any number of concurrent claimants (in this
   * process or any other sharing the store) exactly one gets true.
   */
  async claim(agentId: string, taskId: string): Promise<boolean> {
    return (await this.claimTask(agentId, taskId)) !== null;
  }

  /** Like {@link claim}, but returns the claimed task (with its fencing token) or null. */
  async claimTask(agentId: string, taskId: string): Promise<Task | null> {
    this.#assertOpen();
    const agent = parseId(agentId, 'agentId');
    const id = parseId(taskId, 'taskId');
    return this.#store.claimTask(id, agent, this.#now());
  }

  /**
   * {@link claimTask} for many ids at once (one statement on PostgreSQL, one transaction on SQLite):
   * one entry per id, in order, the claimed task (with its fencing token) or null. Ids must be distinct.
   */
  async claimTasks(agentId: string, taskIds: readonly string[]): Promise<(Task | null)[]> {
    this.#assertOpen();
    const agent = parseId(agentId, 'agentId');
    if (!Array.isArray(taskIds) || taskIds.length > MAX_CLAIM_BATCH) throw new ValidationError('taskIds', `must be an array of at most ${MAX_CLAIM_BATCH} task ids`);
    const ids = taskIds.map((id, index) => parseId(id, `taskIds[${index}]`));
    if (new Set(ids).size !== ids.length) throw new ValidationError('taskIds', 'must not repeat an id');
    if (ids.length === 0) return [];
    const nowMs = this.#now();
    if (this.#store.claimTasks !== undefined) return this.#store.claimTasks(ids, agent, nowMs);
    const out: (Task | null)[] = [];
    for (const id of ids) out.push(await this.#store.claimTask(id, agent, nowMs));
    return out;
  }

  /**
   * Atomically finds and claims the best pending task visible under `filter`: highest priority, then
   * smallest id. Null when there is none free to claim: on PostgreSQL, tasks that other claimers are
   * claiming at that instant are skipped, not waited for, so null means "nothing for me right now".
   *
   * With `{ max }`: claims up to `max` tasks at once, in claim order, and returns them as an array
   * (empty when none is free): one statement on PostgreSQL (`FOR UPDATE SKIP LOCKED`), one
   * transaction on SQLite. Each task has its own fencing token and claim TTL, as if claimed alone.
   */
  async claimNext(agentId: string, filter?: TaskFilter): Promise<Task | null>;
  async claimNext(agentId: string, filter: TaskFilter | undefined, options: ClaimBatchOptions): Promise<Task[]>;
  async claimNext(agentId: string, filter?: TaskFilter, options?: ClaimBatchOptions): Promise<Task | null | Task[]> {
    this.#assertOpen();
    const agent = parseId(agentId, 'agentId');
    const resolved = filter === undefined ? NO_FILTER : parseInput(TaskFilterSchema, filter, 'filter');
    if (options === undefined) return this.#store.claimNext(agent, resolved, this.#now());
    const { max } = parseInput(ClaimBatchOptionsSchema, options, 'options');
    const nowMs = this.#now();
    if (this.#store.claimNextBatch !== undefined) return this.#store.claimNextBatch(agent, resolved, nowMs, max);
    const out: Task[] = [];
    for (let task = await this.#store.claimNext(agent, resolved, nowMs); task !== null; task = out.length < max ? await this.#store.claimNext(agent, resolved, nowMs) : null) {
      out.push(task);
    }
    return out;
  }

  /**
   * Settles many of `agentId`'s claims at once: completions, failures and releases (back to pending,
   * for tasks taken but not started), in one statement on PostgreSQL and one transaction on SQLite.
   * Each item is checked against its fencing token exactly like `report` / `failTask`; a refused
   * one does not affect the others. Resolves with one outcome per item, in order: true (applied),
   * false (nothing to do: unknown task, or a failure or release of a task that already finished), or
   * the error that refused it (`StaleClaimError`, `NotAuthorizedError`, `InvalidStateError`). The
   * call itself rejects only for invalid input or a store failure (then nothing was applied).
   */
  async settleMany(agentId: string, items: readonly TaskSettlement[]): Promise<SettleOutcome[]> {
    this.#assertOpen();
    const agent = parseId(agentId, 'agentId');
    const settlements = parseSettlements(items);
    return this.#settle(agent, settlements);
  }

  /**
   * {@link settleMany} then {@link claimNext} with `{ max }`, in one round trip and one transaction
   * where the store can (PostgreSQL: one statement): a busy claimer's completions ride on its next
   * claim instead of costing a statement and a commit of their own. Every settlement is checked
   * against its fencing token exactly as in `settleMany` (a refused one does not affect the others
   * or the claim). Resolves with one outcome per item, in order, and the tasks claimed, in claim order.
   */
  async settleAndClaimNext(agentId: string, items: readonly TaskSettlement[], filter: TaskFilter | undefined, options: ClaimBatchOptions): Promise<SettledAndClaimed> {
    this.#assertOpen();
    const agent = parseId(agentId, 'agentId');
    const settlements = parseSettlements(items);
    const resolved = filter === undefined ? NO_FILTER : parseInput(TaskFilterSchema, filter, 'filter');
    const { max } = parseInput(ClaimBatchOptionsSchema, options, 'options');
    if (settlements.length > 0 && this.#store.settleAndClaimNext !== undefined) return this.#store.settleAndClaimNext(agent, settlements, resolved, this.#now(), max);
    const outcomes = await this.#settle(agent, settlements);
    return { outcomes, tasks: await this.claimNext(agent, resolved, { max }) };
  }

  async #settle(agent: string, settlements: Settlement[]): Promise<SettleOutcome[]> {
    if (settlements.length === 0) return [];
    if (this.#store.settleTasks !== undefined) return this.#store.settleTasks(agent, settlements);
    const outcomes: SettleOutcome[] = [];
    for (const item of settlements) {
      const holder = { agentId: agent, fencingToken: item.fencingToken };
      try {
        if (item.state === 'completed') outcomes.push(await this.#store.completeTask(item.id, holder, item.result));
        else if (item.state === 'failed') outcomes.push(await this.#store.failTask(item.id, item.result, holder));
        else outcomes.push(new StoreError(`store ${this.#store.kind} cannot release a claim (it has no settleTasks)`));
      } catch (error) {
        outcomes.push(error instanceof Error ? error : new StoreError(String(error)));
      }
    }
    return outcomes;
  }

  /** Marks a claimed task `running`. Unknown id → null; not the holder → `NotAuthorizedError`. */
  async startTask(agentId: string, taskId: string, options: HolderOptions = NO_OPTIONS): Promise<Task | null> {
    this.#assertOpen();
    const holder = this.#holder(agentId, options);
    return this.#store.startTask(parseId(taskId, 'taskId'), holder);
  }

  /**
   * Completes the holder's task with `result`. Unknown id → no-op. Another agent or a stale
   * fencing token → `NotAuthorizedError`; a task that already finished → `InvalidStateError`.
   */
  report(agentId: string, taskId: string, result?: unknown, options: HolderOptions = NO_OPTIONS): Promise<void> {
    // Not `async`: when the store settles synchronously (the memory store) this returns one shared,
    // already-resolved promise instead of a new one per call. Errors still come back as rejections.
    try {
      this.#assertOpen();
      const agent = parseId(agentId, 'agentId');
      const fencingToken = this.#fencingToken(options);
      const id = parseId(taskId, 'taskId');
      assertPlainData(result, 'result');
      const memory = this.#memory;
      if (memory !== null) {
        memory.completeTaskAs(id, agent, fencingToken, result ?? null);
        return DONE;
      }
      const done = this.#store.completeTask(id, { agentId: agent, fencingToken }, result ?? null);
      return done instanceof Promise ? done.then(toVoid) : DONE;
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /** Cancels a task that has not finished. Unknown or terminal → false. */
  async cancelTask(taskId: string): Promise<boolean> {
    this.#assertOpen();
    return this.#store.cancelTask(parseId(taskId, 'taskId'));
  }

  /**
   * Fails a task that has not finished, storing `reason` as its result. With `agentId` only the claim
   * holder may (another agent or a stale token → `NotAuthorizedError`); without, anyone may (a
   * system-level failure). Unknown or already terminal → false.
   */
  async failTask(taskId: string, reason: unknown, options: FailTaskOptions = NO_OPTIONS): Promise<boolean> {
    this.#assertOpen();
    const id = parseId(taskId, 'taskId');
    const resolved = parseInput(FailOptionsSchema, options, 'options');
    assertPlainData(reason, 'reason');
    const holder: ClaimHolder | undefined = resolved.agentId === undefined ? undefined : { agentId: resolved.agentId, fencingToken: resolved.fencingToken };
    return this.#store.failTask(id, reason ?? null, holder);
  }

  /**
   * Restarts the holder's claim TTL from now. Unknown id → false; not the holder (or a stale token)
   * → `NotAuthorizedError`, so a heartbeat loop learns that its claim is gone.
   */
  async renewClaim(agentId: string, taskId: string, options: HolderOptions = NO_OPTIONS): Promise<boolean> {
    this.#assertOpen();
    const holder = this.#holder(agentId, options);
    return (await this.#store.renewClaim(parseId(taskId, 'taskId'), holder, this.#now())) !== null;
  }

  /**
   * Returns every claimed task whose TTL has run out at `nowMs` to pending, with its assignment
   * cleared. Its fencing token stays, so the next claim issues a new one. Returns the released ids.
   */
  async releaseExpiredClaims(nowMs?: number): Promise<string[]> {
    this.#assertOpen();
    const now = nowMs === undefined ? this.#now() : parseInput(NowMsSchema, nowMs, 'nowMs');
    return this.#store.releaseExpiredClaims(now);
  }

  /** The task once it is completed, failed or cancelled; null on timeout or for an unknown id. */
  async waitUntilDone(taskId: string, options: { readonly timeoutMs: number }): Promise<Task | null> {
    this.#assertOpen();
    const id = parseId(taskId, 'taskId');
    const { timeoutMs } = parseInput(WaitOptionsSchema, options, 'options');
    return this.#store.waitUntilDone(id, timeoutMs);
  }

  /** The task, or null for an unknown id. */
  async getTask(taskId: string): Promise<Task | null> {
    this.#assertOpen();
    return this.#store.getTask(parseId(taskId, 'taskId'));
  }

  /** Every pending task, in submission order. */
  async listPendingTasks(options: { readonly refreshFromStore?: boolean } = NO_OPTIONS): Promise<Task[]> {
    this.#assertOpen();
    parseInput(ListOptionsSchema, options, 'options');
    return this.#store.listPendingTasks({ sortByPriority: false });
  }

  /**
   * The pending tasks `agentId` may see (see {@link TaskFilter}), in submission order or, with
   * `sortByPriority`, by (−priority, id).
   */
  async listPendingTasksForAgent(agentId: string, options: AgentTaskListOptions = NO_OPTIONS): Promise<Task[]> {
    this.#assertOpen();
    agentId = parseId(agentId, 'agentId');
    const resolved = parseInput(AgentListOptionsSchema, options, 'options');
    const filter: TaskFilter = { poolIds: resolved.poolIds, capabilities: resolved.capabilities, topics: resolved.topics };
    return this.#store.listPendingTasks({ filter, agentId, sortByPriority: resolved.sortByPriority ?? false });
  }

  /** Stops the manager; closes the store only if the manager created it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsStore) await this.#store.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('TaskManager');
  }

  #holder(agentId: string, options: HolderOptions): ClaimHolder {
    const agent = parseId(agentId, 'agentId');
    return { agentId: agent, fencingToken: this.#fencingToken(options) };
  }

  /** The validated `options.fencingToken`. */
  #fencingToken(options: HolderOptions): number | undefined {
    if (options === NO_OPTIONS) return undefined;
    return (isPlainHolderOptions(options) ? options : parseInput(HolderOptionsSchema, options, 'options')).fencingToken;
  }

  #newTaskId(): string {
    return this.#clockInjected ? newId('task', this.#now()) : newId('task');
  }

  #newTask(input: SubmitTaskInput, name: string): NewTask {
    const parsed = isPlainSubmitInput(input) ? input : parseInput(SubmitTaskSchema, input, name);
    assertPlainData(parsed.payload, `${name}.payload`);
    const capabilities = parsed.requiredCapabilities;
    return {
      id: parsed.id ?? this.#newTaskId(),
      payload: parsed.payload ?? null,
      poolId: parsed.poolId ?? null,
      topic: parsed.topic ?? null,
      requiredCapabilities: capabilities === undefined || capabilities.length === 0 ? NO_CAPABILITIES : normalizeCapabilities(capabilities),
      priority: parsed.priority ?? 0,
      claimTtlMs: parsed.claimTtlMs === undefined ? this.#defaultClaimTtlMs : parsed.claimTtlMs,
    };
  }
}

/**
 * True only for settlements {@link SettlementsSchema} accepts, checked inline (the flush path of
 * every claimer); anything else goes through the schema, which also produces the error.
 */
/** Validated settlements in the stores' form. */
function parseSettlements(items: readonly TaskSettlement[]): Settlement[] {
  const parsed = isPlainSettlements(items) ? items : parseInput(SettlementsSchema, items, 'items');
  return parsed.map((item, index): Settlement => {
    const result = item.outcome === 'released' ? null : (item.result ?? null);
    assertPlainData(result, `items[${index}].result`);
    return { id: item.taskId, fencingToken: item.fencingToken, state: item.outcome === 'released' ? 'pending' : item.outcome, result };
  });
}

function isPlainSettlements(items: unknown): items is readonly TaskSettlement[] {
  if (!Array.isArray(items) || items.length > MAX_SETTLE_BATCH) return false;
  const seen = new Set<string>();
  for (const item of items as unknown[]) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return false;
    for (const key in item) if (key !== 'taskId' && key !== 'outcome' && key !== 'result' && key !== 'fencingToken') return false;
    const { taskId, outcome, fencingToken } = item as Record<string, unknown>;
    if (typeof taskId !== 'string' || taskId.length === 0 || taskId.length > MAX_ID_LENGTH || seen.has(taskId)) return false;
    if (outcome !== 'completed' && outcome !== 'failed' && outcome !== 'released') return false;
    if (fencingToken !== undefined && (typeof fencingToken !== 'number' || !Number.isInteger(fencingToken) || fencingToken < 1 || fencingToken > 2_147_483_647)) return false;
    seen.add(taskId);
  }
  return true;
}

/** Required capabilities as stored: deduplicated, sorted, frozen. */
function normalizeCapabilities(capabilities: readonly string[]): readonly string[] {
  return Object.freeze([...new Set(capabilities)].sort());
}
