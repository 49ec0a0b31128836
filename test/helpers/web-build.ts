// The built web UI (dist/web) as the browser tests need it: built when missing, and built again when a
// source file under web/ changed after the last build (a page edited since `npm install` would otherwise
// be tested as it was).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { WEB_DIR } from '../../src/web/serve.ts';

const root = path.resolve(import.meta.dirname, '../..');

/** The newest modification time of a file under `dir` (0 when there is none). */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules') continue;
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds the web UI when it is missing or older than its sources. */
export function ensureWebFresh(): void {
  const index = path.join(WEB_DIR, 'index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newestMtime(path.join(root, 'web'))) return;
  const r = spawnSync(process.execPath, [path.join(root, 'scripts/build-web.ts')], { cwd: root, stdio: 'inherit' });
  assert.equal(r.status, 0, 'the web UI builds');
}
