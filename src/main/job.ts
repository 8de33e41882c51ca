/**
 * ConvergeJob: one runtime owns one context and drives agents to a fixed point (DESIGN §6, seed 001).
 *
 * Each round the eligible agents run in parallel on pool threads against a snapshot of the context;
 * their effects come back and are merged serially in a deterministic order (job-merge.ts); the first
 * round that changes nothing is the fixed point. Tool calls run here, under timeouts, retries and
 * circuit breakers (job-tools.ts), and their responses are recorded in the trace, so the same inputs
 * give the same trace byte for byte and `ConvergeJob.replay(trace)` reproduces a run without calling
 * any tool.
 *
 * A failed optional agent lowers the tier; a failed required agent or an undecided conflict makes the
 * answer `partial` — never `converged`.
 */
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { ClosedError, deserializeError, serializeError, ValidationError } from '../shared/errors.js';
import {
  AgentFailedError,
  JobCancelledError,
  ReplayDivergedError,
  type JobAgentOutcome,
  type JobAgentTask,
  type ToolCallReply,
  type ToolCallRequest,
  type ToolFailureClass,
} from '../shared/job-protocol.js';
import {
  applyDominance,
  applyRound,
  canonicalJson,
  findConflicts,
  jsonCopy,
  ruleFor,
  validateDominance,
  validateEffects,
  type AgentEffects,
  type ConflictResolution,
  type Dominance,
  type JobConflict,
  type JobContext,
  type JobEffect,
  type RejectedEffect,
} from './job-merge.js';
import { PiscinaJobPool, type JobAgentPool, type JobPoolOptions, validateJobPoolOptions } from './job-pool.js';
import { ToolBox, type CircuitState, type JobClock, type ToolCallTrace, type ToolDefinition, type ToolHandler } from './job-tools.js';

/** An agent: a module run on a pool thread. */
export interface JobAgentDefinition {
  /** Unique; also the merge order. */
  readonly name: string;
  /** Absolute path, file URL or `data:` URL of an ES module exporting `(context, ctx) => effects` (and optionally `eligible(context)`). */
  readonly module: string | URL;
  /** The export to call. Default `default`. */
  readonly export?: string;
  /** Must succeed for the answer to be `converged`. Default true. */
  readonly required?: boolean;
  /** Shorthand for `required: false`. */
  readonly optional?: boolean;
  /** Checked on the runtime side before each round (a module's own `eligible` export is checked in its thread as well). */
  readonly eligible?: (context: Readonly<JobContext>) => boolean;
  /** Keys this agent produces: marked incomplete when it fails. */
  readonly writes?: readonly string[];
  /** Per run; past it the run is stopped and counts as a failure (class `timeout`). Default none. */
  readonly timeoutMs?: number;
}

/** A resolver: a module `(conflict, context, ctx) => { value } | { remove: true } | null` that decides conflicts. */
export interface JobResolverDefinition {
  readonly name: string;
  readonly module: string | URL;
  readonly export?: string;
  /** Keys it decides. Default: every key. The first resolver by name that covers a key decides it. */
  readonly keys?: readonly string[];
}

/** `new ConvergeJob(options)` */
export interface ConvergeJobOptions {
  readonly agents: readonly JobAgentDefinition[];
  /** Rounds before giving up with `max_rounds`. Default 20. */
  readonly maxRounds?: number;
  readonly resolvers?: readonly JobResolverDefinition[];
  /** Tools agents reach through `ctx.callTool(name, args)`. */
  readonly tools?: Readonly<Record<string, ToolHandler | ToolDefinition>>;
  readonly dominance?: Dominance;
  /** Seeds the retry jitter. Default `'0'`. */
  readonly seed?: string | number;
  /** Clock of the circuit breakers. Default the system clock. */
  readonly clock?: JobClock;
  /** Where agents run: a {@link JobAgentPool} (not closed by the job) or options of the job's own Piscina pool. */
  readonly pool?: JobAgentPool | JobPoolOptions;
}

/** `job.run(context, options)` */
export interface JobRunOptions {
  readonly signal?: AbortSignal;
  /** Resolve after this long with the best answer so far (`early: true`); the final one comes in `later`. */
  readonly earlyAfterMs?: number;
}

/** How good the answer is, best first: every agent succeeded; an optional one failed; a required one failed or a conflict stands; nothing succeeded. */
export type JobTier = 'complete' | 'degraded' | 'incomplete' | 'none';
export const JOB_TIERS: readonly JobTier[] = Object.freeze(['complete', 'degraded', 'incomplete', 'none']);

