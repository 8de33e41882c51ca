/**
 * `converge worker --pg <url> [--pool <id>] (--module <file> | --jobs | --tasks)`: a worker process, on this
 * machine or another, that claims tasks from a PostgreSQL-backed TaskManager and runs them: with
 * `--module`, the module's export is called as `(payload, { task, signal })` and its result reported
 * (a throw fails the task). The claim is renewed while the task runs; Ctrl-C (or SIGTERM) stops
 * claiming, lets the running task finish and exits 0. With `--jobs` it is a ConvergeJobs runtime
 * (`runJobs` over the PostgreSQL JobQueue): a job whose runtime died is run again by another. With
 * `--tasks` it runs the dispatches of engines' task subscriptions left in that store
 * (`runTaskWorker`: engines with `store` and `pool: { runLocally: false }`). A `--module` worker
 * claims only tasks without a topic (or of `--topic`): never a job's or a dispatch's.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { booleanFlag, integer, nonEmpty, UsageError, valueFlag } from './args.js';
import { CliError, type CliContext, defineCommand } from './context.js';
import type { TaskFilter, TaskManager } from '../../coordination/index.js';

/** A PostgreSQL connection URL. */
function pgUrl(text: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${flag} must be a PostgreSQL URL such as postgres://user@host:5432/db, got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new UsageError(`${flag} must start with postgres:// or postgresql://, got ${JSON.stringify(text)}`);
  return text;
}

/** An existing module file. */
function moduleFile(text: string, flag: string): string {
  const path = resolve(text);
  if (!existsSync(path) || !statSync(path).isFile()) throw new UsageError(`${flag}: no such file: ${path} (give the module that exports the task function)`);
  return path;
}

/** Where the URL points, without its password, for messages. */
function describeTarget(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}${parsed.pathname}`;
}

/** The first `code` along an error's cause chain. */
function codeOf(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e !== undefined && e !== null && depth < 8; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && !e.code.startsWith('CONVERGE_')) return e.code;
  }
  return (error as { code?: string } | undefined)?.code;
}

/** One line that says why PostgreSQL cannot be used and what to do. */
export function databaseProblem(url: string, error: unknown): CliError {
  const where = describeTarget(url);
  const code = codeOf(error);
  const what: Record<string, string> = {
    ECONNREFUSED: `nothing listens at ${where}: start PostgreSQL there, or pass the right URL with --pg`,
    ENOTFOUND: `the host of ${where} is unknown: check the host name in --pg`,
    EAI_AGAIN: `the host of ${where} cannot be resolved right now: check the network and the host name in --pg`,
    ETIMEDOUT: `${where} does not answer: check that PostgreSQL runs there and that the network lets you through`,
    EHOSTUNREACH: `${where} is unreachable: check the network and the host in --pg`,
    '28P01': `PostgreSQL at ${where} refused the password: fix the user and password in --pg`,
    '28000': `PostgreSQL at ${where} refused the login: check the user in --pg and pg_hba.conf`,
    '3D000': `the database in --pg does not exist at ${where}: create it (createdb) or name another`,
    CONVERGE_MISSING_DEPENDENCY: 'the PostgreSQL driver is not installed: run `npm install pg`',
  };
  const message = code !== undefined ? what[code] : undefined;
  return new CliError(`converge worker: ${message ?? `cannot use PostgreSQL at ${where}: ${(error as Error)?.message ?? String(error)}`}`);
}

/** Waits `ms`, or less if `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((done) => {
    if (signal.aborted) return done();
    const timer = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      done();
    }
    signal.addEventListener('abort', finish, { once: true });
  });
}

type TaskFunction = (payload: unknown, context: { task: unknown; signal: AbortSignal }) => unknown;

