// Development-only Piscina entry: registers the tsx loader, imports the TypeScript pool entry named
// in workerData and re-exports its handler. Built packages never load this file. See worker-entry.ts.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const entry = await import(workerData.__convergeEntry);
export default entry.default;
