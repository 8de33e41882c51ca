// Removes dist/ before a build so that a file deleted from src/ cannot linger in the output.
import { rmSync } from 'node:fs';
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
