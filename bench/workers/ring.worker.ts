/**
 * Thread roles for bench/ring.bench.ts: producers and consumers over our ring, postMessage and
 * ringbuf.js, and the two sides of the wake-latency probe. One file, one role per thread, chosen by
 * `workerData.role`. Every role reports `{ type: 'ready' }`, waits for GO, runs, then reports
 * `{ type: 'done', ... }` with `endNs` taken on its own thread (process.hrtime is one monotonic clock
 * for all threads).
 */
import { readFileSync } from 'node:fs';
import { isMainThread, parentPort } from 'node:worker_threads';
import { RingBuffer } from 'ringbuf.js';
import { FrameDecoder, FrameEncoder, readEvents } from '../../src/shared/framing.js';
import { Slot } from '../../src/shared/ring-layout.js';
import { Ring, RingConsumer, RingProducer } from '../../src/shared/ring.js';
import { getWorkerData } from '../../src/shared/worker-entry.js';
import type { PageChangeEvent } from '../../src/shared/events.js';
import { BATCH, POOL, checksumOf, makeEvents } from './events.js';
import { Control, type ConsumerDone, type RoleData } from './protocol.js';

const now = (): number => Number(process.hrtime.bigint());

/**
 * CPU time this thread has used, in ms (Linux: /proc/thread-self/stat, 10 ms ticks), or NaN. Node 20
 * has no per-thread CPU clock; this one tells what a side costs apart from how the (shared) machine
 * scheduled it.
 */
