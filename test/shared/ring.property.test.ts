/**
 * Property tests on tiny rings (64–256 bytes): random interleavings of batch writes from several
 * logical producers and bounded drains, with frame sizes of every alignment, so records wrap the
 * data area at every offset. On one thread every step is deterministic, so the model is exact: the
 * ring must behave as one FIFO of the frames it accepted.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingFullError } from '../../src/shared/errors.js';
import { Ring, RingConsumer, RingProducer } from '../../src/shared/ring.js';
import { makeFrame } from '../fixtures/ring/frames.js';

type Op = { kind: 'write'; producer: number; sizes: number[] } | { kind: 'drain'; max: number };

const PRODUCERS = 3;

function opArbitrary(maxFrameBytes: number): fc.Arbitrary<Op> {
  return fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('write' as const),
        producer: fc.integer({ min: 0, max: PRODUCERS - 1 }),
        sizes: fc.array(fc.integer({ min: 1, max: maxFrameBytes }), { minLength: 1, maxLength: 5 }),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant('drain' as const), max: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(Infinity)) }),
    },
  );
}

/** Capacity with the operations to run on it. */
const scenario = fc.constantFrom(64, 128, 256).chain((capacity) =>
  fc.record({ capacity: fc.constant(capacity), ops: fc.array(opArbitrary(capacity / 2 - 4), { minLength: 1, maxLength: 300 }) }),
);

/** Bytes a frame of `n` payload bytes takes in the ring: 4-byte header, 4-byte aligned. */
const recordBytes = (n: number): number => (n + 7) & ~3;

function readHeader(view: Uint8Array): { producer: number; seq: number } {
  return { producer: view[0]!, seq: (view[1]! | (view[2]! << 8) | (view[3]! << 16) | (view[4]! << 24)) >>> 0 };
}

function copyAll(consumer: RingConsumer, max = Infinity): Uint8Array[] {
  const out: Uint8Array[] = [];
  consumer.drain((view) => {
    // A tiny ring never holds this many: a drain that keeps going is re-reading stale records.
    if (out.length > 1_000) throw new Error('drain ran past the records it was given');
    out.push(view.slice());
  }, max);
  return out;
}