export type JobStatus = 'converged' | 'partial' | 'failed' | 'max_rounds';

/** An error as the trace records it (no stack: traces are compared byte for byte). */
export interface TracedError {
  readonly name: string;
  readonly code: string;
  readonly message: string;
  readonly failureClass?: ToolFailureClass;
}

/** One agent run in a round. */
export interface AgentRunTrace {
  readonly agent: string;
  readonly ok: boolean;
  /** False when the module's own `eligible` said no (the run did nothing). */
  readonly eligible: boolean;
  readonly effects?: readonly JobEffect[];
  readonly error?: TracedError;
  readonly tools: readonly ToolCallTrace[];
}

/** One resolver run. */
export interface ResolverRunTrace {
  readonly resolver: string;
  readonly key: string;
  readonly ok: boolean;
  readonly output?: unknown;
  readonly error?: TracedError;
  readonly tools: readonly ToolCallTrace[];
}

/** One round: who ran, what they did, what conflicted, what changed. */
export interface RoundTrace {
  readonly round: number;
  readonly eligible: readonly string[];
  readonly agents: readonly AgentRunTrace[];
  readonly conflicts: readonly JobConflict[];
  readonly resolvers: readonly ResolverRunTrace[];
  readonly rejected: readonly RejectedEffect[];
  readonly changed: readonly string[];
}

/** The job as the trace records it: enough to replay it. */
export interface TracedJob {
  readonly agents: readonly { name: string; module: string; export: string; required: boolean; writes: readonly string[]; timeoutMs: number | null }[];
  readonly resolvers: readonly { name: string; module: string; export: string; keys: readonly string[] | null }[];
  readonly maxRounds: number;
  readonly dominance: Dominance | null;
  readonly seed: string;
}

/** Everything a run did, in order, with every tool response. `JSON.stringify` of it is identical for identical inputs. */
export interface JobTrace {
  readonly version: 1;
  readonly job: TracedJob;
  readonly input: JobContext;
  readonly rounds: readonly RoundTrace[];
  readonly outcome: { readonly status: JobStatus; readonly tier: JobTier; readonly rounds: number; readonly context: JobContext } | null;
}

/** A failed agent, as of its last run. */
export interface AgentFailure {
  readonly agent: string;
  readonly required: boolean;
  readonly round: number;
  readonly error: TracedError;
}

/** What `run` resolves with. */
export interface JobResult {
  readonly status: JobStatus;
  readonly tier: JobTier;
  readonly context: JobContext;
  /** Rounds run, the fixed-point round included. */
  readonly rounds: number;
  readonly conflicts: readonly JobConflict[];
  /** Keys not to trust: written by failed agents (their `writes`), undecided conflicts, rejected effects, or (early answers) still being worked on. */
  readonly incomplete: readonly string[];
  readonly failures: readonly AgentFailure[];
  readonly trace: JobTrace;
  /** True on an early (anytime) answer. */
  readonly early?: boolean;
  /** On an early answer: the final result. */
  readonly later?: Promise<JobResult>;
}

interface ResolvedAgent {
  readonly name: string;
  readonly module: string;
  readonly exportName: string;
  readonly required: boolean;
  readonly eligible: ((context: Readonly<JobContext>) => boolean) | undefined;
  readonly writes: readonly string[];
  readonly timeoutMs: number | undefined;
}

interface ResolvedResolver {
  readonly name: string;
  readonly module: string;
  readonly exportName: string;
  readonly keys: readonly string[] | undefined;
}

const DEFAULT_MAX_ROUNDS = 20;
const NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/** A deterministic multi-agent job (DESIGN §6). Reusable: `run` may be called many times, also concurrently. */
export class ConvergeJob {
  readonly #agents: readonly ResolvedAgent[];
  readonly #resolvers: readonly ResolvedResolver[];
  readonly #maxRounds: number;
  readonly #dominance: Dominance | undefined;
  readonly #seed: string;
  readonly #tools: ToolBox;
  readonly #poolOptions: JobPoolOptions | undefined;
  #pool: JobAgentPool | undefined;
  readonly #ownsPool: boolean;
  #closed = false;

