/**
 * The main thread's link to the convergence worker: starts the thread, owns its MessagePort (the
 * Comlink query proxy and the worker's messages share it), matches replies to pending requests, and
 * turns a worker failure (a `fatal` message, an error, an unexpected exit) into one failure that
 * settles every pending request.
 */
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { type Remote, wrap } from 'comlink';
import { ConvergeError, deserializeError, WorkerCrashedError } from '../shared/errors.js';
import { nodeEndpoint } from '../shared/endpoint.js';
import type { ConvergenceControl, ConvergenceWorkerData, QuiescenceReport, WorkerMessage } from '../shared/protocol.js';
import { startWorker } from '../shared/worker-entry.js';

const CONVERGENCE_WORKER = new URL('../workers/convergence.worker.js', import.meta.url);

/** What the link reports to its engine. */
export interface WorkerLinkListener {
  /** The worker wrote dispatches while the main thread was parked. */
  onWake(): void;
  onQuiescence(report: QuiescenceReport): void;
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
  #state: LinkState = 'running';
  #failure: ConvergeError | undefined;

  /** `nudge` wakes a worker parked on the ingest ring so that it reads a query now. */
  constructor(data: ConvergenceWorkerData, nudge: () => void, listener: WorkerLinkListener) {
    this.#listener = listener;
    const channel = new MessageChannel();
    this.#port = channel.port1;
    const workerData: ConvergenceWorkerData & { port: MessagePort } = { ...data, port: channel.port2 };
    this.#worker = startWorker(CONVERGENCE_WORKER, { workerData, transferList: [channel.port2], name: 'converge:convergence' });
    this.#control = wrap<ConvergenceControl>(nodeEndpoint(this.#port, nudge));
    this.#port.on('message', (message: WorkerMessage) => this.#onMessage(message));
    this.#worker.on('error', (error) => this.fail(error));
    this.#worker.on('exit', (code) => {
      if (this.#state === 'running' || this.#state === 'stopping') this.fail(new WorkerCrashedError(`convergence worker exited with code ${code}`));
    });
  }

  /** The failure, once the link failed. */
  get failure(): ConvergeError | undefined {
    return this.#failure;
  }

  /** A new request id and the promise its reply settles. */
  request(): { id: number; reply: Promise<unknown> } {
    const id = this.#nextRequest++;
    const reply = new Promise((resolve, reject) => this.#requests.set(id, { resolve, reject }));
    return { id, reply };
  }

  /** Stops waiting for a request's reply (its promise stays pending). */
  forget(id: number): void {
    this.#requests.delete(id);
  }

  /** Runs a Comlink query; a failure of the link surfaces as the link's failure. */
  async query<T>(call: (control: Remote<ConvergenceControl>) => Promise<T>): Promise<T> {
    try {
      return await call(this.#control);
    } catch (error) {
      if (this.#state === 'failed' && this.#failure !== undefined) throw this.#failure;
      throw error;
    }
  }

  /** Fails the link: rejects every pending request, terminates the worker, tells the listener. Once. */
  fail(error: unknown): void {
    if (this.#state === 'failed' || this.#state === 'stopped') return;
    this.#state = 'failed';
    const failure = error instanceof ConvergeError ? error : new WorkerCrashedError('convergence worker failed', { cause: error });
    this.#failure = failure;
    this.#rejectRequests(failure);
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
        return;
      }
      case 'quiescence':
        this.#listener.onQuiescence(message.report);
        return;
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
