import { PostgresStore, TaskClaimer, TaskManager } from '../src/coordination/index.js';
const url = 'postgres://postgres@127.0.0.1:5432/test';
const schema = 'cnt_' + process.pid;
const main = new PostgresStore({ connectionString: url, schema });
const tm = new TaskManager({ store: main });
const N = 20000;
for (let i = 0; i < N; i += 5000) await tm.submitMany(Array.from({ length: 5000 }, (_, k) => ({ payload: { i: i + k } })));
const store = new PostgresStore({ connectionString: process.env.SC ? url + '?options=-c%20synchronous_commit%3Doff' : url, schema });
const counts: Record<string, [number, number, number]> = {};
for (const m of ['claimNextBatch', 'settleTasks', 'claimNext', 'pendingWake', 'getTask']) {
  const orig = (store as any)[m].bind(store);
  (store as any)[m] = async (...a: any[]) => { const t = performance.now(); const r = await orig(...a); const c = (counts[m] ??= [0, 0, 0]); c[0]++; c[1] += Array.isArray(r) ? r.length : 1; c[2] += performance.now() - t; return r; };
}
let ran = 0; let done!: () => void; const all = new Promise<void>((r) => (done = r));
const claimer = new TaskClaimer(new TaskManager({ store }), { agentId: 'c0', batchSize: 500, idlePollMs: 1000 });
const t0 = performance.now(); const cpu0 = process.cpuUsage();
const running = claimer.run(() => { if (++ran === N) done(); }, { concurrency: 24 });
await all; await claimer.close(); await running;
const ms = performance.now() - t0;
console.log("deep", Math.round(N * 1000 / ms), "/s", counts, "node cpu ms", process.cpuUsage(cpu0), "wall", ms);
await main.dropSchema(); await store.close(); await main.close();