  constructor(options: ConvergeJobOptions) {
    if (options === null || typeof options !== 'object') throw new ValidationError('options', 'must be { agents, maxRounds?, resolvers?, tools?, dominance? }');
    if (!Array.isArray(options.agents) || options.agents.length === 0) throw new ValidationError('agents', 'must be a non-empty array');
    const names = new Set<string>();
    this.#agents = options.agents
      .map((agent, i) => resolveAgent(agent, `agents[${i}]`, names))
      .sort((a, b) => compareNames(a.name, b.name));
    this.#resolvers = (options.resolvers ?? [])
      .map((resolver, i) => resolveResolver(resolver, `resolvers[${i}]`, names))
      .sort((a, b) => compareNames(a.name, b.name));
    const maxRounds = options.maxRounds ?? DEFAULT_MAX_ROUNDS;
    if (!Number.isInteger(maxRounds) || maxRounds < 1 || maxRounds > 100_000) throw new ValidationError('maxRounds', 'must be an integer in [1, 100000]');
    this.#maxRounds = maxRounds;
    this.#dominance = validateDominance(options.dominance);
    this.#seed = String(options.seed ?? '0');
    this.#tools = new ToolBox(options.tools ?? {}, { clock: options.clock, seed: this.#seed });
    const pool = options.pool;
    if (pool !== undefined && typeof (pool as JobAgentPool).run === 'function') {
      this.#pool = pool as JobAgentPool;
      this.#ownsPool = false;
    } else {
      this.#poolOptions = pool === undefined ? undefined : validateJobPoolOptions(pool);
      this.#ownsPool = true;
    }
  }

  /** The circuit state of `tool`'s breaker (undefined for an unknown tool). */
  breakerState(tool: string): CircuitState | undefined {
    return this.#tools.breaker(tool)?.state;
  }

