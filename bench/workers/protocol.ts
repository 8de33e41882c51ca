/** What bench/ring.bench.ts and its thread roles (ring.worker.ts) exchange. */
import type { MessagePort } from 'node:worker_threads';

/** Int32 slots of the control SharedArrayBuffer every role receives. */
export const Control = {
  GO: 0,
  /** Wake probe: samples the consumer has seen. */
  ACK: 1,
  /** Byte offset of a Float64 slot: the wake probe's send time in ns. */
  SENT_AT_BYTE: 64,
  BYTES: 128,
} as const;

export type RoleData =
  | { role: 'ring-producer'; ring: SharedArrayBuffer; control: SharedArrayBuffer; total: number; offset: number }
  | { role: 'ring-consumer'; ring: SharedArrayBuffer; control: SharedArrayBuffer; total: number }
  | { role: 'post-producer'; port: MessagePort; control: SharedArrayBuffer; total: number; offset: number; batch: number }
  | { role: 'post-consumer'; port: MessagePort; control: SharedArrayBuffer; total: number }
  | { role: 'ringbuf-producer'; ring: SharedArrayBuffer; control: SharedArrayBuffer; total: number; offset: number }
  | { role: 'ringbuf-consumer'; ring: SharedArrayBuffer; control: SharedArrayBuffer; total: number }
  | { role: 'wake-producer'; ring: SharedArrayBuffer; control: SharedArrayBuffer; samples: number }
  | { role: 'wake-consumer'; ring: SharedArrayBuffer; control: SharedArrayBuffer; samples: number };

/** What a consumer role reports. */
export interface ConsumerDone {
  type: 'done';
  count: number;
  checksum: number;
  endNs: number;
  /** CPU time the consumer thread used while running (NaN where it cannot be read). */
  cpuMs?: number;
  /** Wake probe only: latencies in µs. */
  latenciesUs?: number[];
}
