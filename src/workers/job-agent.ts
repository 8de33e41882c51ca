/**
 * Runs one agent (or resolver) of a ConvergeJob inside a pool thread.
 *
 * An agent module exports a function `(context, ctx) => effects` (the export the agent names,
 * `default` unless told otherwise) and optionally `eligible(context) => boolean`. A resolver exports
 * `(conflict, context, ctx) => { value } | { remove: true } | null`. The context is a snapshot: the
 * agent describes changes as effects and the runtime merges them; it never writes the context.
 *
 * `ctx.callTool(name, args)` posts the call to the runtime on the task's port and resolves with the
 * runtime's answer, so timeouts, retries, breakers and the replay log all live in one place.
 */
import { pathToFileURL } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import { deserializeError, serializeError } from '../shared/errors.js';
import type { JobAgentOutcome, JobAgentTask, ToolCallReply, ToolCallRequest } from '../shared/job-protocol.js';

/** What an agent function receives besides the context. */
export interface AgentContext {
  readonly agent: string;
  readonly round: number;
  callTool(name: string, args?: unknown): Promise<unknown>;
}

type AgentModule = Record<string, unknown>;

const modules = new Map<string, Promise<AgentModule>>();

function load(module: string): Promise<AgentModule> {
  let loaded = modules.get(module);
  if (loaded === undefined) {
    const url = module.startsWith('file:') || module.startsWith('data:') ? module : pathToFileURL(module).href;
    loaded = import(url) as Promise<AgentModule>;
    // A module that failed to load may be fixed on disk before the next job: do not cache failures.
    loaded.catch(() => modules.delete(module));
    modules.set(module, loaded);
  }
  return loaded;
}

/** Wires `callTool` to the task's port: one pending promise per call, matched by `seq`. */
function toolCaller(port: MessagePort): { call: (name: string, args: unknown) => Promise<unknown>; close: () => void } {
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  let seq = 0;
  port.on('message', (reply: ToolCallReply) => {
    const waiter = pending.get(reply.seq);
    if (waiter === undefined) return;
    pending.delete(reply.seq);
    if (reply.ok) waiter.resolve(reply.value);
    else waiter.reject(deserializeError(reply.error));
  });
  return {
    call(name, args) {
      const request: ToolCallRequest = { type: 'call', seq: seq++, tool: String(name), args: args ?? null };
      return new Promise((resolve, reject) => {
        pending.set(request.seq, { resolve, reject });
        port.postMessage(request);
      });
    },
    close() {
      port.removeAllListeners('message');
      port.close();
    },
  };
}

export async function runJobAgentTask(task: JobAgentTask): Promise<JobAgentOutcome> {
  const tools = toolCaller(task.port);
  try {
    const loaded = await load(task.module);
    const fn = loaded[task.exportName];
    if (typeof fn !== 'function') throw new TypeError(`${task.module} has no exported function ${JSON.stringify(task.exportName)}`);
    const ctx: AgentContext = { agent: task.name, round: task.round, callTool: (name, args) => tools.call(name, args) };
    if (task.kind === 'resolver') {
      return { ok: true, eligible: true, output: await (fn as (c: unknown, x: unknown, y: AgentContext) => unknown)(task.conflict, task.context, ctx) };
    }
    const eligible = loaded.eligible;
    if (task.exportName !== 'eligible' && typeof eligible === 'function' && !(await (eligible as (c: unknown) => unknown)(task.context))) {
      return { ok: true, eligible: false, output: null };
    }
    return { ok: true, eligible: true, output: await (fn as (c: unknown, x: AgentContext) => unknown)(task.context, ctx) };
  } catch (error) {
    return { ok: false, error: serializeError(error) };
  } finally {
    tools.close();
  }
}
