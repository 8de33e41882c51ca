/**
 * The main thread's link to the convergence worker: starts the thread, owns its MessagePort (the
 * Comlink query proxy and the worker's messages share it), matches replies to pending requests, and
 * turns a worker failure (a `fatal` message, an error, an unexpected exit) into one failure that
 * settles every pending request and Comlink query.
 *
 * Once the engine is stopping, the worker's exit is expected, whatever its code (it exits 0 after
 * CLOSE, or 1 when terminated after `closeTimeoutMs`): what is still pending then is settled by
 * {@link WorkerLink.dispose} with ClosedError, not with a crash.
 *
 * The worker and the port hold the process open only while {@link WorkerLink.setRef} says so (the
 * engine decides: work in flight), so an idle engine never keeps a script from exiting.
 */
import { MessageChannel, type MessagePort, type ResourceLimits, type Worker } from 'node:worker_threads';
import { type Remote, wrap } from 'comlink';
import { ClosedError, ConvergeError, deserializeError, WorkerCrashedError } from '../shared/errors.js';
import { nodeEndpoint } from '../shared/endpoint.js';
import type { BudgetExhaustedInfo, ConvergenceControl, ConvergenceWorkerData, QuiescenceReport, RingStallInfo, WorkerMessage } from '../shared/protocol.js';
import { startWorker } from '../shared/worker-entry.js';

const CONVERGENCE_WORKER = new URL('../workers/convergence.worker.js', import.meta.url);

/** What the link reports to its engine. */
export interface WorkerLinkListener {
  /** The worker wrote dispatches while the main thread was parked. */
  onWake(): void;
  onQuiescence(report: QuiescenceReport): void;
  /**
   * A request's reply or a query's answer arrived, or a request was forgotten (the engine
   * re-evaluates whether it is idle). `requestId` is undefined for a Comlink query.
   */
  onSettled(requestId?: number): void;
  /** An episode's budget or derivation-depth limit refused a derived dispatch (once per reason and episode). */
  onBudgetExhausted?(info: BudgetExhaustedInfo): void;
  /** A producer died mid-write and the worker skipped its ring reservation (see RingStallInfo). */
  onRingStalled?(info: RingStallInfo): void;
  /** Called once, when the link fails; pending requests are already rejected with `error`. */
  onFailure(error: ConvergeError): void;
}

type LinkState = 'running' | 'stopping' | 'stopped' | 'failed';

interface PendingRequest {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export class WorkerLink {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #control: Remote<ConvergenceControl>;
  readonly #listener: WorkerLinkListener;
  readonly #requests = new Map<number, PendingRequest>();
  #nextRequest = 1;
  #queries = 0;
  #state: LinkState = 'running';
  #failure: ConvergeError | undefined;
  /** Rejects (with the failure, or ClosedError on dispose) when the link ends: Comlink calls race it. */
  readonly #ended: Promise<never>;
  #end!: (error: unknown) => void;
  #refd = true;

