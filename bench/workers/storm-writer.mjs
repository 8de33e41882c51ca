// The storm bench's writer process: `node storm-writer.mjs <root> <files> <dirs>`.
// Create storm: <files> new files across <dirs> directories; update storm: rewrites half of them.
// Prints one JSON line with the phase times (Date.now(), the same clock as the watching process).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [root, filesArg, dirsArg] = process.argv.slice(2);
const files = Number(filesArg);
const dirs = Number(dirsArg);
const path = (i) => join(root, `d${i % dirs}`, `f${i}.txt`);
for (let d = 0; d < dirs; d++) mkdirSync(join(root, `d${d}`), { recursive: true });
const createStart = Date.now();
for (let i = 0; i < files; i++) writeFileSync(path(i), `created ${i}\n`);
const updateStart = Date.now();
for (let i = 0; i < files; i += 2) writeFileSync(path(i), `rewritten ${i}\n`);
const end = Date.now();
process.stdout.write(`${JSON.stringify({ createStart, updateStart, end })}\n`);
