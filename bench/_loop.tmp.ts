import pg from 'pg';
import { PostgresStore, TaskManager } from '../src/coordination/index.js';
const url = 'postgres://postgres@127.0.0.1:5432/test';
const schema = 'loop_' + process.pid;
const store = new PostgresStore({ connectionString: url, schema });
const tm = new TaskManager({ store });
for (let i = 0; i < 4; i++) await tm.submitMany(Array.from({ length: 5000 }, (_, k) => ({ payload: { i: i * 5000 + k } })));
const c = new pg.Client({ connectionString: url }); await c.connect();
const s = `"${schema}"`;
let tc = 0, ts = 0;
for (let k = 0; k < 76; k++) {
  if (k === 40) {
    await c.query("LOAD 'auto_explain'"); await c.query("SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on; SET client_min_messages = log; SET auto_explain.log_level = notice");
    c.on('notice', (n) => console.log(n.message));
  }
  let t = performance.now();
  const r = await c.query(`SELECT * FROM ${s}.claim_batch('a', 1, NULL, NULL, NULL, 260)`);
  tc += performance.now() - t; t = performance.now();
  const ids = r.rows.map((x) => x.id);
  await c.query(`SELECT * FROM ${s}.settle_batch('a', $1::text[], $2::integer[], $3::text[], $4::json[])`, [ids, ids.map(() => 1), ids.map(() => 'completed'), ids.map(() => 'null')]);
  ts += performance.now() - t;
  if (k === 40) await c.query("SET auto_explain.log_min_duration = 100000");
}
console.log('claim total', tc, 'settle total', ts);
await c.end(); await store.dropSchema(); await store.close();