  /**
   * `nudge` wakes a worker parked on the ingest ring so that it reads a query now; `resourceLimits`
   * are the thread's V8 limits (the engine passes its `resourceLimits` option).
   */
  constructor(data: ConvergenceWorkerData, nudge: () => void, listener: WorkerLinkListener, resourceLimits?: ResourceLimits) {
    this.#listener = listener;
    this.#ended = new Promise<never>((_, reject) => (this.#end = reject));
    this.#ended.catch(() => undefined);
    const channel = new MessageChannel();
    this.#port = channel.port1;
    const workerData: ConvergenceWorkerData & { port: MessagePort } = { ...data, port: channel.port2 };
    this.#worker = startWorker(CONVERGENCE_WORKER, {
      workerData,
      transferList: [channel.port2],
      name: 'converge:convergence',
      ...(resourceLimits === undefined ? {} : { resourceLimits }),
    });
    this.#control = wrap<ConvergenceControl>(nodeEndpoint(this.#port, nudge));
    this.#port.on('message', (message: WorkerMessage) => this.#onMessage(message));
    this.#worker.on('error', (error) => this.fail(error));
    this.#worker.on('exit', (code) => {
      if (this.#state === 'running') this.fail(new WorkerCrashedError(`convergence worker exited with code ${code}`));
    });
  }

  /** The V8 limits the worker thread runs with (Node's `worker.resourceLimits`; empty once it exited). */
  get resourceLimits(): ResourceLimits {
    return this.#worker.resourceLimits ?? {};
  }

  /** Requests and queries waiting for the worker. */
  get pending(): number {
    return this.#requests.size + this.#queries;
  }

  /** Whether the worker thread and the port keep the process alive. */
  setRef(on: boolean): void {
    if (on === this.#refd) return;
    this.#refd = on;
    if (on) {
      this.#worker.ref();
      this.#port.ref();
    } else {
      this.#worker.unref();
      this.#port.unref();
    }
  }

  /** The failure, once the link failed. */
  get failure(): ConvergeError | undefined {
    return this.#failure;
  }

  /** A new request id and the promise its reply settles. */
  request(): { id: number; reply: Promise<unknown> } {
    const id = this.#nextRequest++;
    const reply = new Promise((resolve, reject) => this.#requests.set(id, { resolve, reject }));
    // A caller that stops listening (a write that failed first) must not leave an unhandled rejection.
    reply.catch(() => undefined);
    this.setRef(true);
    return { id, reply };
  }

  /** Stops waiting for a request's reply (its promise stays pending). */
  forget(id: number): void {
    if (this.#requests.delete(id)) this.#listener.onSettled(id);
  }

  /**
   * Runs a Comlink query. It settles whatever happens to the worker: a failure of the link rejects it
   * with the link's failure, the end of the link with ClosedError.
   */
  async query<T>(call: (control: Remote<ConvergenceControl>) => Promise<T>): Promise<T> {
    if (this.#state === 'failed') throw this.#failure!;
    if (this.#state === 'stopped') throw new ClosedError();
    this.#queries++;
    this.setRef(true);
    try {
      return await Promise.race([call(this.#control), this.#ended]);
    } catch (error) {
      // The state may have changed while the query was pending.
      if ((this.#state as LinkState) === 'failed' && this.#failure !== undefined) throw this.#failure;
      throw error;
    } finally {
      this.#queries--;
      this.#listener.onSettled();
    }
  }

  /** Fails the link: rejects every pending request, terminates the worker, tells the listener. Once. */
  fail(error: unknown): void {
    if (this.#state === 'failed' || this.#state === 'stopped') return;
    this.#state = 'failed';
    const failure = error instanceof ConvergeError ? error : new WorkerCrashedError('convergence worker failed', { cause: error });
    this.#failure = failure;
    this.#rejectRequests(failure);
    this.#end(failure);
    this.#listener.onFailure(failure);
    void this.#worker.terminate();
  }

  /** The engine is closing: the worker will be told to stop. */
  stopping(): void {
    if (this.#state === 'running') this.#state = 'stopping';
  }

  /** Waits for the worker to exit, terminating it after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.#worker.threadId === -1) resolve();
      else this.#worker.once('exit', () => resolve());
    });
    const timer = setTimeout(() => void this.#worker.terminate(), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /** Closes the port and rejects what is still pending with `error`. */
  dispose(error: unknown): void {
    if (this.#state !== 'failed') this.#state = 'stopped';
    this.#port.close();
    this.#rejectRequests(error);
    this.#end(error);
  }

  #onMessage(message: WorkerMessage): void {
    switch (message.type) {
      case 'wake':
        this.#listener.onWake();
        return;
      case 'reply': {
        const request = this.#requests.get(message.requestId);
        if (request === undefined) return;
        this.#requests.delete(message.requestId);
        if (message.error !== undefined) request.reject(deserializeError(message.error));
        else request.resolve(message.value);
        this.#listener.onSettled(message.requestId);
        return;
      }
      case 'quiescence':
        this.#listener.onQuiescence(message.report);
        return;
      case 'budget-exhausted': {
        const { type: _type, ...info } = message;
        this.#listener.onBudgetExhausted?.(info);
        return;
      }
      case 'ring-stalled': {
        const { type: _type, ...info } = message;
        this.#listener.onRingStalled?.(info);
        return;
      }
      case 'fatal':
        this.fail(deserializeError(message.error));
        return;
      default:
        // Comlink's own replies share the port; they carry no `type` of ours.
        return;
    }
  }

  #rejectRequests(error: unknown): void {
    for (const request of this.#requests.values()) request.reject(error);
    this.#requests.clear();
  }
}
