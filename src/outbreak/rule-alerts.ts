// Alerts for a rule change (DESIGN §4.5): a rule rising to a policy's quarantine threshold, or falling
// below it (held mail is then re-evaluated and released early). One alert per rule while changes are
// few; one summary per bundle when it moves many (a first bundle of 2,000 rules must not send 2,000
// e-mails).
import type { Config } from '../config/schema.ts';
import type { AlertInput } from '../alerts/alerts.ts';
import { effectiveOutbreakSettings } from '../policy/outbreak.ts';
import type { RuleChange } from './updater.ts';

/** Rule changes alerted one by one; beyond this, one summary alert per bundle change. */
const MAX_RULE_ALERTS = 10;

export function ruleChangeAlerts(config: Config, c: RuleChange): AlertInput[] {
  const out: AlertInput[] = [];
  const thresholds = new Set<number>();
  for (const dir of ['incoming', 'outgoing'] as const)
    for (const p of config.policies[dir]) {
      const s = effectiveOutbreakSettings(config, dir, p.name);
      if (s) thresholds.add(s.quarantineThreshold);
    }
  const threshold = thresholds.size ? Math.min(...thresholds) : 6;
  const before = new Map((c.previous?.rules ?? []).map((r) => [r.id, r]));
  const after = new Map((c.next?.rules ?? []).map((r) => [r.id, r]));
  const raised = [...after.values()].filter((r) => {
    const old = before.get(r.id);
    return r.level >= threshold && (!old || old.level < threshold);
  });
  const lowered = [...before.values()].filter((old) => {
    const r = after.get(old.id);
    return old.level >= threshold && (!r || r.level < threshold);
  });
  const version = c.next?.version ?? null;
  // One alert per rule while changes are few; a summary when a bundle moves many rules at once (a
  // first bundle of 2,000 rules must not send 2,000 e-mails).
  if (raised.length <= MAX_RULE_ALERTS)
    for (const r of raised)
      out.push({
        class: 'outbreak',
        severity: r.level >= 4 ? 'critical' : 'warning',
        key: `outbreak.rule_raised:${r.id}:${r.level}`,
        title: `${r.id} at level ${r.level} (${r.category})`,
        text: `Outbreak rule ${r.id} (${r.description}) is now at threat level ${r.level}, at or above the quarantine threshold ${threshold}. Matching messages are held in the Outbreak quarantine.`,
        data: { ruleId: r.id, level: r.level, previousLevel: before.get(r.id)?.level ?? null, version },
      });
  else
    out.push({
      class: 'outbreak',
      severity: raised.some((r) => r.level >= 4) ? 'critical' : 'warning',
      key: `outbreak.rules_raised:${version}`,
      title: `${raised.length} outbreak rules at or above level ${threshold} (version ${version})`,
      text: `Rules version ${version} puts ${raised.length} rules at or above the quarantine threshold ${threshold}; matching messages are held in the Outbreak quarantine. First ones: ${raised
        .slice(0, 20)
        .map((r) => `${r.id} (level ${r.level}, ${r.category}: ${r.description})`)
        .join('; ')}.`,
      data: { ruleIds: raised.map((r) => r.id).slice(0, 200), count: raised.length, version },
    });
  if (lowered.length <= MAX_RULE_ALERTS)
    for (const old of lowered) {
      const r = after.get(old.id);
      out.push({
        class: 'outbreak',
        severity: 'info',
        key: `outbreak.rule_lowered:${old.id}:${r?.level ?? 'retired'}`,
        title: r ? `${old.id} lowered to level ${r.level}` : `${old.id} retired`,
        text: `Outbreak rule ${old.id} (${old.description}) fell below the quarantine threshold ${threshold}${r ? ` (now level ${r.level})` : ' (retired)'}. Held messages are re-evaluated and released when no longer a threat.`,
        data: { ruleId: old.id, level: r?.level ?? null, previousLevel: old.level, version },
      });
    }
  else
    out.push({
      class: 'outbreak',
      severity: 'info',
      key: `outbreak.rules_lowered:${version ?? 'flushed'}`,
      title: `${lowered.length} outbreak rules fell below level ${threshold}`,
      text: `${c.reason === 'flush' ? 'The cached rules were flushed' : `Rules version ${version} lowers or retires ${lowered.length} rules`}; held messages are re-evaluated and released when no longer a threat. First ones: ${lowered
        .slice(0, 20)
        .map((r) => r.id)
        .join(', ')}.`,
      data: { ruleIds: lowered.map((r) => r.id).slice(0, 200), count: lowered.length, version },
    });
  return out;
}
