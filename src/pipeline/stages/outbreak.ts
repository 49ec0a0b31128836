// Outbreak Filters (DESIGN §4): score the message against the active outbreak rules and the adaptive
// rules. The stage only reports the level and the matching rules; the policy layer decides.
import type { Config } from '../../config/schema.ts';
import { parseByteSize } from '../../config/schema.ts';
import { emptyAssessment, type OutbreakEngine } from '../../outbreak/engine.ts';
import { effectiveOutbreakSettings } from '../../policy/outbreak.ts';
import type { Stage } from '../stage.ts';

export function outbreakStage(config: Config, engine: OutbreakEngine): Stage {
  const maxScanSize = parseByteSize(config.outbreakFilters.maxScanSize);
  return {
    name: 'outbreak',
    description: 'Outbreak Filters: threat level 0–5 from outbreak rules and adaptive rules',
    timeoutMs: 5_000,
    // Never deliver unscored mail because scoring broke: the message waits and is scored again.
    failureMode: 'tempfail',
    settings: {
      enabled: config.outbreakFilters.enabled,
      adaptiveRules: config.outbreakFilters.adaptiveRules,
      maxScanSize,
      get rules() {
        return engine.bundle ? `version ${engine.bundle.version}, ${engine.bundle.ruleCount} rules` : 'none';
      },
    },
    async run(ctx) {
      const settings = effectiveOutbreakSettings(config, ctx.direction, ctx.policy);
      if (!settings) return;
      const version = engine.bundle?.version ?? null;
      if (ctx.size > maxScanSize) {
        ctx.outbreak = emptyAssessment('too_large', version);
        ctx.findings.push({
          stage: 'outbreak',
          code: 'outbreak.not_scanned',
          severity: 'info',
          detail: `message of ${ctx.size} bytes is larger than maxScanSize ${maxScanSize}`,
        });
        return;
      }
      if (!ctx.parsed) {
        ctx.outbreak = emptyAssessment('not_parsed', version);
        ctx.findings.push({
          stage: 'outbreak',
          code: 'outbreak.not_scanned',
          severity: 'suspicious',
          detail: 'the message could not be parsed',
        });
        return;
      }
      const a = engine.score(
        {
          parsed: ctx.parsed,
          sender: ctx.env.sender.toLowerCase(),
          avSignatureVersion: ctx.antivirus?.signatureVersion ?? null,
        },
        settings.bypassExtensions,
      );
      ctx.outbreak = a;
      for (const h of a.hits)
        ctx.findings.push({
          stage: 'outbreak',
          code: h.adaptive ? 'outbreak.adaptive' : 'outbreak.rule',
          severity: h.level >= 3 ? 'threat' : 'suspicious',
          detail: `${h.id} level ${h.level} ${h.category}${h.evidence ? `: ${h.evidence}` : ''}`,
        });
    },
  };
}
