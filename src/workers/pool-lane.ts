/**
 * A lane: the loop a colony pool thread runs while there is work. It claims tasks from the shared
 * task table (CAS, see `task-table.ts`), runs them, writes their outcome back into the slot and
 * claims the next one at once — a busy thread never waits for a message or a wake-up. With nothing
 * to claim it parks on the table's SEQ word (`Atomics.waitAsync`, so running async tasks go on), and
 * after `lingerMs` with nothing running it retires, which ends its Piscina task and lets the thread
 * go idle (unref'd).
 */
import { ClosedError, InvalidStateError, serializeError, ValidationError } from '../shared/errors.js';
import { eventWithDefaults, type PageChangeEvent, validateEvents } from '../shared/events.js';
import { FrameEncoder } from '../shared/framing.js';
import {
  type ColonyWorkerContext,
  type LaneMessage,
  type LaneStart,
  type MainMessage,
  type TaskContext,
  TaskKind,
  type TaskOutcome,
  type TaskPayload,
} from '../shared/pool-protocol.js';
import { IngestTag, MAX_EVENTS_PER_FRAME } from '../shared/protocol.js';
import { Ring, RingProducer } from '../shared/ring.js';
import { SlotFlag, SlotState, TableSlot, TaskTable, tablePackr } from '../shared/task-table.js';

/** Tasks run back to back before the lane yields to its event loop (port messages, timers). */
const TASKS_PER_TURN = 256;
/** Queue checks an idle lane makes before it parks (a few microseconds). */
const SPIN_CHECKS = 2_000;
/** Park timeout while tasks are running (they finish by resolving, which wakes the loop anyway). */
const BUSY_PARK_MS = 1000;

/** Per-thread state shared by the lanes a thread runs over its life. */
export interface LaneEnv {
  readonly ingest: SharedArrayBuffer | undefined;
  /** Where a subscription task's derived events go when set (the engine's ack ring). */
  readonly acks?: SharedArrayBuffer | undefined;
}

type Fn = (...args: unknown[]) => unknown;

const modules = new Map<string, Promise<Record<string, unknown>>>();
/** Resolved functions by `module#name`, so a hot task skips the promise of its module. */
const resolved = new Map<string, Fn>();

function loadModule(module: string): Promise<Record<string, unknown>> {
  let loaded = modules.get(module);
  if (loaded === undefined) {
    loaded = import(module) as Promise<Record<string, unknown>>;
    modules.set(module, loaded);
  }
  return loaded;
}

