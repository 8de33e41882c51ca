/**
 * Backpressure on real threads. The consumer thread is held at a gate until the test has filled
 * the ring, so "the ring is full" is a fact, not a race; then it drains one frame at a time, slower
 * than any producer. Nothing may be lost, the main thread's pending writes must resolve (it never
 * blocks), and each producer's frames must arrive in order across the waits.
 */
import { describe, expect, it } from 'vitest';
import { ClosedError } from '../../src/shared/errors.js';
import { Ring, RingProducer } from '../../src/shared/ring.js';
import { expectedChecksum, makeBatch, makeFrame } from '../fixtures/ring/frames.js';
import { expectedTarget, message, startFixture } from '../fixtures/ring/start.js';

interface Report {
  loadedFrom: string;
  count: number;
  checksum: number;
  next: (number | null)[];
  errors: string[];
  maxUsed: number;
}

function openGate(gate: SharedArrayBuffer): void {
  const flag = new Int32Array(gate);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

describe('Ring (backpressure, real threads)', () => {
  it('a slow consumer: nothing lost, the main-thread promise resolves, per-producer order holds across the wait', async () => {
    const buffer = Ring.allocate(256);
    const ring = new Ring(buffer);
    const gate = new SharedArrayBuffer(4);
    const MAIN = 0;
    const WORKER = 1;
    const mainFrames = 120;
    const workerFrames = 120;
    const consumer = startFixture('backpressure', { role: 'slow-consumer', ring: buffer, gate, total: mainFrames + workerFrames, pauseMs: 0.2, timeoutMs: 30_000 });
    await message(consumer, 'ready');
    const report = message<Report>(consumer, 'report');

    const producer = new RingProducer(ring);
    // Fill the ring: writes succeed synchronously until one cannot, which hands back a promise.
    let seq = 0;
    let firstPending: Promise<void> | undefined;
    while (firstPending === undefined) firstPending = producer.write(makeFrame(MAIN, seq++));
    expect(seq).toBeGreaterThan(1);
    // What is left is less than the refused record (plus padding to the end, if it had to wrap).
    expect(ring.usedBytes()).toBeGreaterThan(ring.capacity - 80);
    expect(ring.counter('fullWaits')).toBe(1);
    // Later writes queue behind the waiting one instead of overtaking it, even ones that would fit.
    const pending: Promise<void>[] = [firstPending];
    for (; seq < mainFrames; seq += 3) {
      const p = producer.write(makeBatch(MAIN, seq, Math.min(3, mainFrames - seq)));
      expect(p).toBeInstanceOf(Promise);
      pending.push(p!);
    }
    expect(producer.queuedWrites).toBe(pending.length);
    // Accepted but not yet in the ring: quiescence must not be declared.
    expect(ring.isDrained()).toBe(false);
    expect(ring.stats().pendingWriters).toBe(pending.length);

    // A worker producer blocks in writeSync on the same full ring.
    const worker = startFixture('backpressure', { role: 'producer', ring: buffer, producer: WORKER, count: workerFrames, batch: 4 });
    const workerDone = message<{ loadedFrom: string }>(worker, 'done');

    let settled = 0;
    for (const p of pending) void p.then(() => settled++);
    // Only the consumer can make room, and it is still at the gate.
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(0);

    openGate(gate);
    await Promise.all(pending);
    expect(settled).toBe(pending.length);
    const [result, done] = await Promise.all([report, workerDone]);
    await Promise.all([consumer.terminate(), worker.terminate()]);

    expect(result.errors).toEqual([]);
    expect(result.count).toBe(mainFrames + workerFrames);
    expect(result.next[MAIN]).toBe(mainFrames);
    expect(result.next[WORKER]).toBe(workerFrames);
    expect(result.checksum).toBe(expectedChecksum([MAIN], mainFrames) + expectedChecksum([WORKER], workerFrames));
    expect(result.maxUsed).toBeLessThanOrEqual(ring.capacity);
    expect(producer.queuedWrites).toBe(0);
    expect(ring.isDrained()).toBe(true);
    expect(ring.stats()).toMatchObject({ framesWritten: mainFrames + workerFrames, framesRead: mainFrames + workerFrames, pendingWriters: 0 });
    expect(ring.counter('fullWaits')).toBeGreaterThan(1);
    expect([result.loadedFrom, done.loadedFrom]).toEqual([expectedTarget, expectedTarget]);
  });

  it("onFull: 'throw' never waits: a full ring throws RingFullError and keeps what it had", async () => {
    const ring = new Ring(Ring.allocate(64));
    const producer = new RingProducer(ring, { onFull: 'throw' });
    producer.write(makeFrame(0, 0, 28));
    producer.write(makeFrame(0, 1, 28));
    const before = ring.stats();
    expect(() => producer.write(makeFrame(0, 2, 1))).toThrow(expect.objectContaining({ name: 'RingFullError', code: 'CONVERGE_RING_FULL', requestedBytes: 8, freeBytes: 0 }));
    expect(() => producer.writeSync(makeFrame(0, 2, 1))).toThrow(expect.objectContaining({ code: 'CONVERGE_RING_FULL' }));
    expect(ring.stats()).toMatchObject({ framesWritten: before.framesWritten, usedBytes: before.usedBytes, fullRejects: 2, fullWaits: 0, pendingWriters: 0 });
  });

  it('close() rejects queued writes with ClosedError, including every chunk of a split batch, without unhandled rejections', async () => {
    const ring = new Ring(Ring.allocate(64));
    const producer = new RingProducer(ring);
    producer.write(makeFrame(0, 0, 28));
    producer.write(makeFrame(0, 1, 28));
    // 3 frames of 28 bytes cannot share one reservation in a 64-byte ring: three queued chunks.
    const pending = producer.write([makeFrame(0, 2, 28), makeFrame(0, 3, 28), makeFrame(0, 4, 28)]);
    expect(pending).toBeInstanceOf(Promise);
    expect(producer.queuedWrites).toBe(3);
    ring.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(pending).rejects.toMatchObject({ code: 'CONVERGE_CLOSED' });
    expect(producer.queuedWrites).toBe(0);
    expect(ring.stats().pendingWriters).toBe(0);
    expect(() => producer.write(makeFrame(0, 5, 4))).toThrow(ClosedError);
  });
});
