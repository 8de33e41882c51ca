// Development-only thread entry: registers the tsx loader, then imports the TypeScript entry named
// in workerData. Built packages never load this file (their .js entries exist). See worker-entry.ts.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.__convergeEntry);