  /**
   * Runs the job on `context` (a JSON object; not mutated) to a fixed point, `maxRounds`, or
   * cancellation (rejects with `JobCancelledError`). With `earlyAfterMs`, resolves by then with the
   * best answer so far and delivers the final one in `later`.
   */
  async run(context: JobContext, options: JobRunOptions = {}): Promise<JobResult> {
    if (this.#closed) throw new ClosedError('ConvergeJob');
    if (context === null || typeof context !== 'object' || Array.isArray(context)) throw new ValidationError('context', 'must be a JSON object');
    const input = jsonCopy(context, 'context');
    const early = options.earlyAfterMs;
    if (early !== undefined && (typeof early !== 'number' || !Number.isFinite(early) || early < 0)) throw new ValidationError('earlyAfterMs', 'must be a number >= 0');
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new ValidationError('signal', 'must be an AbortSignal');
    const run = new JobRun(this.#execution(), input, options.signal, undefined);
    const final = run.execute();
    if (early === undefined) return final;
    return raceEarly(run, final, early);
  }

  /** Stops the job's own pool (not one passed in). Idempotent; later runs reject with `ClosedError`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pool = this.#pool;
    this.#pool = undefined;
    if (this.#ownsPool && pool !== undefined) await pool.destroy();
  }

  /**
   * Re-runs a recorded job from its trace: the same agents and resolvers run again, tool calls are
   * answered from the recorded responses (no tool is called), eligibility is as recorded. Returns the
   * same result as the recorded run; an agent asking for a call the trace lacks → `ReplayDivergedError`.
   */
  static async replay(trace: JobTrace, options: { pool?: JobAgentPool | JobPoolOptions; signal?: AbortSignal } = {}): Promise<JobResult> {
    if (trace === null || typeof trace !== 'object' || trace.version !== 1 || !Array.isArray(trace.rounds)) throw new ValidationError('trace', 'must be a JobTrace (result.trace)');
    const t = trace.job;
    const job = new ConvergeJob({
      agents: t.agents.map((a) => ({ name: a.name, module: a.module, export: a.export, required: a.required, writes: a.writes, timeoutMs: a.timeoutMs ?? undefined })),
      resolvers: t.resolvers.map((r) => ({ name: r.name, module: r.module, export: r.export, keys: r.keys ?? undefined })),
      maxRounds: t.maxRounds,
      dominance: t.dominance ?? undefined,
      seed: t.seed,
      pool: options.pool,
    });
    try {
      return await new JobRun(job.#execution(), jsonCopy(trace.input, 'trace.input'), options.signal, trace).execute();
    } finally {
      await job.close();
    }
  }

  #execution(): Execution {
    return {
      agents: this.#agents,
      resolvers: this.#resolvers,
      maxRounds: this.#maxRounds,
      dominance: this.#dominance,
      seed: this.#seed,
      tools: this.#tools,
      pool: () => {
        if (this.#closed) throw new ClosedError('ConvergeJob');
        return (this.#pool ??= new PiscinaJobPool(this.#poolOptions));
      },
    };
  }
}

interface Execution {
  readonly agents: readonly ResolvedAgent[];
  readonly resolvers: readonly ResolvedResolver[];
  readonly maxRounds: number;
  readonly dominance: Dominance | undefined;
  readonly seed: string;
  readonly tools: ToolBox;
  pool(): JobAgentPool;
}

/** Where a run's tool answers come from: the live tools, or a recorded trace. */
type ToolSource = (request: ToolCallRequest, site: { agent: string; round: number; resolverKey?: string }, signal: AbortSignal) => Promise<ToolCallTrace>;

/** The state of one `run`. */
class JobRun {
  readonly #x: Execution;
  readonly #input: JobContext;
  readonly #signal: AbortSignal | undefined;
  readonly #replay: JobTrace | undefined;
  readonly #rounds: RoundTrace[] = [];
  readonly #conflicts: JobConflict[] = [];
  /** Each agent's last run outcome (agents that never ran are absent). */
  readonly #last = new Map<string, { ok: boolean; round: number; error?: TracedError }>();
  readonly #running = new Map<string, boolean>();
  /** Runs finished in the round in progress (for early answers). */
  readonly #inRound = new Map<string, AgentRunTrace>();
  #context: JobContext;
  /** Called whenever an agent or resolver run starts or ends, and between rounds (early answers wait on it). */
  onProgress: (() => void) | undefined;
  #round = 0;
  #runSeq = 0;
  #divergence: string | undefined;

  constructor(x: Execution, input: JobContext, signal: AbortSignal | undefined, replay: JobTrace | undefined) {
    this.#x = x;
    this.#input = input;
    this.#context = input;
    this.#signal = signal;
    this.#replay = replay;
  }

  async execute(): Promise<JobResult> {
    let fixedPoint = false;
    for (let round = 1; round <= this.#x.maxRounds; round++) {
      this.#round = round;
      this.#checkCancelled();
      const changed = await this.#runRound(round);
      if (this.#divergence !== undefined) throw new ReplayDivergedError(this.#divergence);
      if (changed === 0) {
        fixedPoint = true;
        break;
      }
    }
    return this.#result(fixedPoint ? 'fixed-point' : 'max-rounds');
  }

  /** The best answer so far (for `earlyAfterMs`). */
  snapshot(): JobResult {
    return this.#result('early');
  }

  #checkCancelled(): void {
    if (this.#signal?.aborted === true) throw new JobCancelledError(this.#round, { cause: this.#signal.reason });
  }

  async #runRound(round: number): Promise<number> {
    const context = this.#context;
    const recorded = this.#replay?.rounds[round - 1];
    if (this.#replay !== undefined && recorded === undefined) {
      this.#divergence = `the replay reached round ${round}; the trace has ${this.#replay.rounds.length}`;
      return 0;
    }
    const eligibleRuns: AgentRunTrace[] = [];
    const selected: ResolvedAgent[] = [];
    for (const agent of this.#x.agents) {
      if (recorded !== undefined) {
        if (recorded.eligible.includes(agent.name)) selected.push(agent);
        else {
          // Not selected but recorded: its eligible() threw in the recorded run.
          const failed = recorded.agents.find((run) => run.agent === agent.name);
          if (failed !== undefined) eligibleRuns.push(failed);
        }
        continue;
      }
      let eligible = true;
      try {
        eligible = agent.eligible === undefined || agent.eligible(context) === true;
      } catch (error) {
        eligibleRuns.push({ agent: agent.name, ok: false, eligible: true, error: traced(new AgentFailedError(agent.name, `eligible() threw: ${errorText(error)}`, { cause: error })), tools: [] });
        continue;
      }
      if (eligible) selected.push(agent);
    }
    this.#inRound.clear();
    for (const run of eligibleRuns) this.#finished(run, round);
    const ran = await Promise.all(
      selected.map(async (agent) => {
        const run = await this.#runAgent(agent, round, context, recorded);
        this.#finished(run, round);
        this.onProgress?.();
        return run;
      }),
    );
    const runs = [...eligibleRuns, ...ran].sort((a, b) => compareNames(a.agent, b.agent));
    this.#checkCancelled();

    const effects: AgentEffects[] = runs.filter((run) => run.ok && run.effects !== undefined).map((run) => ({ agent: run.agent, effects: run.effects! }));
    const claims = findConflicts(effects);
    const decided = new Map<string, ConflictResolution | null>();
    const toResolve: string[] = [];
    for (const [key, list] of claims) {
      const rule = ruleFor(this.#x.dominance, key);
      const resolution = rule === undefined ? null : applyDominance(rule, list);
      decided.set(key, resolution);
      if (resolution === null) toResolve.push(key);
    }
    const resolverRuns = await Promise.all(
      toResolve.map((key) => {
        const resolver = this.#x.resolvers.find((r) => r.keys === undefined || r.keys.includes(key));
        return resolver === undefined ? undefined : this.#runResolver(resolver, round, key, context, { round, key, claims: claims.get(key)! }, recorded);
      }),
    );
    this.#checkCancelled();
    const resolverTraces: ResolverRunTrace[] = [];
    toResolve.forEach((key, i) => {
      const run = resolverRuns[i];
      if (run === undefined) return;
      resolverTraces.push(run.trace);
      if (run.resolution !== null) decided.set(key, run.resolution);
    });
    const conflicts: JobConflict[] = [...claims].map(([key, list]) => ({ round, key, claims: list, resolution: decided.get(key) ?? null }));
    const applied = applyRound(context, effects, decided);
    this.#conflicts.push(...conflicts);
    this.#rounds.push({
      round,
      eligible: selected.map((agent) => agent.name),
      agents: runs,
      conflicts,
      resolvers: resolverTraces,
      rejected: applied.rejected,
      changed: applied.changed,
    });
    this.#context = applied.context;
    this.#inRound.clear();
    this.onProgress?.();
    return applied.changed.length;
  }

  #finished(run: AgentRunTrace, round: number): void {
    this.#inRound.set(run.agent, run);
    if (run.eligible) this.#last.set(run.agent, run.ok ? { ok: true, round } : { ok: false, round, error: run.error! });
  }

  /** Whether an early answer may be taken now: no required agent and no resolver is running. */
  get onlyOptionalRunning(): boolean {
    for (const required of this.#running.values()) if (required) return false;
    return true;
  }

  async #runAgent(agent: ResolvedAgent, round: number, context: JobContext, recorded: RoundTrace | undefined): Promise<AgentRunTrace> {
    const replayed = recorded?.agents.find((run) => run.agent === agent.name);
    if (recorded !== undefined && replayed === undefined) {
      this.#divergence = `round ${round}: agent ${agent.name} has no recorded run`;
    }
    // A recorded timeout is not re-enacted by waiting: the run is reproduced as recorded.
    if (replayed !== undefined && !replayed.ok && replayed.error?.failureClass === 'timeout' && replayed.error.code === 'CONVERGE_AGENT_FAILED') return replayed;
    const source = this.#toolSource(recorded === undefined ? undefined : (replayed?.tools ?? []));
    const task = { kind: 'agent' as const, module: agent.module, exportName: agent.exportName, name: agent.name, round, context };
    const run = await this.#runTask(task, agent.timeoutMs, source, { agent: agent.name, round });
    if (!run.outcome.ok) return { agent: agent.name, ok: false, eligible: true, error: run.error!, tools: run.tools };
    if (!run.outcome.eligible) return { agent: agent.name, ok: true, eligible: false, tools: run.tools };
    try {
      return { agent: agent.name, ok: true, eligible: true, effects: validateEffects(run.outcome.output), tools: run.tools };
    } catch (error) {
      return { agent: agent.name, ok: false, eligible: true, error: traced(new AgentFailedError(agent.name, `bad effects: ${errorText(error)}`, { cause: error })), tools: run.tools };
    }
  }

  async #runResolver(
    resolver: ResolvedResolver,
    round: number,
    key: string,
    context: JobContext,
    conflict: unknown,
    recorded: RoundTrace | undefined,
  ): Promise<{ trace: ResolverRunTrace; resolution: ConflictResolution | null }> {
    const replayed = recorded?.resolvers.find((run) => run.key === key);
    const source = this.#toolSource(recorded === undefined ? undefined : (replayed?.tools ?? []));
    const task = { kind: 'resolver' as const, module: resolver.module, exportName: resolver.exportName, name: resolver.name, round, context, conflict };
    const run = await this.#runTask(task, undefined, source, { agent: resolver.name, round, resolverKey: key });
    if (!run.outcome.ok) return { trace: { resolver: resolver.name, key, ok: false, error: run.error!, tools: run.tools }, resolution: null };
    const output = run.outcome.output;
    let resolution: ConflictResolution | null = null;
    let stored: unknown = null;
    try {
      if (output !== undefined && output !== null) {
        const o = output as { value?: unknown; remove?: unknown };
        if (o.remove === true) resolution = { by: 'resolver', resolver: resolver.name, op: 'remove' };
        else if (o.value !== undefined) resolution = { by: 'resolver', resolver: resolver.name, op: 'set', value: jsonCopy(o.value, 'value') };
        else throw new ValidationError('resolver', 'must return { value }, { remove: true } or null');
        stored = resolution.op === 'remove' ? { remove: true } : { value: resolution.value };
      }
    } catch (error) {
      const failed = traced(new AgentFailedError(resolver.name, `bad resolution: ${errorText(error)}`, { cause: error }));
      return { trace: { resolver: resolver.name, key, ok: false, error: failed, tools: run.tools }, resolution: null };
    }
    return { trace: { resolver: resolver.name, key, ok: true, output: stored, tools: run.tools }, resolution };
  }

  /** Runs one pool task with its tool port wired; waits for every tool call it started. */
  async #runTask(
    task: Omit<JobAgentTask, 'port'>,
    timeoutMs: number | undefined,
    source: ToolSource,
    site: { agent: string; round: number; resolverKey?: string },
  ): Promise<{ outcome: JobAgentOutcome; error?: TracedError; tools: ToolCallTrace[] }> {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(this.#signal?.reason);
    this.#signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            controller.abort(new Error('agent timeout'));
          }, timeoutMs);
    const { port1, port2 } = new MessageChannel();
    const calls: Promise<ToolCallTrace>[] = [];
    port1.on('message', (request: ToolCallRequest) => {
      const call = source(request, site, controller.signal);
      calls[request.seq] = call;
      void call.then((trace) => reply(port1, trace));
    });
    // One resolver may run for several keys at once: the entry is per run, not per name.
    const key = `${site.agent}@${site.round}#${this.#runSeq++}`;
    this.#running.set(key, task.kind === 'resolver' || this.#x.agents.find((a) => a.name === site.agent)?.required !== false);
    try {
      let outcome: JobAgentOutcome;
      try {
        outcome = await this.#x.pool().run({ ...task, port: port2 }, { signal: controller.signal });
      } catch (error) {
        if (this.#signal?.aborted === true) throw new JobCancelledError(this.#round, { cause: this.#signal.reason });
        const failure = timedOut
          ? new AgentFailedError(task.name, `timed out after ${timeoutMs} ms`)
          : new AgentFailedError(task.name, `its thread failed: ${errorText(error)}`, { cause: error });
        outcome = { ok: false, error: serializeError(failure) };
        if (timedOut) (outcome.error as { props?: Record<string, unknown> }).props = { ...outcome.error.props, failureClass: 'timeout' };
      }
      controller.abort();
      const tools = await Promise.all(calls.filter((call) => call !== undefined));
      this.#checkCancelled();
      return outcome.ok ? { outcome, tools } : { outcome, error: traced(deserializeError(outcome.error)), tools };
    } finally {
      clearTimeout(timer);
      this.#running.delete(key);
      this.#signal?.removeEventListener('abort', onAbort);
      port1.close();
    }
  }