/** The export `name` of the module at `path`, which must be a function. */
async function loadTaskFunction(path: string, name: string): Promise<TaskFunction> {
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    throw new CliError(`converge worker: cannot load ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const found = loaded[name];
  if (typeof found !== 'function') throw new CliError(`converge worker: ${path} has no function export "${name}" (exports: ${Object.keys(loaded).slice(0, 8).join(', ') || 'none'}); pick one with --export`, 2);
  return found as TaskFunction;
}

/** Claims and runs tasks one at a time until `context.signal` aborts, renewing each claim while it runs. */
async function claimLoop(tasks: TaskManager, agent: string, filter: TaskFilter, fn: TaskFunction, idleMs: number, context: CliContext): Promise<void> {
  let idle = 50;
  while (!context.signal.aborted) {
    const task = await tasks.claimNext(agent, filter);
    if (task === null) {
      await pause(idle, context.signal);
      idle = Math.min(idleMs, idle * 2);
      continue;
    }
    idle = 50;
    const holder = { fencingToken: task.fencingToken };
    const renew = setInterval(() => void tasks.renewClaim(agent, task.id, holder).catch(() => undefined), Math.max(100, Math.floor((task.claimTtlMs ?? 30_000) / 3)));
    const started = performance.now();
    try {
      const result = await fn(task.payload, { task, signal: context.signal });
      await tasks.report(agent, task.id, result === undefined ? null : result, holder);
      context.out(`${context.styles.green('done')}   ${task.id} in ${(performance.now() - started).toFixed(0)} ms`);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      await tasks.failTask(task.id, reason, { ...holder, agentId: agent }).catch(() => undefined);
      context.err(`${context.errorStyles.red('failed')} ${task.id}: ${reason}`);
    } finally {
      clearInterval(renew);
    }
  }
}

export const worker = defineCommand({
  spec: {
    name: 'worker',
    summary: 'Claim and run tasks or ConvergeJobs from PostgreSQL (a worker on this or another machine).',
    details:
      'With --module FILE, each claimed task runs as `await fn(payload, { task, signal })`, fn being the\n' +
      "module's export (--export, default `default`); its result is reported, a throw fails the task.\n" +
      'With --jobs it runs ConvergeJobs from the JobQueue in that database; a job whose worker died\n' +
      'is run again by another once its claim expires. With --tasks it runs the dispatches of engines\'\n' +
      'task subscriptions kept in that database (engines with `store` and `pool: { runLocally: false }`).\n' +
      'A --module worker takes only tasks without a topic (or of --topic). Ctrl-C stops claiming,\n' +
      'finishes what runs, exits.',
    flags: {
      pg: valueFlag('URL', 'PostgreSQL connection URL (postgres://user@host:5432/db)', { parse: pgUrl }),
      pool: valueFlag('ID', 'claim only tasks of this pool', { parse: nonEmpty }),
      module: valueFlag('FILE', 'module whose export runs each task', { parse: moduleFile }),
      export: valueFlag('NAME', 'the export of --module to call', { defaultText: 'default', parse: nonEmpty }),
      jobs: booleanFlag('run ConvergeJobs (JobQueue) instead of a module'),
      tasks: booleanFlag("run engines' task-subscription dispatches (runTaskWorker) instead of a module"),
      topic: valueFlag('NAME', 'with --jobs: the queue topic; with --module: claim only tasks of this topic', { defaultText: 'converge.job', parse: nonEmpty }),
      concurrency: valueFlag('N', 'with --jobs or --tasks: run at once', { defaultText: '1 (--tasks: 4)', parse: integer(1, 1024) }),
      agent: valueFlag('ID', 'this worker’s agent id', { defaultText: '<host>-<pid>-<random>', parse: nonEmpty }),
      schema: valueFlag('NAME', 'PostgreSQL schema of the task tables', { defaultText: 'converge', parse: nonEmpty }),
      'idle-ms': valueFlag('N', 'longest pause between polls when there is no work', { defaultText: '1000', parse: integer(10, 60_000) }),
    },
    check({ flags }) {
      if (flags.pg === undefined) throw new UsageError('--pg is required (postgres://user@host:5432/db)');
      const modes = [flags.module !== undefined, flags.jobs === true, flags.tasks === true].filter(Boolean).length;
      if (modes > 1) throw new UsageError('give one of --module, --jobs or --tasks');
      if (modes === 0) throw new UsageError('give --module FILE (a task function), --jobs or --tasks');
      if (flags.export !== undefined && flags.module === undefined) throw new UsageError('--export goes with --module');
      if (flags.module === undefined && flags.pool !== undefined) throw new UsageError(`--pool goes with --module (${flags.jobs === true ? 'jobs are claimed by topic: --topic' : 'dispatches are claimed by topic'})`);
      if (flags.tasks === true && flags.topic !== undefined) throw new UsageError('--topic goes with --jobs or --module');
      if (flags.module !== undefined && flags.concurrency !== undefined) throw new UsageError('--concurrency goes with --jobs or --tasks');
    },
    examples: [
      'converge worker --pg postgres://app@db:5432/app --pool render --module ./render-task.js',
      'converge worker --pg postgres://app@db:5432/app --jobs --concurrency 4',
      'converge worker --pg postgres://app@db:5432/app --tasks',
    ],
  },
  async run({ flags }, context: CliContext) {
    const url = flags.pg!;
    const fn = flags.module === undefined ? undefined : await loadTaskFunction(flags.module, flags.export ?? 'default');
    let coordination: typeof import('../../coordination/index.js');
    try {
      coordination = await import('../../coordination/index.js');
    } catch (error) {
      throw databaseProblem(url, error);
    }
    const store = new coordination.PostgresStore({ connectionString: url, schema: flags.schema ?? 'converge' });
    const tasks = new coordination.TaskManager({ store });
    const pools = new coordination.PoolManager({ store });
    let joined = false;
    const agent = flags.agent ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    try {
      try {
        await tasks.listPendingTasks({ refreshFromStore: true });
      } catch (error) {
        throw databaseProblem(url, error);
      }
      if (flags.tasks === true) {
        const { runTaskWorker } = await import('../colony-worker.js');
        context.out(`${context.styles.bold('converge worker')} ${agent}: running task-subscription dispatches at ${describeTarget(url)}; Ctrl-C to stop`);
        const running = runTaskWorker({ store, agentId: agent, concurrency: flags.concurrency ?? 4, signal: context.signal });
        await new Promise<void>((resolve) => {
          if (context.signal.aborted) resolve();
          else context.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        await running.stop();
        const { completed, failed } = running.stats();
        context.out(`converge worker ${agent}: stopped (${completed} completed, ${failed} failed)`);
        return 0;
      }
      if (fn === undefined) {
        // ConvergeJobs: jobs are tasks of a topic; runJobs claims, renews, reports and re-runs lost ones.
        const { runJobs } = await import('../job-queue.js');
        context.out(`${context.styles.bold('converge worker')} ${agent}: running jobs (topic ${flags.topic ?? 'converge.job'}) at ${describeTarget(url)}; Ctrl-C to stop`);
        const summary = await runJobs({
          store,
          ...(flags.topic === undefined ? {} : { topic: flags.topic }),
          concurrency: flags.concurrency ?? 1,
          runtimeId: agent,
          signal: context.signal,
          onJob: (event) => {
            if (event.type === 'started') context.out(`started ${event.jobId} (attempt ${event.attempt})`);
            else if (event.type === 'completed') context.out(`${context.styles.green('done')}   ${event.jobId}: ${event.result.status} after ${event.result.rounds} rounds`);
            else if (event.type === 'failed') context.err(`${context.errorStyles.red('failed')} ${event.jobId}: ${event.error.message}`);
            else context.err(`${context.errorStyles.yellow('lost')}   ${event.jobId}: its claim expired or it was cancelled; result discarded`);
          },
        });
        context.out(`converge worker ${agent}: stopped (${summary.completed} completed, ${summary.failed} failed, ${summary.lost} lost)`);
        return 0;
      }
      if (flags.pool !== undefined) {
        // Pooled tasks are visible only to pool members: join, and leave when stopping.
        if (!(await pools.joinPool(flags.pool, agent))) {
          const exists = (await pools.getPool(flags.pool)) !== null;
          throw new CliError(
            exists
              ? `converge worker: pool ${flags.pool} refused ${agent} (its admission policy or trust threshold): use an agent id it admits (--agent)`
              : `converge worker: there is no pool ${flags.pool} in schema ${flags.schema ?? 'converge'} at ${describeTarget(url)}: create it first (PoolManager.createPool) or pick another --pool`,
          );
        }
        joined = true;
      }
      context.out(`${context.styles.bold('converge worker')} ${agent}: claiming${flags.pool === undefined ? '' : ` from pool ${flags.pool}`} at ${describeTarget(url)}; Ctrl-C to stop`);
      // Only tasks meant for a module: without a topic, or of --topic (never a job or a dispatch).
      const filter: TaskFilter = {
        ...(flags.pool === undefined ? {} : { poolIds: [flags.pool] }),
        ...(flags.topic === undefined ? { topics: [] } : { topics: [flags.topic], topicRequired: true }),
      };
      await claimLoop(tasks, agent, filter, fn, flags['idle-ms'] ?? 1000, context);
      context.out(`converge worker ${agent}: stopped`);
      return 0;
    } finally {
      if (joined) await pools.leavePool(flags.pool!, agent).catch(() => undefined);
      await pools.close().catch(() => undefined);
      await tasks.close().catch(() => undefined);
      await store.close().catch(() => undefined);
    }
  },
});
