// The shared test corpus's manifest (../shared/corpus/manifest.tsv: path, corpus, label, …), read by the
// detection scripts (detection.ts, detection-rspamd.ts, hub-campaigns.ts): columns found by their header.
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface ManifestEntry {
  path: string;
  corpus: string;
  label: string;
}

export function readManifest(corpusDir: string): ManifestEntry[] {
  const lines = readFileSync(path.join(corpusDir, 'manifest.tsv'), 'utf8').split('\n');
  const header = lines[0].split('\t');
  const [p, c, l] = ['path', 'corpus', 'label'].map((name) => header.indexOf(name));
  return lines
    .slice(1)
    .filter((line) => line.trim())
    .map((line) => line.split('\t'))
    .map((f) => ({ path: f[p], corpus: f[c], label: f[l] }));
}