  #toolSource(recorded: readonly ToolCallTrace[] | undefined): ToolSource {
    if (recorded === undefined) {
      return (request, site, signal) => this.#x.tools.call(request.tool, request.args, { agent: site.agent, round: site.round, seq: request.seq }, signal);
    }
    return async (request, site) => {
      const found = recorded[request.seq];
      if (found === undefined || found.tool !== request.tool || canonicalJson(found.args ?? null) !== canonicalJson(request.args ?? null)) {
        this.#divergence ??= `round ${site.round}: ${site.agent} called ${request.tool}(${canonicalJson(request.args ?? null)}) as call ${request.seq}; the trace has ${found === undefined ? 'no such call' : `${found.tool}(${canonicalJson(found.args ?? null)})`}`;
        return { seq: request.seq, tool: request.tool, args: request.args, ok: false, failure: { failureClass: 'rejected', message: 'not in the recorded trace' }, attempts: [{ outcome: 'rejected' }] };
      }
      return found;
    };
  }

  #result(kind: 'fixed-point' | 'max-rounds' | 'early'): JobResult {
    const x = this.#x;
    const failures: AgentFailure[] = [];
    const incomplete = new Set<string>();
    let anySucceeded = false;
    let anyFailed = false;
    let requiredFailed = false;
    let optionalFailed = false;
    for (const agent of x.agents) {
      const last = this.#last.get(agent.name);
      if (last === undefined) continue;
      if (last.ok) {
        anySucceeded = true;
        continue;
      }
      anyFailed = true;
      if (agent.required) requiredFailed = true;
      else optionalFailed = true;
      failures.push({ agent: agent.name, required: agent.required, round: last.round, error: last.error! });
      for (const key of agent.writes) incomplete.add(key);
    }
    const lastRound = this.#rounds.at(-1);
    const undecided = (lastRound?.conflicts ?? []).filter((c) => c.resolution === null);
    for (const conflict of undecided) incomplete.add(conflict.key);
    for (const rejected of lastRound?.rejected ?? []) incomplete.add(rejected.key);
    let pendingRequired = false;
    let pendingOptional = false;
    if (kind === 'early') {
      for (const running of this.#running.keys()) {
        const agent = x.agents.find((a) => running.startsWith(`${a.name}@`));
        if (agent === undefined) continue;
        if (agent.required) pendingRequired = true;
        else pendingOptional = true;
        for (const key of agent.writes) incomplete.add(key);
      }
    }
    let tier: JobTier;
    if (anyFailed && !anySucceeded) tier = 'none';
    else if (requiredFailed || undecided.length > 0 || pendingRequired) tier = 'incomplete';
    else if (optionalFailed || pendingOptional || lastRound?.rejected.length) tier = 'degraded';
    else tier = 'complete';
    let status: JobStatus;
    if (kind === 'early') status = 'partial';
    else if (kind === 'max-rounds') status = 'max_rounds';
    else if (tier === 'none') status = 'failed';
    else if (tier === 'incomplete') status = 'partial';
    else status = 'converged';
    let context = this.#context;
    if (kind === 'early' && this.#inRound.size > 0) {
      // The round in progress: what its finished agents said, merged as the round would merge it,
      // with any conflict among them left undecided (and its key marked incomplete).
      const done = [...this.#inRound.values()].filter((run) => run.ok && run.effects !== undefined).sort((a, b) => compareNames(a.agent, b.agent));
      const effects = done.map((run) => ({ agent: run.agent, effects: run.effects! }));
      const open = new Map<string, null>([...findConflicts(effects).keys()].map((key) => [key, null]));
      for (const key of open.keys()) incomplete.add(key);
      context = applyRound(context, effects, open).context;
    }
    const trace: JobTrace = {
      version: 1,
      job: {
        agents: x.agents.map((a) => ({ name: a.name, module: a.module, export: a.exportName, required: a.required, writes: a.writes, timeoutMs: a.timeoutMs ?? null })),
        resolvers: x.resolvers.map((r) => ({ name: r.name, module: r.module, export: r.exportName, keys: r.keys ?? null })),
        maxRounds: x.maxRounds,
        dominance: x.dominance ?? null,
        seed: x.seed,
      },
      input: this.#input,
      rounds: [...this.#rounds],
      outcome: kind === 'early' ? null : { status, tier, rounds: this.#rounds.length, context },
    };
    const result: JobResult = {
      status,
      tier,
      context,
      rounds: this.#rounds.length,
      conflicts: [...this.#conflicts],
      incomplete: [...incomplete].sort(),
      failures,
      trace,
    };
    return kind === 'early' ? { ...result, early: true } : result;
  }
}

/**
 * Resolves with the final result if it comes within `ms`; otherwise, once `ms` has passed and no
 * required agent (nor resolver) is running, with the best answer so far, which carries `later`.
 */
function raceEarly(run: JobRun, final: Promise<JobResult>, ms: number): Promise<JobResult> {
  return new Promise<JobResult>((resolve, reject) => {
    let settled = false;
    let due = false;
    const tryEarly = (): void => {
      if (settled || !due || !run.onlyOptionalRunning) return;
      settled = true;
      run.onProgress = undefined;
      // The caller may never look at `later`: mark it handled, and say so loudly if it fails.
      final.catch((error: unknown) => {
        if (!(error instanceof JobCancelledError)) process.emitWarning(`ConvergeJob: the final answer after an early one failed: ${errorText(error)}`, { code: 'CONVERGE_JOB_LATER_FAILED' });
      });
      resolve({ ...run.snapshot(), later: final });
    };
    const timer = setTimeout(() => {
      due = true;
      tryEarly();
    }, ms);
    run.onProgress = tryEarly;
    final.then(
      (result) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        resolve(result);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        reject(error as Error);
      },
    );
  });
}

function reply(port: MessagePort, trace: ToolCallTrace): void {
  const message: ToolCallReply = trace.ok
    ? { type: 'reply', seq: trace.seq, ok: true, value: trace.value }
    : { type: 'reply', seq: trace.seq, ok: false, error: serializeError(toolError(trace)) };
  try {
    port.postMessage(message);
  } catch {
    // The agent's thread is gone (it returned or was stopped): nobody waits for this answer.
  }
}

function toolError(trace: ToolCallTrace): Error {
  const failure = trace.failure!;
  const attempts = trace.attempts.length;
  return Object.assign(deserializeError({ name: 'ToolCallError', code: 'CONVERGE_TOOL_FAILED', message: `tool ${JSON.stringify(trace.tool)} ${failure.failureClass}: ${failure.message}` }), {
    tool: trace.tool,
    failureClass: failure.failureClass,
    attempts,
  });
}

function traced(error: unknown): TracedError {
  const e = error as { name?: unknown; code?: unknown; message?: unknown; failureClass?: unknown };
  const out: { -readonly [K in keyof TracedError]: TracedError[K] } = {
    name: typeof e.name === 'string' ? e.name : 'Error',
    code: typeof e.code === 'string' ? e.code : 'CONVERGE_UNKNOWN',
    message: typeof e.message === 'string' ? e.message : String(error),
  };
  if (e.failureClass === 'timeout' || e.failureClass === 'unavailable' || e.failureClass === 'rejected') out.failureClass = e.failureClass;
  return out;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function moduleHref(module: unknown, field: string): string {
  if (module instanceof URL) {
    if (module.protocol !== 'file:') throw new ValidationError(field, 'must be a file URL or an absolute path');
    return module.href;
  }
  if (typeof module !== 'string' || module === '') throw new ValidationError(field, 'must be a file URL or an absolute path');
  // data: URLs hold the module itself (self-contained specs and examples).
  if (module.startsWith('file:') || module.startsWith('data:')) return module;
  if (!module.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(module)) throw new ValidationError(field, `must be absolute (any process may load it), got ${JSON.stringify(module)}`);
  return pathToFileURL(module).href;
}

function checkName(name: unknown, field: string, names: Set<string>): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) throw new ValidationError(field, 'must be 1-128 characters of [A-Za-z0-9_.:-]');
  if (names.has(name)) throw new ValidationError(field, `${JSON.stringify(name)} is used twice (agent and resolver names are unique)`);
  names.add(name);
  return name;
}

