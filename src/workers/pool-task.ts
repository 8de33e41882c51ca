/**
 * Runs one dispatch of a `task` subscription inside a colony pool thread.
 *
 * The task gets `ctx.dispatchChange(events)`, which writes straight into the engine's ingest ring
 * from this thread (blocking this thread, never the embedder's, if the ring is full). The write is
 * reserved before the task's promise settles, and the main thread acknowledges the dispatch only
 * after that, so changes a task emits are counted before its own dispatch is released — the same
 * rule as for main-thread handlers.
 */
import { pathToFileURL } from 'node:url';
import { ValidationError } from '../shared/errors.js';
import { type PageChangeEvent, validateEvents } from '../shared/events.js';
import { FrameEncoder } from '../shared/framing.js';
import { IngestTag, MAX_EVENTS_PER_FRAME, type PoolTaskMessage, type PoolWorkerData } from '../shared/protocol.js';
import { Ring, RingProducer } from '../shared/ring.js';

/** What a task function receives besides the event. */
export interface TaskContext {
  readonly dispatch: PoolTaskMessage['dispatch'];
  dispatchChange(events: PageChangeEvent | readonly PageChangeEvent[]): void;
}

type TaskFunction = (event: PageChangeEvent, ctx: TaskContext) => unknown;

export function createPoolTaskRunner(data: PoolWorkerData): (task: PoolTaskMessage) => Promise<unknown> {
  const ring = new Ring(data.ingest);
  const producer = new RingProducer(ring, { onFull: 'wait' });
  const encoder = new FrameEncoder();
  const modules = new Map<string, Promise<Record<string, unknown>>>();

  async function load(module: string, name: string): Promise<TaskFunction> {
    let loaded = modules.get(module);
    if (loaded === undefined) {
      const url = module.startsWith('file:') ? module : pathToFileURL(module).href;
      loaded = import(url) as Promise<Record<string, unknown>>;
      modules.set(module, loaded);
    }
    const fn = (await loaded)[name];
    if (typeof fn !== 'function') throw new ValidationError('subscription.task.name', `${module} has no exported function ${JSON.stringify(name)}`);
    return fn as TaskFunction;
  }

  return async function runPoolTask(task: PoolTaskMessage): Promise<unknown> {
    const fn = await load(task.module, task.name);
    const cause = task.dispatch.subscriptionId;
    const ctx: TaskContext = {
      dispatch: task.dispatch,
      dispatchChange(events) {
        const now = Date.now();
        const list = validateEvents(events).map((e) => (e.ts === undefined ? { ...e, ts: now } : e));
        const frames: Uint8Array[] = [];
        for (let i = 0; i < list.length; i += MAX_EVENTS_PER_FRAME / 2) {
          frames.push(encoder.encodeEvents(IngestTag.EVENTS, { cause }, list.slice(i, i + MAX_EVENTS_PER_FRAME / 2)));
        }
        producer.writeSync(frames);
      },
    };
    return fn(task.event, ctx);
  };
}
