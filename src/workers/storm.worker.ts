/**
 * Threads of `converge storm` (src/main/storm.ts): producers generate realistic page-change events —
 * what a watcher over a large monorepo emits during a branch switch — and write them into the ingest
 * ring in frames; the consumer drains, decodes and counts them. Both report a checksum (the sum of
 * pageId lengths) so the storm doubles as an end-to-end check that nothing was lost.
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import type { PageChangeEvent } from '../shared/events.js';
import { FrameDecoder, FrameEncoder, readEvents } from '../shared/framing.js';
import { Ring, RingConsumer, RingProducer } from '../shared/ring.js';
import { StormSlot, type StormConsumerData, type StormMessage, type StormProducerData, type StormWorkerData } from '../shared/storm-protocol.js';
import { getWorkerData } from '../shared/worker-entry.js';

/** Distinct events a producer cycles through. */
const POOL = 8_192;
/** The ingest tag of an event frame (protocol.ts IngestTag.EVENTS). */
const EVENTS_TAG = 1;

const now = (): number => Number(process.hrtime.bigint());

/** Event `i` of producer `producer`'s stream: replacements, additions, invalidations and import edges. */
function stormEvent(producer: number, i: number): PageChangeEvent {
  const pkg = `packages/pkg-${(i + producer * 7) % 41}`;
  const path = `${pkg}/src/module-${i % 223}/file-${producer}-${i}.ts`;
  const pageId = `file:${path}`;
  const sourceId = 'file:/work/monorepo';
  const ts = 1_795_312_028_434 + i;
  switch (i % 10) {
    case 0:
    case 1:
    case 2:
    case 3:
      return { kind: 'page_replaced', pageId, sourceId, dataType: 'design_monorepo_file', related: [`${pageId}#${i - 1}`], extra: { value: (i % 1000) / 8, relativePath: path }, ts };
    case 4:
    case 5:
    case 6:
      return { kind: 'page_added', pageId, sourceId, dataType: 'design_monorepo_file', extra: { value: i % 97, relativePath: path }, ts };
    case 7:
    case 8:
      return { kind: 'page_invalidated', pageId, sourceId, dataType: 'design_monorepo_file', reason: 'content changed on disk', ts };
    default:
      return { kind: 'page_graph_edge_added', pageId, sourceId, related: [`file:${pkg}/src/index.ts`], edgeType: 'imports', ts };
  }
}

function pageIdLengths(events: readonly PageChangeEvent[]): number {
  let sum = 0;
  for (const event of events) sum += event.pageId.length;
  return sum;
}

function waitForGo(control: SharedArrayBuffer): void {
  const ctl = new Int32Array(control);
  while (Atomics.load(ctl, StormSlot.GO) === 0) Atomics.wait(ctl, StormSlot.GO, 0);
}

function report(message: StormMessage): void {
  parentPort!.postMessage(message);
}

function produce(data: StormProducerData): void {
  const producer = new RingProducer(new Ring(data.ring));
  const encoder = new FrameEncoder();
  // Flat strings, as a native watcher or a parser hands them over (see bench/workers/events.ts).
  const pool = JSON.parse(JSON.stringify(Array.from({ length: POOL }, (_, i) => stormEvent(data.producer, i)))) as PageChangeEvent[];
  // Full batches only, wrapping around the pool, so every frame but a producer's last has `batch` events.
  const batches: PageChangeEvent[][] = [];
  for (let start = 0; start < POOL; start += data.batch) {
    batches.push(Array.from({ length: data.batch }, (_, i) => pool[(start + i) % POOL]!));
  }
  report({ type: 'ready' });
  waitForGo(data.control);
  let sent = 0;
  let checksum = 0;
  for (let k = 0; sent < data.events; k++) {
    let batch = batches[k % batches.length]!;
    if (batch.length > data.events - sent) batch = batch.slice(0, data.events - sent);
    producer.writeSync(encoder.encodeEvents(EVENTS_TAG, null, batch));
    sent += batch.length;
    checksum += pageIdLengths(batch);
  }
  report({ type: 'produced', producer: data.producer, events: sent, checksum, endNs: now() });
}

function consume(data: StormConsumerData): void {
  const consumer = new RingConsumer(new Ring(data.ring));
  const decoder = new FrameDecoder();
  let events = 0;
  let frames = 0;
  let checksum = 0;
  const visit = (view: Uint8Array): void => {
    const decoded = readEvents(decoder.decode(view)[2]);
    frames++;
    events += decoded.length;
    checksum += pageIdLengths(decoded);
  };
  report({ type: 'ready' });
  waitForGo(data.control);
  const deadline = performance.now() + data.timeoutMs;
  while (events < data.events && performance.now() < deadline) {
    if (consumer.waitForData(100)) consumer.drain(visit);
  }
  report({ type: 'consumed', events, frames, checksum, endNs: now() });
}

function main(data: StormWorkerData): void {
  switch (data.role) {
    case 'producer':
      return produce(data);
    case 'consumer':
      return consume(data);
  }
}

if (!isMainThread) main(getWorkerData<StormWorkerData>());