async function loadFunction(module: string, name: string): Promise<Fn> {
  const key = `${module}#${name}`;
  const hit = resolved.get(key);
  if (hit !== undefined) return hit;
  let loaded: Record<string, unknown>;
  try {
    loaded = await loadModule(module);
  } catch (error) {
    modules.delete(module);
    throw new ValidationError('task.filename', `cannot load task module ${module}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
  const fn = loaded[name];
  if (typeof fn !== 'function') throw new ValidationError('task.name', `${module} has no exported function ${JSON.stringify(name)}`);
  resolved.set(key, fn as Fn);
  return fn as Fn;
}

interface Running {
  readonly controller: AbortController;
  inbox: InboxQueue | undefined;
  emitted: boolean;
}

/** Runs one lane until it retires. Resolves normally; a crash of the thread rejects the Piscina task. */
export async function runLane(start: LaneStart, env: LaneEnv): Promise<void> {
  const table = new TaskTable(start.table);
  const port = start.port;
  const lane = start.lane;
  const running = new Map<number, Running>();
  const fetches = new Map<number, (payload: TaskPayload) => void>();
  let producer: RingProducer | undefined;
  let derivedProducer: RingProducer | undefined;
  let encoder: FrameEncoder | undefined;
  let wakeLoop: (() => void) | undefined;

  const post = (message: LaneMessage): void => {
    try {
      port.postMessage(message);
    } catch {
      // The main thread closed the port (pool destroyed): nothing to tell it any more.
    }
  };

  port.on('message', (message: MainMessage) => {
    switch (message.t) {
      case 'abort':
        running.get(message.slot)?.controller.abort(new ClosedError('colony task'));
        break;
      case 'inbox': {
        const entry = running.get(message.slot);
        if (entry !== undefined) for (const m of message.messages) inboxOf(entry).push(m);
        break;
      }
      case 'payload':
        fetches.get(message.slot)?.(message.payload);
        fetches.delete(message.slot);
        break;
      default:
        message satisfies never;
    }
  });
  // The port must not keep the thread's event loop alive on its own: the lane's promise does.
  port.unref();

  function inboxOf(entry: Running): InboxQueue {
    entry.inbox ??= new InboxQueue(entry.controller.signal);
    return entry.inbox;
  }

  /** `derived`: the events of a subscription task's dispatch, which go to the ack ring when there is one. */
  function writeEvents(meta: unknown, events: PageChangeEvent | readonly PageChangeEvent[], derived = false): void {
    if (env.ingest === undefined) throw new ClosedError('ingest ring (this pool has no engine attached)');
    producer ??= new RingProducer(new Ring(env.ingest), { onFull: 'wait' });
    if (derived && env.acks !== undefined) derivedProducer ??= new RingProducer(new Ring(env.acks), { onFull: 'wait' });
    encoder ??= new FrameEncoder();
    const list = stamped(events);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < list.length; i += MAX_EVENTS_PER_FRAME / 2) {
      frames.push(encoder.encodeEvents(IngestTag.EVENTS, meta, list.slice(i, i + MAX_EVENTS_PER_FRAME / 2)));
    }
    if (!derived || derivedProducer === undefined) {
      producer.writeSync(frames);
      return;
    }
    // Derived events go to the ack ring (a frame too large for it, rarely, to the ingest ring); the
    // convergence worker parks on the ingest ring's signal only, so nudge it.
    for (const frame of frames) (frame.length <= derivedProducer.ring.maxFrameBytes ? derivedProducer : producer).writeSync(frame);
    producer.ring.nudge();
  }

  function finish(slot: number, entry: Running | undefined, outcome: TaskOutcome): void {
    running.delete(slot);
    let bytes: Uint8Array;
    try {
      bytes = tablePackr.pack(outcome);
    } catch (error) {
      outcome = [false, serializeError(new ValidationError('result', `the task's result cannot be sent back: ${(error as Error).message}`))];
      bytes = tablePackr.pack(outcome);
    }
    const fits = table.writeBytes(slot, bytes);
    const state = outcome[0] ? SlotState.DONE : SlotState.FAILED;
    if (fits && (entry === undefined || !entry.emitted)) {
      table.complete(slot, state);
      if (table.takeMainWake()) post({ t: 'wake' });
      return;
    }
    // Through the port: after this task's emits (same port, in order), or because it did not fit.
    table.setState(slot, state);
    post(fits ? { t: 'done', slot } : { t: 'done', slot, outcome });
  }

  async function payloadOf(slot: number): Promise<TaskPayload> {
    const read = table.read(slot);
    if (read !== undefined) return read.value as TaskPayload;
    return new Promise<TaskPayload>((resolve) => {
      fetches.set(slot, resolve);
      post({ t: 'fetch', slot });
    });
  }

  /** Starts the task in `slot`. Returns its promise, or undefined when it finished synchronously. */
  function run(slot: number): Promise<void> | undefined {
    const read = table.read(slot);
    if (read !== undefined) {
      const payload = read.value as TaskPayload;
      // Fast path: a plain call whose function is already resolved and returns a value.
      if (payload[0] === TaskKind.CALL) {
        const fn = resolved.get(`${payload[1]}#${payload[2]}`);
        if (fn !== undefined) {
          let value: unknown;
          try {
            value = fn(...payload[3]);
          } catch (error) {
            finish(slot, undefined, [false, serializeError(error)]);
            return undefined;
          }
          if (!isThenable(value)) {
            finish(slot, undefined, [true, value]);
            return undefined;
          }
          return Promise.resolve(value).then(
            (v) => finish(slot, undefined, [true, v]),
            (error: unknown) => finish(slot, undefined, [false, serializeError(error)]),
          );
        }
      }
    }
    return runSlow(slot);
  }

  async function runSlow(slot: number): Promise<void> {
    const entry: Running = { controller: new AbortController(), inbox: undefined, emitted: false };
    running.set(slot, entry);
    try {
      const flags = table.flags(slot);
      if ((flags & SlotFlag.ABORT) !== 0) entry.controller.abort(new ClosedError('colony task'));
      const payload = await payloadOf(slot);
      if ((flags & SlotFlag.INBOX) !== 0) post({ t: 'inbox?', slot });
      let value: unknown;
      switch (payload[0]) {
        case TaskKind.CALL: {
          const fn = await loadFunction(payload[1], payload[2]);
          value = await fn(...payload[3]);
          break;
        }
        case TaskKind.SUBSCRIPTION: {
          const fn = await loadFunction(payload[1], payload[2]);
          const dispatch = payload[4];
          const meta = { cause: dispatch.subscriptionId, parent: dispatch.id };
          // Without an engine in this process (a `runTaskWorker` process), what the task emits is
          // collected and returned; the engine writes it into its ring before it acknowledges.
          const collected: PageChangeEvent[] | undefined = env.ingest === undefined ? [] : undefined;
          const ctx: TaskContext = {
            dispatch,
            signal: entry.controller.signal,
            dispatchChange: (events) => {
              if (collected === undefined) writeEvents(meta, events, true);
              else collected.push(...stamped(events));
            },
          };
          await fn(payload[3], ctx);
          value = collected === undefined ? null : { events: collected };
          break;
        }
        case TaskKind.COLONY: {
          const fn = await loadFunction(payload[1], payload[2]);
          const ctx: ColonyWorkerContext = {
            workerId: payload[4],
            input: payload[5],
            signal: entry.controller.signal,
            inbox: { [Symbol.asyncIterator]: () => inboxOf(entry).iterator() },
            emit: (type, data) => {
              if (typeof type !== 'string' || type.length === 0) throw new ValidationError('type', 'ctx.emit needs an event type (a non-empty string)');
              entry.emitted = true;
              post({ t: 'emit', slot, type, data });
            },
            dispatchChange: (events) => {
              if (!payload[6]) throw new InvalidStateError('ctx.dispatchChange needs an engine: create the Colony with { engine }');
              entry.emitted = true;
              post({ t: 'changes', slot, events: stamped(events) });
            },
          };
          value = await fn(payload[3], ctx);
          break;
        }
        case TaskKind.CHECK:
          await loadFunction(payload[1], payload[2]);
          value = true;
          break;
        default:
          payload satisfies never;
      }
      finish(slot, entry, [true, value]);
    } catch (error) {
      finish(slot, entry, [false, serializeError(error)]);
    }
  }

  let inFlight = 0;
  const settled = (): void => {
    inFlight--;
    const wake = wakeLoop;
    wakeLoop = undefined;
    wake?.();
  };

  for (;;) {
    let ran = 0;
    while (inFlight < start.concurrency && !table.closed()) {
      const slot = table.claim(lane);
      if (slot < 0) break;
      const pending = run(slot);
      if (pending !== undefined) {
        inFlight++;
        void pending.then(settled);
      }
      if (++ran === TASKS_PER_TURN) {
        ran = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    if (table.closed() && inFlight === 0) {
      table.retire(lane);
      return;
    }
    if (inFlight >= start.concurrency) {
      await new Promise<void>((resolve) => (wakeLoop = resolve));
      continue;
    }
    // Nothing to claim. Spin a little first: the main thread is usually about to publish the next
    // burst, and catching it here saves a park, a notify and a thread wake-up.
    if (spinForWork(table)) continue;
    // Park on SEQ (or until a running task settles), then look again.
    const seen = Atomics.load(table.i32, TableSlot.SEQ);
    Atomics.add(table.i32, TableSlot.IDLE, 1);
    let outcome: string;
    try {
      if (table.hasPending()) continue;
      const wait = Atomics.waitAsync(table.i32, TableSlot.SEQ, seen, inFlight > 0 ? BUSY_PARK_MS : start.lingerMs);
      if (!wait.async) outcome = wait.value;
      else if (inFlight > 0) outcome = await Promise.race([wait.value, new Promise<string>((resolve) => (wakeLoop = () => resolve('settled')))]);
      else outcome = await wait.value;
    } finally {
      Atomics.sub(table.i32, TableSlot.IDLE, 1);
    }
    wakeLoop = undefined;
    if (outcome === 'timed-out' && inFlight === 0 && table.retire(lane)) return;
  }
}

/** Validated events, with `ts` filled in. */
function stamped(events: PageChangeEvent | readonly PageChangeEvent[]): PageChangeEvent[] {
  const now = Date.now();
  return validateEvents(events).map((e) => (e.ts === undefined ? eventWithDefaults(e, undefined, now) : e));
}

/** Checks for pending work for a few microseconds; true as soon as there is some. */
function spinForWork(table: TaskTable): boolean {
  for (let k = 0; k < SPIN_CHECKS; k++) if (table.hasPending()) return true;
  return false;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function';
}

/** A colony worker's inbox: an async queue that ends when the worker's signal aborts. */
class InboxQueue {
  readonly #items: unknown[] = [];
  readonly #waiters: ((result: IteratorResult<unknown>) => void)[] = [];
  readonly #signal: AbortSignal;

  constructor(signal: AbortSignal) {
    this.#signal = signal;
    signal.addEventListener('abort', () => {
      for (const waiter of this.#waiters.splice(0)) waiter({ value: undefined, done: true });
    });
  }

  push(item: unknown): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter({ value: item, done: false });
    else this.#items.push(item);
  }

  iterator(): AsyncIterator<unknown> {
    return {
      next: () => {
        if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift(), done: false });
        if (this.#signal.aborted) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.#waiters.push(resolve));
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }
}