function resolveAgent(agent: JobAgentDefinition, field: string, names: Set<string>): ResolvedAgent {
  if (agent === null || typeof agent !== 'object') throw new ValidationError(field, 'must be { name, module, required?, eligible?, writes? }');
  const name = checkName(agent.name, `${field}.name`, names);
  if (agent.required !== undefined && typeof agent.required !== 'boolean') throw new ValidationError(`${field}.required`, 'must be a boolean');
  if (agent.optional !== undefined && typeof agent.optional !== 'boolean') throw new ValidationError(`${field}.optional`, 'must be a boolean');
  if (agent.required !== undefined && agent.optional !== undefined && agent.required === agent.optional) throw new ValidationError(`${field}.optional`, 'contradicts required');
  if (agent.eligible !== undefined && typeof agent.eligible !== 'function') throw new ValidationError(`${field}.eligible`, 'must be a function (context) => boolean');
  if (agent.writes !== undefined && (!Array.isArray(agent.writes) || agent.writes.some((k) => typeof k !== 'string'))) throw new ValidationError(`${field}.writes`, 'must be an array of keys');
  if (agent.timeoutMs !== undefined && !(Number.isInteger(agent.timeoutMs) && agent.timeoutMs > 0)) throw new ValidationError(`${field}.timeoutMs`, 'must be a positive integer');
  return {
    name,
    module: moduleHref(agent.module, `${field}.module`),
    exportName: exportName(agent.export, `${field}.export`),
    required: agent.optional === true ? false : (agent.required ?? true),
    eligible: agent.eligible,
    writes: Object.freeze([...(agent.writes ?? [])].sort()),
    timeoutMs: agent.timeoutMs,
  };
}

function resolveResolver(resolver: JobResolverDefinition, field: string, names: Set<string>): ResolvedResolver {
  if (resolver === null || typeof resolver !== 'object') throw new ValidationError(field, 'must be { name, module, keys? }');
  const name = checkName(resolver.name, `${field}.name`, names);
  if (resolver.keys !== undefined && (!Array.isArray(resolver.keys) || resolver.keys.some((k) => typeof k !== 'string'))) throw new ValidationError(`${field}.keys`, 'must be an array of keys');
  return {
    name,
    module: moduleHref(resolver.module, `${field}.module`),
    exportName: exportName(resolver.export, `${field}.export`),
    keys: resolver.keys === undefined ? undefined : Object.freeze([...resolver.keys].sort()),
  };
}

function exportName(value: unknown, field: string): string {
  if (value === undefined) return 'default';
  if (typeof value !== 'string' || value === '') throw new ValidationError(field, 'must be a non-empty string');
  return value;
}
