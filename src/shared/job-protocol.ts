/**
 * What the job runtime (main thread, src/main/job*.ts) and its agent threads (src/workers/job*.ts)
 * say to each other, and the job errors that cross that boundary.
 *
 * One agent run is one pool task ({@link JobAgentTask}). The task carries a MessagePort on which
 * the agent's thread asks the runtime to call a tool ({@link ToolCallRequest}) and the runtime
 * answers ({@link ToolCallReply}): tools always execute on the runtime side, where their timeouts,
 * retries and circuit breakers live and where their responses are recorded for replay.
 */
import type { MessagePort } from 'node:worker_threads';
import { ConvergeError, registerErrorClass, type SerializedError } from './errors.js';

/** How a tool call failed: it took too long, the tool was down (or its breaker open), or it said no. */
export type ToolFailureClass = 'timeout' | 'unavailable' | 'rejected';

/** Every failure class, most transient first. */
export const TOOL_FAILURE_CLASSES: readonly ToolFailureClass[] = Object.freeze(['timeout', 'unavailable', 'rejected']);

/** Stable codes of the job errors (the shared `ErrorCode` table belongs to the engine core). */
export const JobErrorCode = {
  TOOL_FAILED: 'CONVERGE_TOOL_FAILED',
  CANCELLED: 'CONVERGE_CANCELLED',
  REPLAY_DIVERGED: 'CONVERGE_REPLAY_DIVERGED',
  AGENT_FAILED: 'CONVERGE_AGENT_FAILED',
} as const;

/**
 * A tool call failed for good (after its retries, or at once when its circuit breaker is open or
 * the tool rejected the call). Code `CONVERGE_TOOL_FAILED`; `failureClass` says why. A tool handler
 * may throw one with `failureClass: 'rejected'` to refuse a call without retries.
 */
export class ToolCallError extends ConvergeError {
  readonly tool: string;
  readonly failureClass: ToolFailureClass;
  readonly attempts: number;
  constructor(tool: string, failureClass: ToolFailureClass, message: string, options: { attempts?: number; cause?: unknown } = {}) {
    super(`tool ${JSON.stringify(tool)} ${failureClass}: ${message}`, { code: JobErrorCode.TOOL_FAILED, cause: options.cause });
    this.tool = tool;
    this.failureClass = failureClass;
    this.attempts = options.attempts ?? 1;
  }
}

/** A job run was cancelled through its `signal`. Code `CONVERGE_CANCELLED`. */
export class JobCancelledError extends ConvergeError {
  readonly round: number;
  constructor(round: number, options: { cause?: unknown } = {}) {
    super(`job cancelled in round ${round}`, { code: JobErrorCode.CANCELLED, cause: options.cause });
    this.round = round;
  }
}

/** A replay asked for something the recorded trace does not hold (the agents changed). */
export class ReplayDivergedError extends ConvergeError {
  constructor(message: string) {
    super(`replay diverged from the trace: ${message}`, { code: JobErrorCode.REPLAY_DIVERGED });
  }
}

/** An agent run ended without effects: its module failed, timed out or returned bad effects. */
export class AgentFailedError extends ConvergeError {
  readonly agent: string;
  constructor(agent: string, message: string, options: { cause?: unknown } = {}) {
    super(`agent ${JSON.stringify(agent)}: ${message}`, { code: JobErrorCode.AGENT_FAILED, cause: options.cause });
    this.agent = agent;
  }
}

registerErrorClass(ToolCallError);
registerErrorClass(JobCancelledError);
registerErrorClass(ReplayDivergedError);
registerErrorClass(AgentFailedError);

/** One pool task: run an agent (or a resolver) module once against a context snapshot. */
export interface JobAgentTask {
  readonly kind: 'agent' | 'resolver';
  /** File URL of the agent's module. */
  readonly module: string;
  /** The module export to call (`default` unless the agent says otherwise). */
  readonly exportName: string;
  /** The agent's (or resolver's) name. */
  readonly name: string;
  readonly round: number;
  readonly context: Record<string, unknown>;
  /** For resolvers: the conflict to decide. */
  readonly conflict?: unknown;
  /** Tool calls go out on this port (transferred with the task). */
  readonly port: MessagePort;
}

/** What the agent's thread returns for a {@link JobAgentTask}. */
export type JobAgentOutcome =
  | { readonly ok: true; readonly eligible: boolean; readonly output: unknown }
  | { readonly ok: false; readonly error: SerializedError };

/** Agent thread → runtime: call a tool. `seq` numbers the agent run's calls from 0 in call order. */
export interface ToolCallRequest {
  readonly type: 'call';
  readonly seq: number;
  readonly tool: string;
  readonly args: unknown;
}

/** Runtime → agent thread: a tool call's final outcome. */
export type ToolCallReply =
  | { readonly type: 'reply'; readonly seq: number; readonly ok: true; readonly value: unknown }
  | { readonly type: 'reply'; readonly seq: number; readonly ok: false; readonly error: SerializedError };
