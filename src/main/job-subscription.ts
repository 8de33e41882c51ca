/**
 * A job per matching event (DESIGN §6): the subscription's handler runs a ConvergeJob on a context
 * built from the event, so a converged engine episode can feed decisions. The handler's promise holds
 * the engine's quiescence until the job has finished and its decision (if any) has been emitted, so
 * "quiescent" still means "nothing left to decide".
 *
 * Built on main-thread handlers: the job's own agents already run on pool threads, and the job's
 * runtime must be one place (seed 001 §1). With `queue`, the handler only submits the job, and any
 * `runJobs` process (on any machine) runs it.
 */
import { ValidationError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import type { PagePredicate, NumericTolerance } from '../shared/predicates.js';
import type { Dispatch } from './dispatcher.js';
import type { ConvergeJob, JobResult } from './job.js';
import type { JobContext } from './job-merge.js';
import type { JobQueue, JobSpec } from './job-queue.js';

/** The part of the engine a job subscription uses. */
export interface JobSubscriptionEngine<S> {
  subscribe(options: { predicate?: PagePredicate; tolerance?: NumericTolerance; outputs?: PagePredicate[]; handler: (event: PageChangeEvent, dispatch: Dispatch) => Promise<void> }): Promise<S>;
  dispatchChange(events: PageChangeEvent | readonly PageChangeEvent[], options?: { causedBy?: string }): Promise<void>;
}

/** Options of {@link jobSubscription}. */
export interface JobSubscriptionOptions {
  readonly predicate?: PagePredicate;
  readonly tolerance?: NumericTolerance;
  /** Predicates of the events `emit` produces (for the engine's cycle detection). */
  readonly outputs?: PagePredicate[];
  /** Run in this process: the job, and the context per event (default `{ event }`). */
  readonly job?: ConvergeJob;
  readonly context?: (event: PageChangeEvent) => JobContext;
  /** Called with each finished job's result. */
  readonly onResult?: (result: JobResult, event: PageChangeEvent) => void | Promise<void>;
  /** Turns a result into changes fed back into the engine as derived events of the dispatch. */
  readonly emit?: (result: JobResult, event: PageChangeEvent) => PageChangeEvent | readonly PageChangeEvent[] | undefined | null;
  /** Or: submit a job per event to this queue (run by `runJobs` elsewhere); `spec` builds it. */
  readonly queue?: JobQueue;
  readonly spec?: (event: PageChangeEvent) => JobSpec;
  /** With `queue`: called with each submitted job's id. */
  readonly onSubmitted?: (jobId: string, event: PageChangeEvent) => void;
}

/** Subscribes a job per matching event. Resolves with the engine's subscription (unsubscribe it to stop). */
export async function jobSubscription<S>(engine: JobSubscriptionEngine<S>, options: JobSubscriptionOptions): Promise<S> {
  if (options === null || typeof options !== 'object') throw new ValidationError('options', 'must be { predicate, job | queue + spec, ... }');
  const { job, queue, spec } = options;
  if ((job === undefined) === (queue === undefined)) throw new ValidationError('job', 'give exactly one of job (run here) and queue (submit)');
  if (queue !== undefined && typeof spec !== 'function') throw new ValidationError('spec', 'must be a function (event) => JobSpec when queue is given');
  for (const name of ['context', 'onResult', 'emit', 'onSubmitted'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw new ValidationError(name, 'must be a function');
  }
  const contextOf = options.context ?? ((event: PageChangeEvent): JobContext => ({ event: { ...event } }));
  const handler = async (event: PageChangeEvent, dispatch: Dispatch): Promise<void> => {
    if (queue !== undefined) {
      const id = await queue.submitJob(spec!(event));
      options.onSubmitted?.(id, event);
      return;
    }
    const result = await job!.run(contextOf(event));
    await options.onResult?.(result, event);
    const out = options.emit?.(result, event);
    if (out !== undefined && out !== null) await feed(engine, dispatch, out);
  };
  const subscribe: Parameters<JobSubscriptionEngine<S>['subscribe']>[0] = { handler };
  if (options.predicate !== undefined) subscribe.predicate = options.predicate;
  if (options.tolerance !== undefined) subscribe.tolerance = options.tolerance;
  if (options.outputs !== undefined) subscribe.outputs = options.outputs;
  return engine.subscribe(subscribe);
}

/** Emits the decision as derived events of `dispatch` (through `dispatch.dispatchChange` where the engine offers it). */
function feed<S>(engine: JobSubscriptionEngine<S>, dispatch: Dispatch, events: PageChangeEvent | readonly PageChangeEvent[]): Promise<void> {
  const own = (dispatch as { dispatchChange?: (events: PageChangeEvent | readonly PageChangeEvent[]) => Promise<void> | void }).dispatchChange;
  if (typeof own === 'function') return Promise.resolve(own.call(dispatch, events));
  return engine.dispatchChange(events, { causedBy: dispatch.subscriptionId });
}
