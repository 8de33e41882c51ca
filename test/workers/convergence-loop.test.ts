/**
 * The convergence worker thread's loop, driven through its real rings: with a dedicated ack ring
 * and `maxInFlight`, it stops taking events while too many dispatches are unacknowledged, and
 * resumes on acknowledgements that never queue behind those events.
 */
import { MessageChannel, type Worker } from 'node:worker_threads';
import { wrap } from 'comlink';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeEndpoint } from '../../src/shared/endpoint.js';
import { PageChange } from '../../src/shared/events.js';
import { eventToTuple, FrameDecoder, FrameEncoder, unpackDispatchGroups } from '../../src/shared/framing.js';
import { type ConvergenceControl, type ConvergenceWorkerData, DispatchTag, IngestTag, MainSlot, type SubscriptionSpec } from '../../src/shared/protocol.js';
import { Ring, RingConsumer, RingProducer } from '../../src/shared/ring.js';
import { startWorker } from '../../src/shared/worker-entry.js';

const root = process.env.CONVERGE_TEST_TARGET === 'dist' ? '../../dist' : '../../src';
const WORKER = new URL(`${root}/workers/convergence.worker.js`, import.meta.url);

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

describe('convergence loop backpressure', () => {
  it('stops taking events at maxInFlight unacknowledged dispatches and resumes on acks from the ack ring', async () => {
    const ingest = Ring.allocate(64 * 1024);
    const dispatch = Ring.allocate(1024 * 1024);
    const acks = Ring.allocate(4096);
    const main = new SharedArrayBuffer(MainSlot.SIZE * 4);
    const { port1, port2 } = new MessageChannel();
    const data: ConvergenceWorkerData & { port: typeof port2 } = {
      ingest,
      dispatch,
      main,
      acks,
      maxInFlight: 10,
      episodeBudget: 1000,
      rateLimit: { minIntervalMs: 1000, burst: 4, trailing: true },
      changeFeedSize: 16,
      settleMs: 0,
      subscriptionCapacity: 10,
      port: port2,
    };
    const worker = startWorker(WORKER, { workerData: data, transferList: [port2] });
    workers.push(worker);
    const ingestRing = new Ring(ingest);
    const ingestWriter = new RingProducer(ingestRing);
    const ackWriter = new RingProducer(new Ring(acks));
    const dispatches = new RingConsumer(new Ring(dispatch));
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const control = wrap<ConvergenceControl>(nodeEndpoint(port1, () => ingestRing.nudge()));
    const replies = new Map<number, unknown>();
    port1.on('message', (m: { type?: string; requestId?: number; value?: unknown }) => {
      if (m.type === 'reply') replies.set(m.requestId!, m.value);
    });

    const spec: SubscriptionSpec = { id: 'sub_000000000001', handle: 1, predicate: {}, target: 'main' };
    await ingestWriter.write(encoder.encode([IngestTag.SUBSCRIBE, 1, spec]));
    // Five frames of 20 events: 100 dispatches to make, at most 10 (+ one frame) in flight.
    for (let f = 0; f < 5; f++) {
      const events = Array.from({ length: 20 }, (_, i) => eventToTuple({ ...PageChange.added(`p${f * 20 + i}`), ts: 0 }));
      await ingestWriter.write(encoder.encode([IngestTag.EVENTS, {}, events]));
    }

    let dispatched = 0;
    const readUntil = async (count: number): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (dispatched < count) {
        if (Date.now() > deadline) throw new Error(`only ${dispatched} of ${count} dispatches arrived`);
        dispatches.drain((view) => {
          const frame = decoder.decodeDispatch(view);
          expect(frame[0]).toBe(DispatchTag.DISPATCH);
          for (const [, handles] of unpackDispatchGroups(frame)) dispatched += handles.length;
        });
        if (dispatched < count) await dispatches.waitForDataAsync(50);
      }
    };
    const ack = async (n: number): Promise<void> => {
      await ackWriter.write(encoder.encode([IngestTag.ACKS, n, []]));
      ingestRing.nudge(); // the worker parks on the ingest ring's signal
    };

    await readUntil(20);
    expect(replies.get(1)).toBe(true);
    // Blocked: the first frame's 20 dispatches are unacknowledged, so the other frames stay in the ring.
    const blocked = await control.status();
    expect(blocked.inFlight).toBe(20);
    expect(blocked.counters.eventsReceived).toBe(20);
    expect(ingestRing.isDrained()).toBe(false);
    expect(dispatched).toBe(20);

    // Acknowledging 11 leaves 9 in flight: one more frame goes through, then it blocks again.
    await ack(11);
    await readUntil(40);
    const again = await control.status();
    expect(again.counters.eventsReceived).toBe(40);
    expect(again.inFlight).toBe(29);

    await ack(29);
    await readUntil(60);
    await ack(20);
    await readUntil(80);
    await ack(20);
    await readUntil(100);
    await ack(20);
    const waitId = 99;
    await ingestWriter.write(encoder.encode([IngestTag.AWAIT_QUIESCENCE, waitId]));
    const deadline = Date.now() + 20_000;
    while (!replies.has(waitId)) {
      if (Date.now() > deadline) throw new Error('no quiescence');
      await control.status(); // a round trip through the worker, so its reply has been posted
    }
    expect((replies.get(waitId) as { counters: { dispatchesEmitted: number } }).counters.dispatchesEmitted).toBe(100);
    await ingestWriter.write(encoder.encode([IngestTag.CLOSE]));
    port1.close();
  });
});