function threadCpuMs(): number {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after "pid (comm) ".
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

function ready(control: SharedArrayBuffer): void {
  const ctl = new Int32Array(control);
  parentPort!.postMessage({ type: 'ready' });
  while (Atomics.load(ctl, Control.GO) === 0) Atomics.wait(ctl, Control.GO, 0);
}

/** The batches a producer sends: its slice of the pool, cycling, BATCH events each. */
function* batches(total: number, offset: number): Generator<PageChangeEvent[]> {
  const pool = makeEvents(POOL);
  // Pre-slice every distinct batch once, so the timed loop does no event building.
  const distinct = new Map<number, PageChangeEvent[]>();
  for (let sent = 0; sent < total; sent += BATCH) {
    const start = (offset + sent) % POOL;
    const size = Math.min(BATCH, total - sent);
    const key = start * 1024 + size;
    let batch = distinct.get(key);
    if (batch === undefined) {
      batch = new Array<PageChangeEvent>(size);
      for (let i = 0; i < size; i++) batch[i] = pool[(start + i) % POOL]!;
      distinct.set(key, batch);
    }
    yield batch;
  }
}

function ringProducer(data: Extract<RoleData, { role: 'ring-producer' }>): void {
  const producer = new RingProducer(new Ring(data.ring));
  const encoder = new FrameEncoder();
  const all = [...batches(data.total, data.offset)];
  ready(data.control);
  const cpu = threadCpuMs();
  for (const batch of all) producer.writeSync(encoder.encodeEvents(1, null, batch));
  parentPort!.postMessage({ type: 'done', endNs: now(), cpuMs: threadCpuMs() - cpu });
}

function ringConsumer(data: Extract<RoleData, { role: 'ring-consumer' }>): void {
  const consumer = new RingConsumer(new Ring(data.ring));
  const decoder = new FrameDecoder();
  let count = 0;
  let checksum = 0;
  const visit = (view: Uint8Array): void => {
    const events = readEvents(decoder.decode(view)[2]);
    count += events.length;
    checksum += checksumOf(events);
  };
  ready(data.control);
  const cpu = threadCpuMs();
  while (count < data.total) if (consumer.waitForData(1_000)) consumer.drain(visit);
  parentPort!.postMessage({ type: 'done', count, checksum, endNs: now(), cpuMs: threadCpuMs() - cpu } satisfies ConsumerDone);
}

function postProducer(data: Extract<RoleData, { role: 'post-producer' }>): void {
  const all = [...batches(data.total, data.offset)];
  ready(data.control);
  const cpu = threadCpuMs();
  if (data.batch === 1) {
    for (const batch of all) for (const event of batch) data.port.postMessage(event);
  } else {
    for (const batch of all) data.port.postMessage(batch);
  }
  parentPort!.postMessage({ type: 'done', endNs: now(), cpuMs: threadCpuMs() - cpu });
}

function postConsumer(data: Extract<RoleData, { role: 'post-consumer' }>): void {
  let count = 0;
  let checksum = 0;
  let cpu = Number.NaN;
  data.port.on('message', (message: PageChangeEvent | PageChangeEvent[]) => {
    if (count === 0) cpu = threadCpuMs();
    if (Array.isArray(message)) {
      count += message.length;
      checksum += checksumOf(message);
    } else {
      count++;
      checksum += message.pageId.length;
    }
    if (count === data.total) {
      parentPort!.postMessage({ type: 'done', count, checksum, endNs: now(), cpuMs: threadCpuMs() - cpu } satisfies ConsumerDone);
      data.port.close();
    }
  });
  parentPort!.postMessage({ type: 'ready' });
}

function ringbufProducer(data: Extract<RoleData, { role: 'ringbuf-producer' }>): void {
  const ring = new RingBuffer(data.ring, Uint8Array);
  const encoder = new FrameEncoder();
  const header = new Uint8Array(4);
  const headerView = new DataView(header.buffer);
  const all = [...batches(data.total, data.offset)];
  ready(data.control);
  const cpu = threadCpuMs();
  for (const batch of all) {
    const frame = encoder.encodeEvents(1, null, batch);
    // ringbuf.js is wait-free and has no way to sleep: a full ring is a spin.
    while (ring.availableWrite() < 4 + frame.length);
    headerView.setUint32(0, frame.length, true);
    ring.push(header);
    ring.push(frame);
  }
  parentPort!.postMessage({ type: 'done', endNs: now(), cpuMs: threadCpuMs() - cpu });
}

function ringbufConsumer(data: Extract<RoleData, { role: 'ringbuf-consumer' }>): void {
  const ring = new RingBuffer(data.ring, Uint8Array);
  const decoder = new FrameDecoder();
  const header = new Uint8Array(4);
  const headerView = new DataView(header.buffer);
  let scratch = new Uint8Array(1 << 16);
  let count = 0;
  let checksum = 0;
  ready(data.control);
  const cpu = threadCpuMs();
  while (count < data.total) {
    while (ring.availableRead() < 4);
    ring.pop(header, 4);
    const length = headerView.getUint32(0, true);
    if (length > scratch.length) scratch = new Uint8Array(2 ** Math.ceil(Math.log2(length)));
    while (ring.availableRead() < length);
    ring.pop(scratch, length);
    const events = readEvents(decoder.decode(scratch.subarray(0, length))[2]);
    count += events.length;
    checksum += checksumOf(events);
  }
  parentPort!.postMessage({ type: 'done', count, checksum, endNs: now(), cpuMs: threadCpuMs() - cpu } satisfies ConsumerDone);
}

function wakeProducer(data: Extract<RoleData, { role: 'wake-producer' }>): void {
  const ring = new Ring(data.ring);
  const producer = new RingProducer(ring);
  const ctl = new Int32Array(data.control);
  const sentAt = new Float64Array(data.control, Control.SENT_AT_BYTE, 1);
  const frame = new FrameEncoder().encodeEvents(1, null, makeEvents(1));
  const pause = new Int32Array(new SharedArrayBuffer(4));
  ready(data.control);
  for (let sample = 0; sample < data.samples; sample++) {
    // Idle means: the previous sample was seen and the consumer has spun out and parked.
    while (Atomics.load(ctl, Control.ACK) < sample) Atomics.wait(ctl, Control.ACK, sample - 1, 10);
    while (Atomics.load(ring.ctl, Slot.PARKED) !== 1) Atomics.wait(pause, 0, 0, 0.05);
    // Then a random pause, so samples do not fall into step with timer ticks.
    Atomics.wait(pause, 0, 0, 0.2 + Math.random() * 0.8);
    sentAt[0] = now();
    producer.writeSync(frame);
  }
  parentPort!.postMessage({ type: 'done', endNs: now() });
}

function wakeConsumer(data: Extract<RoleData, { role: 'wake-consumer' }>): void {
  const consumer = new RingConsumer(new Ring(data.ring));
  const ctl = new Int32Array(data.control);
  const sentAt = new Float64Array(data.control, Control.SENT_AT_BYTE, 1);
  const decoder = new FrameDecoder();
  const latenciesUs: number[] = [];
  let checksum = 0;
  const visit = (view: Uint8Array): void => {
    latenciesUs.push((now() - sentAt[0]!) / 1_000);
    checksum += checksumOf(readEvents(decoder.decode(view)[2]));
  };
  ready(data.control);
  while (latenciesUs.length < data.samples) {
    if (!consumer.waitForData(1_000)) continue;
    consumer.drain(visit);
    Atomics.store(ctl, Control.ACK, latenciesUs.length);
    Atomics.notify(ctl, Control.ACK);
  }
  parentPort!.postMessage({ type: 'done', count: latenciesUs.length, checksum, endNs: now(), latenciesUs } satisfies ConsumerDone);
}

function main(data: RoleData): void {
  switch (data.role) {
    case 'ring-producer':
      return ringProducer(data);
    case 'ring-consumer':
      return ringConsumer(data);
    case 'post-producer':
      return postProducer(data);
    case 'post-consumer':
      return postConsumer(data);
    case 'ringbuf-producer':
      return ringbufProducer(data);
    case 'ringbuf-consumer':
      return ringbufConsumer(data);
    case 'wake-producer':
      return wakeProducer(data);
    case 'wake-consumer':
      return wakeConsumer(data);
  }
}

if (!isMainThread) main(getWorkerData<RoleData>());
