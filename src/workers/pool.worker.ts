/**
 * Piscina entry of the colony pool threads. Loaded by path; the logic lives in pool-lane.ts. Each
 * Piscina task is a lane: it claims and runs tasks from the shared table until it is idle.
 */
import type { LaneStart, PoolThreadData } from '../shared/pool-protocol.js';
import { getWorkerData } from '../shared/worker-entry.js';
import { type LaneEnv, runLane } from './pool-lane.js';

const data = getWorkerData<PoolThreadData | undefined>();
const env: LaneEnv = { ingest: data?.ingest, acks: data?.acks };

export default function poolTask(start: LaneStart): Promise<void> {
  return runLane(start, env);
}
