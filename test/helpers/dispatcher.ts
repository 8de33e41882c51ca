/** A MainDispatcher over real rings for unit tests: no worker, handlers registered by the test. */
import { MainDispatcher } from '../../src/main/dispatcher.js';
import { FrameDecoder, FrameEncoder } from '../../src/shared/framing.js';
import { Ring, RingConsumer, RingProducer } from '../../src/shared/ring.js';

export function testDispatcher(flags: Int32Array, options: { dispatchRing?: Ring; maxRememberedBytes?: number } = {}): MainDispatcher {
  return new MainDispatcher({
    consumer: new RingConsumer(options.dispatchRing ?? new Ring(Ring.allocate(1024))),
    producer: new RingProducer(new Ring(Ring.allocate(options.dispatchRing === undefined ? 1024 : 64 * 1024))),
    decoder: new FrameDecoder(),
    encoder: new FrameEncoder(),
    flags,
    onError: () => {},
    onFatal: (error) => {
      throw error;
    },
    runTask: () => Promise.resolve(),
    writeDerived: () => Promise.resolve(),
    ...(options.maxRememberedBytes === undefined ? {} : { maxRememberedBytes: options.maxRememberedBytes }),
  });
}
