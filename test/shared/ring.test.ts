/**
 * The ring's contract at its edges: sizes and coded errors, counters, and waking — a consumer parked
 * in Atomics.wait on another thread is woken by a write and by close(); the main thread waits
 * without blocking.
 */
import { describe, expect, it, vi } from 'vitest';
import { ClosedError, ConvergeError, FrameTooLargeError, ValidationError } from '../../src/shared/errors.js';
import { Slot } from '../../src/shared/ring-layout.js';
import { Ring, RingConsumer, RingProducer, ringCapacityFor } from '../../src/shared/ring.js';
import { makeFrame } from '../fixtures/ring/frames.js';
import { expectedTarget, message, startFixture } from '../fixtures/ring/start.js';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('Ring sizes and errors', () => {
  it('rounds the capacity up to a power of two and rejects sizes out of range with ValidationError', () => {
    expect(new Ring(Ring.allocate(100)).capacity).toBe(128);
    expect(new Ring(Ring.allocate()).capacity).toBe(8 * 1024 * 1024);
    expect(ringCapacityFor(64)).toBe(64);
    for (const bad of [0, 63, 1.5, Number.NaN, 2 ** 31]) {
      const error = caught(() => Ring.allocate(bad));
      expect(error).toBeInstanceOf(ValidationError);
      expect(error).toMatchObject({ code: 'CONVERGE_VALIDATION', field: 'ringBytes' });
    }
    expect(caught(() => new Ring(new SharedArrayBuffer(256 + 100)))).toMatchObject({ code: 'CONVERGE_VALIDATION', field: 'buffer' });
  });

  it('a frame larger than maxFrameBytes is refused with FrameTooLargeError, not truncated; the largest fits wherever the ring stands', () => {
    const ring = new Ring(Ring.allocate(256));
    const consumer = new RingConsumer(ring);
    for (const producer of [new RingProducer(ring), new RingProducer(ring, { onFull: 'throw' })]) {
      const tooBig = makeFrame(0, 0, ring.maxFrameBytes + 1);
      for (const write of [() => producer.write(tooBig), () => producer.writeSync(tooBig), () => producer.write([makeFrame(0, 1, 4), tooBig])]) {
        const error = caught(write);
        expect(error).toBeInstanceOf(FrameTooLargeError);
        expect(error).toBeInstanceOf(ConvergeError);
        expect(error).toMatchObject({ name: 'FrameTooLargeError', code: 'CONVERGE_FRAME_TOO_LARGE', frameBytes: ring.maxFrameBytes + 1, maxFrameBytes: ring.maxFrameBytes });
      }
      expect(ring.counter('framesWritten')).toBe(0);
    }
    // Move TAIL through every 4-byte position; a maximal frame must fit each time the ring is empty.
    const producer = new RingProducer(ring, { onFull: 'throw' });
    for (let shift = 0; shift < ring.capacity / 4; shift++) {
      const largest = makeFrame(1, shift, ring.maxFrameBytes);
      expect(producer.write(largest)).toBeUndefined();
      const got: Uint8Array[] = [];
      consumer.drain((view) => got.push(view.slice()));
      expect(got).toEqual([largest]);
      producer.write(new Uint8Array(1));
      consumer.drain(() => {});
    }
  });

  it('refuses an empty frame with ValidationError', () => {
    const producer = new RingProducer(new Ring(Ring.allocate(64)));
    expect(caught(() => producer.write(new Uint8Array(0)))).toMatchObject({ code: 'CONVERGE_VALIDATION', field: 'frame' });
  });

  it('a batch larger than half the ring goes in in order over several reservations', async () => {
    const ring = new Ring(Ring.allocate(256));
    const producer = new RingProducer(ring);
    const consumer = new RingConsumer(ring);
    const frames = Array.from({ length: 40 }, (_, i) => makeFrame(3, i, 17));
    const got: number[] = [];
    const pending = producer.write(frames);
    expect(pending).toBeInstanceOf(Promise);
    while (got.length < frames.length) {
      consumer.drain((view) => got.push(view[1]!));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await pending;
    expect(got).toEqual(frames.map((f) => f[1]));
  });

  it('keeps 64-bit counters across the 2^32 boundary', () => {
    const ring = new Ring(Ring.allocate(64));
    ring.bump('bytesRead', 0xffff_fff0);
    ring.bump('bytesRead', 0x20);
    expect(ring.counter('bytesRead')).toBe(0x1_0000_0010);
    ring.bump('bytesRead', 0xffff_ffff);
    expect(ring.counter('bytesRead')).toBe(0x2_0000_000f);
    expect(ring.counter('framesRead')).toBe(0);
  });

  it('isDrained: false while a frame is unread, true once it is read', () => {
    const ring = new Ring(Ring.allocate(64));
    const consumer = new RingConsumer(ring);
    expect(ring.isDrained()).toBe(true);
    new RingProducer(ring).write(makeFrame(0, 0));
    expect(ring.isDrained()).toBe(false);
    expect(consumer.hasData()).toBe(true);
    expect(consumer.drain(() => {})).toBe(1);
    expect(ring.isDrained()).toBe(true);
    expect(consumer.hasData()).toBe(false);
  });
});

describe('Ring waking (real threads)', () => {
  it('a consumer parked in Atomics.wait on another thread wakes on a write', async () => {
    const buffer = Ring.allocate(1024);
    const ring = new Ring(buffer);
    const consumer = startFixture('wake', { role: 'parked-consumer', ring: buffer, timeoutMs: 30_000 });
    await message(consumer, 'ready');
    const report = message<{ ready: boolean; count: number; loadedFrom: string; errors: string[] }>(consumer, 'report');
    // Write only once it is really parked, so the write has to wake it.
    await vi.waitFor(() => expect(Atomics.load(ring.ctl, Slot.PARKED)).toBe(1), { timeout: 10_000, interval: 1 });
    const frame = makeFrame(5, 0);
    new RingProducer(ring).write(frame);
    const result = await report;
    await consumer.terminate();
    expect(result).toMatchObject({ ready: true, count: 1, errors: [], loadedFrom: expectedTarget });
    expect(ring.counter('wakes')).toBe(1);
  });

  it('close() wakes a parked consumer, which then reports no data', async () => {
    const buffer = Ring.allocate(1024);
    const ring = new Ring(buffer);
    const consumer = startFixture('wake', { role: 'parked-consumer', ring: buffer, timeoutMs: 30_000 });
    await message(consumer, 'ready');
    const report = message<{ ready: boolean; closed: boolean; count: number }>(consumer, 'report');
    await vi.waitFor(() => expect(Atomics.load(ring.ctl, Slot.PARKED)).toBe(1), { timeout: 10_000, interval: 1 });
    ring.close();
    expect(await report).toMatchObject({ ready: false, closed: true, count: 0 });
    await consumer.terminate();
    expect(caught(() => new RingProducer(ring).write(makeFrame(0, 0)))).toBeInstanceOf(ClosedError);
  });

  it('waitForDataAsync on the main thread resolves when a worker writes, without blocking the event loop', async () => {
    const buffer = Ring.allocate(1024);
    const ring = new Ring(buffer);
    const consumer = new RingConsumer(ring);
    const gate = new SharedArrayBuffer(4);
    const producer = startFixture('wake', { role: 'producer', ring: buffer, gate, count: 3 });
    const waiting = consumer.waitForDataAsync(30_000);
    // The event loop still turns while we wait.
    await new Promise((resolve) => setImmediate(resolve));
    expect(Atomics.load(ring.ctl, Slot.PARKED)).toBe(1);
    Atomics.store(new Int32Array(gate), 0, 1);
    Atomics.notify(new Int32Array(gate), 0);
    expect(await waiting).toBe(true);
    const got: number[] = [];
    await vi.waitFor(() => {
      consumer.drain((view) => got.push(view[1]!));
      expect(got).toEqual([0, 1, 2]);
    });
    await message(producer, 'done');
    await producer.terminate();
    expect(await consumer.waitForDataAsync(0)).toBe(false);
  });
});
