import pg from 'pg';
import { PostgresStore, TaskManager } from '../src/coordination/index.js';
const url = 'postgres://postgres@127.0.0.1:5432/test';
async function trial(merged: boolean) {
  const schema = 'mrg_' + process.pid + (merged ? 'm' : 's');
  const store = new PostgresStore({ connectionString: url, schema });
  const tm = new TaskManager({ store });
  for (let i = 0; i < 4; i++) await tm.submitMany(Array.from({ length: 5000 }, (_, k) => ({ payload: { i: i * 5000 + k } })));
  const c = new pg.Client({ connectionString: url }); await c.connect();
  const s = `"${schema}"`;
  const t0 = performance.now();
  let prev: string[] = [];
  for (let k = 0; k < 78; k++) {
    const args = [prev, prev.map(() => 1), prev.map(() => 'completed'), prev.map(() => 'null')];
    if (merged) {
      const r = await c.query(`WITH s AS MATERIALIZED (SELECT count(*) AS n FROM ${s}.settle_batch('a', $1::text[], $2::integer[], $3::text[], $4::json[])) SELECT c.* FROM s, ${s}.claim_batch('a', 1, NULL, NULL, NULL, 260) c WHERE s.n >= 0`, args);
      prev = r.rows.map((x) => x.id);
    } else {
      const r = await c.query(`SELECT * FROM ${s}.claim_batch('a', 1, NULL, NULL, NULL, 260)`);
      if (prev.length) await c.query(`SELECT * FROM ${s}.settle_batch('a', $1::text[], $2::integer[], $3::text[], $4::json[])`, args);
      prev = r.rows.map((x) => x.id);
    }
  }
  const ms = performance.now() - t0;
  await c.end(); await store.dropSchema(); await store.close();
  return Math.round(ms);
}
for (let i = 0; i < 3; i++) console.log('separate', await trial(false), 'merged', await trial(true));