describe('Ring (property, tiny rings)', () => {
  it('every accepted frame comes out exactly once, intact, in order, across wraparound', () => {
    fc.assert(
      fc.property(scenario, ({ capacity, ops }) => {
        const ring = new Ring(Ring.allocate(capacity));
        expect(ring.capacity).toBe(capacity);
        const producers = Array.from({ length: PRODUCERS }, () => new RingProducer(ring, { onFull: 'throw' }));
        const consumer = new RingConsumer(ring);
        const seq = new Array<number>(PRODUCERS).fill(0);
        const fifo: Uint8Array[] = [];
        let accepted = 0;
        let acceptedBytes = 0;
        for (const op of ops) {
          if (op.kind === 'write') {
            const frames = op.sizes.map((size) => makeFrame(op.producer, seq[op.producer]!++, size));
            const before = ring.counter('framesWritten');
            let threw = false;
            try {
              expect(producers[op.producer]!.write(frames)).toBeUndefined();
            } catch (error) {
              expect(error).toBeInstanceOf(RingFullError);
              threw = true;
            }
            // A batch larger than half the ring goes in several reservations: a full ring may
            // take its first ones and refuse the rest. Whatever went in went in as a prefix.
            const written = ring.counter('framesWritten') - before;
            expect(written === frames.length).toBe(!threw);
            for (const frame of frames.slice(0, written)) {
              fifo.push(frame);
              acceptedBytes += frame.length;
            }
            accepted += written;
          } else {
            const got = copyAll(consumer, op.max);
            // Single-threaded, everything accepted is published: a drain takes exactly min(max, queued).
            expect(got.length).toBe(Math.min(op.max, fifo.length));
            expect(got).toEqual(fifo.splice(0, got.length));
          }
          expect(ring.usedBytes()).toBeGreaterThanOrEqual(0);
          expect(ring.usedBytes()).toBeLessThanOrEqual(capacity);
        }
        expect(copyAll(consumer)).toEqual(fifo);
        expect(ring.isDrained()).toBe(true);
        expect(consumer.hasData()).toBe(false);
        const stats = ring.stats();
        expect(stats).toMatchObject({ usedBytes: 0, framesWritten: accepted, framesRead: accepted, bytesWritten: acceptedBytes, bytesRead: acceptedBytes, pendingWriters: 0 });
      }),
      { numRuns: 300 },
    );
  });

  it('per-producer order holds whatever the interleaving, and a refused batch leaves no trace', () => {
    fc.assert(
      fc.property(scenario, ({ capacity, ops }) => {
        const ring = new Ring(Ring.allocate(capacity));
        const producers = Array.from({ length: PRODUCERS }, () => new RingProducer(ring, { onFull: 'throw' }));
        const consumer = new RingConsumer(ring);
        const seq = new Array<number>(PRODUCERS).fill(0);
        const lastSeen = new Array<number>(PRODUCERS).fill(-1);
        const check = (view: Uint8Array): void => {
          const { producer, seq: s } = readHeader(view);
          // Sequence numbers are per producer and increase; refused frames leave gaps, never reorderings.
          expect(s).toBeGreaterThan(lastSeen[producer]!);
          lastSeen[producer] = s;
        };
        for (const op of ops) {
          if (op.kind === 'write') {
            // Only batches that fit in one reservation, so a refusal is all-or-nothing.
            const sizes = op.sizes.map((n) => Math.max(5, n)).filter((_, i, all) => all.slice(0, i + 1).reduce((a, n) => a + recordBytes(n), 0) <= capacity / 2);
            if (sizes.length === 0) continue;
            const frames = sizes.map((size) => makeFrame(op.producer, seq[op.producer]!++, size));
            const before = ring.stats();
            try {
              producers[op.producer]!.write(frames);
            } catch (error) {
              expect(error).toBeInstanceOf(RingFullError);
              const after = ring.stats();
              expect(after.framesWritten).toBe(before.framesWritten);
              expect(after.usedBytes).toBe(before.usedBytes);
              expect(after.fullRejects).toBe(before.fullRejects + 1);
            }
          } else {
            consumer.drain(check, op.max);
          }
        }
        consumer.drain(check);
        expect(ring.isDrained()).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('wraps around hundreds of times at every alignment with every frame size', () => {
    for (const capacity of [64, 128, 256]) {
      const ring = new Ring(Ring.allocate(capacity));
      const producer = new RingProducer(ring, { onFull: 'throw' });
      const consumer = new RingConsumer(ring);
      let seq = 0;
      for (let size = 1; size <= ring.maxFrameBytes; size++) {
        for (let round = 0; round < 20; round++) {
          const frame = makeFrame(1, seq++, size);
          expect(producer.write(frame)).toBeUndefined();
          const got = copyAll(consumer);
          if (got.length !== 1 || Buffer.compare(got[0]!, frame) !== 0) expect(got).toEqual([frame]);
        }
      }
      // Every size at every position the previous sizes left TAIL at: many laps.
      expect(ring.counter('bytesWritten')).toBeGreaterThan(capacity * 50);
      expect(ring.isDrained()).toBe(true);
    }
  });

  it('a visitor that throws consumes the frames before it and the one it threw on', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 5 }), (count, throwAt) => {
        const ring = new Ring(Ring.allocate(256));
        const producer = new RingProducer(ring, { onFull: 'throw' });
        const consumer = new RingConsumer(ring);
        const frames = Array.from({ length: count }, (_, i) => makeFrame(2, i, 5 + i));
        producer.write(frames);
        const seen: number[] = [];
        const boom = new Error('visitor failed');
        const run = (): number =>
          consumer.drain((view) => {
            seen.push(view[1]!);
            if (seen.length - 1 === throwAt) throw boom;
          });
        if (throwAt < count) expect(run).toThrow(boom);
        else expect(run()).toBe(count);
        const consumed = Math.min(count, throwAt + 1);
        expect(seen).toEqual(frames.slice(0, consumed).map((f) => f[1]));
        expect(copyAll(consumer)).toEqual(frames.slice(consumed));
      }),
    );
  });
});
