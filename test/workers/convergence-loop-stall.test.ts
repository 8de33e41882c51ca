/**
 * A producer that reserves ingest-ring space and dies before publishing it (a thread killed
 * mid-write) must not wedge the convergence worker: after the stall timeout the worker skips the
 * reservation, reports it to the main thread ('ring-stalled'), counts it in the ring's stats, and
 * goes on with the frames written after it. Real worker thread, real rings.
 */
import { MessageChannel, type Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { PageChange } from '../../src/shared/events.js';
import { FrameDecoder, FrameEncoder, unpackDispatchGroups } from '../../src/shared/framing.js';
import { type ConvergenceWorkerData, DispatchTag, IngestTag, MainSlot, type RingStallInfo, type SubscriptionSpec } from '../../src/shared/protocol.js';
import { RESERVED, Slot } from '../../src/shared/ring-layout.js';
import { Ring, RingConsumer, RingProducer } from '../../src/shared/ring.js';
import { startWorker } from '../../src/shared/worker-entry.js';

const root = process.env.CONVERGE_TEST_TARGET === 'dist' ? '../../dist' : '../../src';
const WORKER = new URL(`${root}/workers/convergence.worker.js`, import.meta.url);

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

describe('convergence worker and a dead producer', () => {
  it('skips the dead reservation after stallTimeoutMs, reports it, and dispatches what came after', async () => {
    const ingest = Ring.allocate(64 * 1024);
    const dispatch = Ring.allocate(1024 * 1024);
    const { port1, port2 } = new MessageChannel();
    const data: ConvergenceWorkerData & { port: typeof port2 } = {
      ingest,
      dispatch,
      main: new SharedArrayBuffer(MainSlot.SIZE * 4),
      episodeBudget: 1000,
      rateLimit: { minIntervalMs: 1000, burst: 4, trailing: true },
      changeFeedSize: 16,
      settleMs: 0,
      subscriptionCapacity: 10,
      stallTimeoutMs: 200,
      port: port2,
    };
    const worker = startWorker(WORKER, { workerData: data, transferList: [port2] });
    workers.push(worker);
    const stalls: RingStallInfo[] = [];
    port1.on('message', (m: { type?: string } & RingStallInfo) => {
      if (m.type === 'ring-stalled') stalls.push({ ring: m.ring, position: m.position, bytes: m.bytes, waitedMs: m.waitedMs });
    });
    const ingestRing = new Ring(ingest);
    const producer = new RingProducer(ingestRing);
    const encoder = new FrameEncoder();
    const spec: SubscriptionSpec = { id: 'sub_000000000001', handle: 1, predicate: {}, target: 'main' };
    await producer.write(encoder.encodeIngest([IngestTag.SUBSCRIBE, 1, spec]));

    // What a producer leaves behind when it dies right after reserving: TAIL moved and the mark.
    const tail = Atomics.load(ingestRing.ctl, Slot.TAIL);
    expect(Atomics.compareExchange(ingestRing.ctl, Slot.TAIL, tail, (tail + 128) | 0)).toBe(tail);
    Atomics.store(ingestRing.words, (tail & ingestRing.mask) >> 2, RESERVED | (128 >>> 2));
    const events = [PageChange.added('a', { ts: 1 }), PageChange.added('b', { ts: 1 })];
    await producer.write(encoder.encodeEvents(IngestTag.EVENTS, {}, events));

    const dispatches = new RingConsumer(new Ring(dispatch));
    const decoder = new FrameDecoder();
    let dispatched = 0;
    const deadline = Date.now() + 20_000;
    while (dispatched < 2 || stalls.length === 0) {
      if (Date.now() > deadline) throw new Error(`after the stall: ${dispatched} dispatches, ${stalls.length} reports`);
      dispatches.drain((view) => {
        const frame = decoder.decodeDispatch(view);
        expect(frame[0]).toBe(DispatchTag.DISPATCH);
        for (const [, handles] of unpackDispatchGroups(frame)) dispatched += handles.length;
      });
      await dispatches.waitForDataAsync(50);
    }
    expect(dispatched).toBe(2);
    expect(stalls).toHaveLength(1);
    expect(stalls[0]).toMatchObject({ ring: 'ingest', position: tail, bytes: 128 });
    expect(stalls[0]!.waitedMs).toBeGreaterThanOrEqual(200);
    expect(ingestRing.stats()).toMatchObject({ stalledReservations: 1, stalledBytes: 128 });
    await producer.write(encoder.encodeIngest([IngestTag.CLOSE]));
    port1.close();
  });
});
