// Mail policies (DESIGN §3.4): ordered, first match wins, "default" last. Incoming policies match the
// recipient, outgoing policies the sender. Recipients that land in different policies are split into
// separate copies, each with its own MID.
import type { Config } from '../config/schema.ts';
import { addressMatches } from '../smtp/address.ts';

export type Direction = 'incoming' | 'outgoing';

export interface PolicyGroup {
  policy: string;
  /** indexes into the envelope's recipient list */
  rids: number[];
}

export function matchPolicy(config: Config, direction: Direction, address: string): string {
  for (const p of config.policies[direction]) {
    if (p.name === 'default' || addressMatches(address, p.match)) return p.name;
  }
  return 'default';
}

/** Groups recipients by policy in policy order. */
export function splitByPolicy(
  config: Config,
  direction: Direction,
  sender: string,
  recipients: string[],
): PolicyGroup[] {
  if (direction === 'outgoing') {
    return [{ policy: matchPolicy(config, 'outgoing', sender), rids: recipients.map((_, i) => i) }];
  }
  const groups = new Map<string, number[]>();
  recipients.forEach((r, i) => {
    const p = matchPolicy(config, 'incoming', r);
    let g = groups.get(p);
    if (!g) groups.set(p, (g = []));
    g.push(i);
  });
  const order = config.policies.incoming.map((p) => p.name);
  return [...groups.entries()]
    .sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]))
    .map(([policy, rids]) => ({ policy, rids }));
}
