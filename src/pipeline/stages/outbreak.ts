// Outbreak Filters (DESIGN §4): score the message against the active outbreak rules and the adaptive
// rules. The stage only reports the level and the matching rules; the policy layer decides. The parse
// worker has usually scored the message already (ctx.outbreakScore, see outbreak/offload.ts): the stage
// then applies those hits, and scores on the event loop only when they were computed with another
// bundle, adaptive switch or anti-virus signature version than the ones in force now.
import type { Config } from '../../config/schema.ts';
import { parseByteSize } from '../../config/schema.ts';
import { assess, emptyAssessment, truncatedContent, withAuthHits, type OutbreakEngine } from '../../outbreak/engine.ts';
import { effectiveOutbreakSettings } from '../../policy/outbreak.ts';
import type { Stage } from '../stage.ts';
import { limitFinding } from '../../policy/unscannable.ts';

export function outbreakStage(config: Config, engine: OutbreakEngine): Stage {
  const maxScanSize = parseByteSize(config.outbreakFilters.maxScanSize);
  return {
    name: 'outbreak',
    description:
      "Outbreak Filters: threat level 0–5 from outbreak rules and adaptive rules (the parse worker's score; scored here when the bundle changed since)",
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
      // Above maxScanSize only the content past the first maxScanSize bytes is skipped: attachment names,
      // true types, sizes, hashes and archive members are always scored (padding must not hide them).
      const partial = ctx.size > maxScanSize;
      if (partial)
        ctx.findings.push(
          limitFinding(
            'outbreak',
            'scan_size',
            `message of ${ctx.size} bytes is larger than maxScanSize ${maxScanSize}: content scored up to it`,
          ),
        );
      const avSignatureVersion = ctx.antivirus?.signatureVersion ?? null;
      // a worker that failed or timed out while scoring fails this stage (tempfail), like scoring here would
      const fromWorker = ctx.outbreakScore ? await ctx.outbreakScore : null;
      const a =
        fromWorker &&
        fromWorker.generation === (engine.bundle?.generation ?? null) &&
        fromWorker.adaptive === engine.adaptive &&
        fromWorker.avSignatureVersion === avSignatureVersion
          ? assess(fromWorker.hits, version)
          : engine.score(
              {
                parsed: partial ? truncatedContent(ctx.parsed, maxScanSize) : ctx.parsed,
                sender: ctx.env.sender.toLowerCase(),
                avSignatureVersion,
              },
              settings.bypassExtensions,
            );
      // sender-authentication failures weighed with the sender's brand facts (outbreak/adaptive/auth.ts)
      const scored = withAuthHits(a, engine.adaptive, ctx.senderAuth, ctx.parsed.from);
      ctx.outbreak = partial ? { ...scored, partial } : scored;
      for (const h of scored.hits)
        ctx.findings.push({
          stage: 'outbreak',
          code: h.adaptive ? 'outbreak.adaptive' : 'outbreak.rule',
          severity: h.level >= 3 ? 'threat' : 'suspicious',
          detail: `${h.id} level ${h.level} ${h.category}${h.evidence ? `: ${h.evidence}` : ''}`,
        });
    },
  };
}
