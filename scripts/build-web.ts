// `npm install` (the prepare script) builds the web UI into dist/web, so the quick start stays two
// commands. Without the build tools (an install that left out devDependencies) it says so and
// succeeds: the gateway then serves a page saying how to build the UI, and everything else works.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const vite = path.join(root, 'node_modules', 'vite', 'bin', 'vite.js');
if (!existsSync(vite)) {
  console.warn('web UI not built: vite is not installed (npm install without --omit=dev builds it)');
  process.exit(0);
}
const r = spawnSync(process.execPath, [vite, 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
