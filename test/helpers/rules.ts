// A signed outbreak rule feed in a temporary directory, as the tests' gateways read it.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateKeyPair, signBundle } from '../../src/outbreak/bundle.ts';
import { tempDir } from './peers.ts';

export interface TestRule {
  id: string;
  level: number;
  category: string;
  description: string;
  condition: Record<string, unknown>;
}

/** Writes bundle version 1 with these rules; returns what `outbreakFilters.ruleFeed` needs. */
export function writeRuleFeed(rules: TestRule[]): { dir: string; publicKey: string; privateKey: string } {
  const dir = tempDir('bw-feed-');
  const keys = generateKeyPair();
  const published = new Date().toISOString();
  writeFileSync(
    path.join(dir, 'b.json'),
    JSON.stringify(
      signBundle({ version: 1, published, rules: rules.map((r) => ({ ...r, published })) }, keys.privateKey),
    ),
  );
  return { dir, publicKey: keys.publicKey, privateKey: keys.privateKey };
}
