/** Piscina entry of the colony pool threads. Loaded by path; the logic lives in pool-task.ts. */
import type { PoolWorkerData } from '../shared/protocol.js';
import { getWorkerData } from '../shared/worker-entry.js';
import { createPoolTaskRunner } from './pool-task.js';

export default createPoolTaskRunner(getWorkerData<PoolWorkerData>());
