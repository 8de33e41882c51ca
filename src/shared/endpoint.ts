/**
 * A Comlink endpoint over a Node MessagePort (Comlink speaks the DOM EventTarget shape).
 * `afterPost` lets the main thread nudge a worker that is parked in Atomics.wait, so that a query
 * does not wait for the worker's next natural wake.
 */
import type { Endpoint } from 'comlink';
import type { MessagePort } from 'node:worker_threads';

type Listener = (event: { data: unknown }) => void;

export function nodeEndpoint(port: MessagePort, afterPost?: () => void): Endpoint {
  const wrapped = new WeakMap<object, (data: unknown) => void>();
  return {
    postMessage(message: unknown, transfer?: unknown[]) {
      port.postMessage(message, transfer as never);
      afterPost?.();
    },
    addEventListener(_type: string, listener: unknown) {
      const fn = (data: unknown): void => {
        if (typeof listener === 'function') (listener as Listener)({ data });
        else (listener as { handleEvent: Listener }).handleEvent({ data });
      };
      wrapped.set(listener as object, fn);
      port.on('message', fn);
    },
    removeEventListener(_type: string, listener: unknown) {
      const fn = wrapped.get(listener as object);
      if (fn !== undefined) port.off('message', fn);
    },
    start: () => port.start(),
  } as Endpoint;
}
