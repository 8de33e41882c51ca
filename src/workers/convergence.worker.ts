/** Thread entry of the convergence worker. Loaded by path; the logic lives in convergence-loop.ts. */
import { isMainThread, type MessagePort } from 'node:worker_threads';
import { getWorkerData } from '../shared/worker-entry.js';
import type { ConvergenceWorkerData } from '../shared/protocol.js';
import { runConvergenceWorker } from './convergence-loop.js';

if (isMainThread) throw new Error('convergence.worker is a worker thread entry; start it with new Worker()');
const { port, ...data } = getWorkerData<ConvergenceWorkerData & { port: MessagePort }>();
await runConvergenceWorker(data, port);
