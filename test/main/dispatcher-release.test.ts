/**
 * The worker releases main-thread frames through an Int32 slot (MainSlot.RELEASED). After 2^31
 * frames (~6 h at 100k calls/s) the stored value turns negative: released frames must still be
 * dropped, and unreleased ones kept.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_REMEMBERED_BYTES, type MainDispatcher, REMEMBERED_EVENT_OVERHEAD_BYTES } from '../../src/main/dispatcher.js';
import { PageChange } from '../../src/shared/events.js';
import { testDispatcher } from '../helpers/dispatcher.js';
import { MainSlot } from '../../src/shared/protocol.js';

const dispatcher = (flags: Int32Array, maxRememberedBytes?: number): MainDispatcher => testDispatcher(flags, { maxRememberedBytes });

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

describe('MainDispatcher reference window', () => {
  it('is bounded by the encoded bytes it holds, and frees them as frames are released', () => {
    const flags = new Int32Array(new SharedArrayBuffer(64));
    const d = dispatcher(flags, 10_000);
    let seq = 1;
    while (d.canRemember()) d.remember(seq++, [], 3_000);
    // 4 frames of 3,000 bytes: the fourth went past the bound, so a fifth is refused.
    expect(seq - 1).toBe(4);
    expect(d.rememberedBytes).toBe(12_000);
    Atomics.store(flags, MainSlot.RELEASED, 2);
    expect(d.canRemember()).toBe(true);
    expect(d.rememberedFrames).toBe(2);
    expect(d.rememberedBytes).toBe(6_000);
    Atomics.store(flags, MainSlot.RELEASED, 4);
    d.trim();
    expect(d.rememberedBytes).toBe(0);
  });

  it('holds far more than 64 frames of a burst that fits within its bytes', () => {
    const flags = new Int32Array(new SharedArrayBuffer(64));
    const d = dispatcher(flags);
    for (let seq = 1; seq <= 400; seq++) {
      expect(d.canRemember()).toBe(true);
      d.remember(seq, [], 40_000);
    }
    expect(d.rememberedFrames).toBe(400);
  });

  // Issue 7 §4: a slow handler's backlog. A burst's events encode to ~8 bytes each (the codec's
  // dictionary), so a window bounded by encoded bytes alone held ~2 M caller objects (~250 MB).
  it('charges each remembered event its heap overhead, not only its encoded bytes', () => {
    const flags = new Int32Array(new SharedArrayBuffer(64));
    const d = dispatcher(flags);
    const frame = Array.from({ length: 1_000 }, (_, i) => PageChange.added(`p${i}`, { sourceId: 'm' }));
    let frames = 0;
    while (d.canRemember()) d.remember(++frames, frame, 8_000);
    expect(d.rememberedBytes).toBe(frames * (8_000 + 1_000 * REMEMBERED_EVENT_OVERHEAD_BYTES));
    // Under 250 k events held (was ~2 M at 8 bytes each).
    expect(frames * 1_000).toBeLessThanOrEqual(Math.ceil(DEFAULT_MAX_REMEMBERED_BYTES / REMEMBERED_EVENT_OVERHEAD_BYTES) + 1_000);
    expect(frames * 1_000).toBeLessThan(250_000);
  });
});
