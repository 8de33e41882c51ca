import { readdirSync, readFileSync } from 'node:fs';
import { Logger, makeWorkerUtils, run as runGraphile } from 'graphile-worker';
import { PostgresStore, TaskClaimer, TaskManager } from '../src/coordination/index.js';
const url = 'postgres://postgres@127.0.0.1:5432/test';
const N = Number(process.env.N ?? 20000);
function pgCpu(): number {
  let t = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try { const st = readFileSync(`/proc/${p}/stat`, 'utf8'); const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')); if (!comm.startsWith('postgres')) continue; const f = st.slice(st.lastIndexOf(')') + 2).split(' '); t += Number(f[11]) + Number(f[12]); } catch {}
  }
  return t * 10; // ms (CLK_TCK 100)
}
async function measure(name: string, body: () => Promise<void>) {
  const c0 = pgCpu(); const n0 = process.cpuUsage(); const t0 = performance.now();
  await body();
  const wall = performance.now() - t0; const n = process.cpuUsage(n0); const pgms = pgCpu() - c0;
  console.log(name.padEnd(22), 'rate', Math.round(N * 1000 / wall), '/s  pg cpu µs/task', (pgms * 1000 / N).toFixed(1), ' node cpu µs/task', ((n.user + n.system) / N).toFixed(1));
}
async function converge() {
  const schema = 'cpu_' + process.pid;
  const main = new PostgresStore({ connectionString: url, schema }); const tm = new TaskManager({ store: main });
  await main.dropSchema();
  await measure('converge submit', async () => { for (let i = 0; i < N; i += 5000) await tm.submitMany(Array.from({ length: 5000 }, (_, k) => ({ payload: { i: i + k } }))); });
  const store = new PostgresStore({ connectionString: url, schema });
  await measure('converge deep', async () => {
    let ran = 0; let done!: () => void; const all = new Promise<void>((r) => (done = r));
    const claimer = new TaskClaimer(new TaskManager({ store }), { agentId: 'c0', batchSize: 500, idlePollMs: 1000 });
    const running = claimer.run(() => { if (++ran === N) done(); }, { concurrency: 24 });
    await all; await claimer.close(); await running;
  });
  await main.dropSchema(); await store.close(); await main.close();
}
async function graphile() {
  const schema = 'gcpu_' + process.pid;
  const logger = new Logger(() => () => undefined);
  const utils = await makeWorkerUtils({ connectionString: url, schema, logger }); await utils.migrate();
  await measure('graphile submit', async () => { for (let i = 0; i < N; i += 5000) await utils.addJobs(Array.from({ length: 5000 }, (_, k) => ({ identifier: 'noop', payload: { i: i + k } }))); });
  await measure('graphile deep', async () => {
    let ran = 0; let done!: () => void; const all = new Promise<void>((r) => (done = r));
    const runner = await runGraphile({ noHandleSignals: true, logger, taskList: { noop: async () => { if (++ran === N) done(); } }, preset: { worker: { connectionString: url, schema, concurrentJobs: 24, maxPoolSize: 10, pollInterval: 1000, localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } } });
    await all; await runner.stop();
  });
  await utils.withPgClient((c) => c.query(`DROP SCHEMA "${schema}" CASCADE`)); await utils.release();
}
const which = process.argv[2] ?? 'both';
for (let r = 0; r < Number(process.env.R ?? 2); r++) { if (which !== 'graphile') await converge(); if (which !== 'converge') await graphile(); }
