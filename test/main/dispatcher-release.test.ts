/**
 * The worker releases main-thread frames through an Int32 slot (MainSlot.RELEASED). After 2^31
 * frames (~6 h at 100k calls/s) the stored value turns negative: released frames must still be
 * dropped, and unreleased ones kept.
 */
import { describe, expect, it } from 'vitest';
import { MainDispatcher } from '../../src/main/dispatcher.js';
import { FrameDecoder, FrameEncoder } from '../../src/shared/framing.js';
import { MainSlot } from '../../src/shared/protocol.js';
import { Ring, RingConsumer, RingProducer } from '../../src/shared/ring.js';

function dispatcher(flags: Int32Array): MainDispatcher {
  return new MainDispatcher({
    consumer: new RingConsumer(new Ring(Ring.allocate(1024))),
    producer: new RingProducer(new Ring(Ring.allocate(1024))),
    decoder: new FrameDecoder(),
    encoder: new FrameEncoder(),
    flags,
    onError: () => {},
    onFatal: (error) => {
      throw error;
    },
    runTask: () => Promise.resolve(),
    writeDerived: () => Promise.resolve(),
  });
}

describe('MainDispatcher.trim across the Int32 wrap of RELEASED', () => {
  for (const base of [2 ** 31 - 2, 2 ** 32 - 2, 5]) {
    it(`drops exactly the released frames around seq ${base}`, () => {
      const flags = new Int32Array(new SharedArrayBuffer(64));
      const d = dispatcher(flags);
      for (let i = 0; i < 6; i++) d.remember(base + i, []);
      Atomics.store(flags, MainSlot.RELEASED, base + 2);
      d.trim();
      expect(d.rememberedFrames).toBe(3);
      Atomics.store(flags, MainSlot.RELEASED, base + 5);
      d.trim();
      expect(d.rememberedFrames).toBe(0);
    });
  }
});
