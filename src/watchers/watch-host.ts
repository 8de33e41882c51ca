/**
 * The watch worker's logic: hosts watchers (native `@parcel/watcher` subscriptions and pollers)
 * off the embedder's thread and writes their events straight into the ingest ring, in frames of up
 * to {@link EVENTS_PER_FRAME} events, blocking only this thread when the ring is full.
 */
import type { MessagePort } from 'node:worker_threads';
import { ClosedError, serializeError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import { FrameEncoder } from '../shared/framing.js';
import { IngestTag } from '../shared/protocol.js';
import { Ring, RingProducer } from '../shared/ring.js';
import { IngestHold } from './ingest-hold.js';
import { FsWatchCore } from './local-fs-core.js';
import type { WatchReply, WatchRequest, WatchWorkerData } from './watch-protocol.js';

/** Events per ingest frame written by this thread. */
const EVENTS_PER_FRAME = 256;

export function runWatchHost(data: WatchWorkerData, port: MessagePort): void {
  const ring = new Ring(data.ingest);
  const producer = new RingProducer(ring, { onFull: 'wait' });
  const encoder = new FrameEncoder();
  const hold = new IngestHold(data.ingest, data.held);
  const cores = new Map<number, FsWatchCore>();
  const post = (reply: WatchReply): void => port.postMessage(reply);
  const closedFlag = new Int32Array(data.closed);

  /** Encodes events into frames no larger than the ring allows, halving a chunk that is too big. */
  const encode = (events: readonly PageChangeEvent[], out: Uint8Array[]): void => {
    const frame = encoder.encodeEvents(IngestTag.EVENTS, null, events);
    if (frame.length <= ring.maxFrameBytes || events.length === 1) {
      out.push(frame); // a single oversized event makes writeSync throw FrameTooLargeError: reported
      return;
    }
    const half = events.length >> 1;
    encode(events.slice(0, half), out);
    encode(events.slice(half), out);
  };

  const stop = async (id: number): Promise<void> => {
    const core = cores.get(id);
    cores.delete(id);
    await core?.stop();
    if (cores.size === 0) hold.releaseAll();
    post({ type: 'stopped', id });
  };

  const start = async (id: number, request: Extract<WatchRequest, { type: 'watch' }>): Promise<void> => {
    const { descriptor } = request;
    const core = new FsWatchCore(descriptor.root, descriptor.options, {
      emit(events) {
        const frames: Uint8Array[] = [];
        for (let i = 0; i < events.length; i += EVENTS_PER_FRAME) encode(events.slice(i, i + EVENTS_PER_FRAME), frames);
        try {
          producer.writeSync(frames);
        } catch (error) {
          if (error instanceof ClosedError) {
            // The engine is gone: nothing more to deliver to.
            void stop(id);
            return;
          }
          throw error;
        }
      },
      hold: () => hold.hold(),
      error: (error) => post({ type: 'source-error', id, error: serializeError(error) }),
    });
    cores.set(id, core);
    try {
      await core.start();
      post({ type: 'started', id });
    } catch (error) {
      cores.delete(id);
      await core.stop();
      post({ type: 'failed', id, error: serializeError(error) });
    }
  };

  /** Stops every watcher; the thread must not end before this settles (see FsWatchCore.stop). */
  const stopAll = (): Promise<unknown> => Promise.allSettled([...cores.keys()].map((id) => stop(id)));

  let closing = false;
  port.on('message', (request: WatchRequest) => {
    if (closing) return;
    switch (request.type) {
      case 'watch':
        void start(request.id, request);
        return;
      case 'unwatch':
        void stop(request.id);
        return;
      case 'close':
        closing = true;
        void stopAll().then(() => {
          Atomics.store(closedFlag, 0, 1);
          Atomics.notify(closedFlag, 0);
          post({ type: 'closed' });
        });
        return;
    }
  });

  // An error escaping this thread would end it with native subscriptions open, which takes the whole
  // process down (parcel-bundler/watcher#264): close them first, say why, then end the thread.
  const fail = (error: unknown): void => {
    if (closing) return;
    closing = true;
    void stopAll().finally(() => {
      post({ type: 'fatal', error: serializeError(error) });
      process.exit(1);
    });
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}
