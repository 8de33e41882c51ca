/**
 * The ring under faults and at its limits: an all-or-nothing batch with onFull 'throw', PENDING that
 * is never still counted when a frame becomes visible, a producer that reserves and dies, and
 * free-running Int32 counters past 2^31.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RingFullError, TimeoutError } from '../../src/shared/errors.js';
import { RESERVED, Slot, seqCompare } from '../../src/shared/ring-layout.js';
import { Ring, RingConsumer, RingProducer, type StalledReservation } from '../../src/shared/ring.js';
import { makeFrame } from '../fixtures/ring/frames.js';

function drainAll(consumer: RingConsumer): number[] {
  const seqs: number[] = [];
  consumer.drain((view) => seqs.push(view[1]!));
  return seqs;
}

/** What a producer leaves behind when it dies right after reserving: TAIL moved, maybe the mark. */
function deadReservation(ring: Ring, bytes: number, marked: boolean): void {
  const tail = Atomics.load(ring.ctl, Slot.TAIL);
  expect(Atomics.compareExchange(ring.ctl, Slot.TAIL, tail, (tail + bytes) | 0)).toBe(tail);
  if (marked) Atomics.store(ring.words, (tail & ring.mask) >> 2, RESERVED | (bytes >>> 2));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("onFull 'throw' is all or nothing for one write", () => {
  it('a batch that does not fit writes none of its frames and throws RingFullError', () => {
    const ring = new Ring(Ring.allocate(1024));
    const producer = new RingProducer(ring, { onFull: 'throw' });
    const consumer = new RingConsumer(ring);
    expect(producer.write(makeFrame(0, 0, 508))).toBeUndefined(); // 512 bytes used, 512 free
    const batch = Array.from({ length: 12 }, (_, i) => makeFrame(0, i + 1, 60)); // 12 × 64 = 768 bytes
    expect(() => producer.write(batch)).toThrow(RingFullError);
    expect(() => producer.writeSync(batch)).toThrow(RingFullError);
    expect(ring.counter('framesWritten')).toBe(1);
    expect(ring.usedBytes()).toBe(512);
    expect(drainAll(consumer)).toEqual([0]);
    // Once there is room, the same batch goes in whole.
    expect(producer.write(batch)).toBeUndefined();
    expect(drainAll(consumer)).toEqual(batch.map((f) => f[1]));
  });

  it('a batch larger than half the ring goes in as one reservation, wrapping in its middle', () => {
    const ring = new Ring(Ring.allocate(256));
    const producer = new RingProducer(ring, { onFull: 'throw' });
    const consumer = new RingConsumer(ring);
    for (let shift = 0; shift < 64; shift++) {
      const batch = Array.from({ length: 5 }, (_, i) => makeFrame(1, shift * 5 + i, 20 + ((shift + i) % 17)));
      expect(producer.write(batch)).toBeUndefined();
      expect(ring.counter('framesWritten')).toBe((shift + 1) * 5 + shift);
      const got: Uint8Array[] = [];
      consumer.drain((view) => got.push(view.slice()));
      expect(got).toEqual(batch);
      producer.write(new Uint8Array(1 + (shift % 7)));
      consumer.drain(() => {});
    }
  });

  it('a batch larger than the whole ring is refused at once, nothing written', () => {
    const ring = new Ring(Ring.allocate(256));
    const producer = new RingProducer(ring, { onFull: 'throw' });
    const error = (() => {
      try {
        producer.write(Array.from({ length: 10 }, (_, i) => makeFrame(0, i, 60)));
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toMatchObject({ code: 'CONVERGE_RING_FULL', requestedBytes: 640 });
    expect(ring.usedBytes()).toBe(0);
  });
});

describe('PENDING and publishing', () => {
  it('a write that waited for space has left PENDING before any of its frames is visible', async () => {
    const ring = new Ring(Ring.allocate(256));
    const producer = new RingProducer(ring);
    const consumer = new RingConsumer(ring);
    producer.write([makeFrame(0, 0, 120), makeFrame(0, 9, 120)]);
    const waiting = producer.write([makeFrame(0, 1, 60), makeFrame(0, 2, 10)]);
    expect(waiting).toBeInstanceOf(Promise);
    expect(ring.isDrained()).toBe(false);
    expect(ring.stats().pendingWriters).toBe(1);
    // Record PENDING at the instant each record header becomes non-zero (published).
    const store = Atomics.store.bind(Atomics);
    const pendingAtPublish: number[] = [];
    vi.spyOn(Atomics, 'store').mockImplementation(((array: Int32Array, index: number, value: number) => {
      if (array === ring.words && value > 0 && value < RESERVED) pendingAtPublish.push(Atomics.load(ring.ctl, Slot.PENDING));
      return store(array, index, value);
    }) as typeof Atomics.store);
    expect(drainAll(consumer)).toEqual([0, 9]);
    await waiting;
    expect(pendingAtPublish).toEqual([0, 0]);
    expect(drainAll(consumer)).toEqual([1, 2]);
    expect(ring.isDrained()).toBe(true);
  });
});

describe('a producer that reserves and dies', () => {
  for (const marked of [true, false]) {
    it(`is detected after stallTimeoutMs, its reservation skipped, counted and reported (${marked ? 'marked' : 'died before its mark'})`, () => {
      const ring = new Ring(Ring.allocate(1024));
      const producer = new RingProducer(ring);
      let now = 1_000;
      const stalls: StalledReservation[] = [];
      const consumer = new RingConsumer(ring, { stallTimeoutMs: 5_000, clock: () => now, onStall: (stall) => stalls.push(stall) });
      producer.write(makeFrame(0, 1, 20));
      const position = Atomics.load(ring.ctl, Slot.TAIL);
      deadReservation(ring, 96, marked);
      producer.write([makeFrame(0, 2, 20), makeFrame(0, 3, 20)]);
      expect(drainAll(consumer)).toEqual([1]);
      now += 4_999;
      expect(drainAll(consumer)).toEqual([]);
      expect(ring.isDrained()).toBe(false);
      expect(ring.stats().stalledReservations).toBe(0);
      now += 2;
      expect(drainAll(consumer)).toEqual([2, 3]);
      expect(stalls).toEqual([{ position, bytes: 96, waitedMs: 5_001 }]);
      expect(ring.stats()).toMatchObject({ stalledReservations: 1, stalledBytes: 96, usedBytes: 0 });
      expect(ring.isDrained()).toBe(true);
      // The ring goes on working over the skipped space.
      let got = 0;
      for (let i = 0; i < 100; i++) {
        expect(producer.write(makeFrame(0, i, 30))).toBeUndefined();
        got += drainAll(consumer).length;
      }
      expect(got).toBe(100);
    });
  }

  it('a producer that was only paused past the timeout gets TimeoutError instead of publishing into skipped space', () => {
    const ring = new Ring(Ring.allocate(256));
    let now = 0;
    const consumer = new RingConsumer(ring, { stallTimeoutMs: 10, clock: () => now });
    const producer = new RingProducer(ring);
    let paused = false;
    // A frame whose length getter "pauses" the producer once it has reserved: meanwhile the consumer
    // waits past the timeout and skips the reservation.
    class Paused extends Uint8Array {
      override get length(): number {
        if (!paused && Atomics.load(ring.ctl, Slot.TAIL) !== 0) {
          paused = true;
          consumer.drain(() => {});
          now += 11;
          consumer.drain(() => {});
        }
        return super.length;
      }
    }
    expect(() => producer.write(new Paused(20))).toThrow(TimeoutError);
    expect(paused).toBe(true);
    expect(ring.stats()).toMatchObject({ stalledReservations: 1, stalledBytes: 24, usedBytes: 0, framesWritten: 0 });
    expect(producer.write(makeFrame(0, 7, 20))).toBeUndefined();
    expect(drainAll(consumer)).toEqual([7]);
  });

  it('a dead reservation that is the last thing in the ring is skipped too', () => {
    const ring = new Ring(Ring.allocate(256));
    let now = 0;
    const consumer = new RingConsumer(ring, { stallTimeoutMs: 10, clock: () => now });
    deadReservation(ring, 40, false);
    expect(drainAll(consumer)).toEqual([]);
    now = 11;
    expect(drainAll(consumer)).toEqual([]);
    expect(ring.stats()).toMatchObject({ stalledReservations: 1, stalledBytes: 40, usedBytes: 0 });
  });

  it('a reservation that is merely slow is not skipped', () => {
    const ring = new Ring(Ring.allocate(256));
    let now = 0;
    const consumer = new RingConsumer(ring, { stallTimeoutMs: 10, clock: () => now });
    deadReservation(ring, 40, true);
    drainAll(consumer);
    now = 9;
    drainAll(consumer);
    expect(ring.stats().stalledReservations).toBe(0);
    expect(ring.usedBytes()).toBe(40);
  });
});

describe('free-running Int32 counters', () => {
  it('seqCompare orders values across the 2^31 sign flip and the 2^32 wrap', () => {
    expect(seqCompare(2 ** 31 + 5, (2 ** 31 + 5) | 0)).toBe(0);
    expect(seqCompare(2 ** 31 + 5, 2 ** 31 - 5)).toBeGreaterThan(0);
    expect(seqCompare((2 ** 31 + 5) | 0, 2 ** 31 - 5)).toBeGreaterThan(0);
    expect(seqCompare(2 ** 31 - 5, (2 ** 31 + 5) | 0)).toBeLessThan(0);
    expect(seqCompare(2 ** 32 + 3, (2 ** 32 - 3) | 0)).toBeGreaterThan(0);
    // What a plain comparison gets wrong once a sequence number stored in an Int32 slot wraps.
    const stored = new Int32Array(1);
    stored[0] = 2 ** 31 + 10;
    expect(2 ** 31 + 5 > stored[0]!).toBe(true);
    expect(seqCompare(2 ** 31 + 5, stored[0]!)).toBeLessThan(0);
  });

  it('ring positions and stalls work across the 2^31 sign flip and the 2^32 wrap', () => {
    for (const startAt of [2 ** 31 - 64, -64]) {
      const ring = new Ring(Ring.allocate(256));
      Atomics.store(ring.ctl, Slot.HEAD, startAt | 0);
      Atomics.store(ring.ctl, Slot.TAIL, startAt | 0);
      let now = 0;
      const consumer = new RingConsumer(ring, { stallTimeoutMs: 10, clock: () => now });
      const producer = new RingProducer(ring, { onFull: 'throw' });
      const got: number[] = [];
      for (let i = 0; i < 40; i++) {
        producer.write([makeFrame(0, i, 30), makeFrame(0, i + 100, 9)]);
        if (i === 20) deadReservation(ring, 32, true);
        consumer.drain((view) => got.push(view[1]!));
        if (i === 20) {
          now += 11;
          consumer.drain((view) => got.push(view[1]!));
        }
      }
      expect(got).toEqual(Array.from({ length: 40 }, (_, i) => [i, i + 100]).flat());
      expect(ring.stats()).toMatchObject({ stalledReservations: 1, usedBytes: 0 });
    }
  });
});
