// The policy layer: findings and scores in, one verdict out.
import type { Config } from '../config/schema.ts';
import type { QuarantineHold, Verdict } from './verdict.ts';
import type { PipelineResult } from '../pipeline/pipeline.ts';
import type { StageContext } from '../pipeline/stage.ts';
import { decideOutbreak, effectiveOutbreakSettings } from './outbreak.ts';
import { decideAntivirus, effectiveAntivirusSettings, type AntivirusAction } from './antivirus.ts';
import { parseDuration } from '../config/schema.ts';

export function decide(config: Config, result: PipelineResult, ctx: StageContext): Verdict {
  if (result.stoppedBy) {
    if (result.stoppedBy.failureMode === 'tempfail')
      return {
        kind: 'tempfail',
        reason: `${result.stoppedBy.stage} failed: ${result.stoppedBy.error}`,
        retryAfterMs: 60_000,
      };
    // A stage whose failure mode is "quarantine" holds the message by retrying until policy
    // quarantines exist (issue 4); it is never delivered unscanned.
    return {
      kind: 'tempfail',
      reason: `${result.stoppedBy.stage} failed: ${result.stoppedBy.error}`,
      retryAfterMs: 300_000,
    };
  }
  // Anti-virus first (Cisco's order): a virus verdict outranks Outbreak Filters.
  const released = new Set(ctx.releasedFrom);
  const avSettings = ctx.antivirus ? effectiveAntivirusSettings(config, ctx.direction, ctx.policy) : null;
  const av: AntivirusAction =
    ctx.antivirus && avSettings ? decideAntivirus(ctx.antivirus, avSettings, { released }) : { kind: 'none' };
  if (av.kind === 'drop') return { kind: 'drop', reason: av.reason };
  const holds: QuarantineHold[] = [];
  if (av.kind === 'quarantine') {
    holds.push({
      quarantine: av.quarantine,
      reason: av.reason,
      retentionMs: retentionOf(config, av.quarantine),
      // the virus quarantine is managed by virus name
      ids: av.names.map((n) => n.replace(/\s+/g, '_')),
    });
    // An infected message is not scored further; one that could not be scanned still meets Outbreak
    // Filters, and may sit in both quarantines.
    if (ctx.antivirus?.verdict === 'infected') return { kind: 'quarantine', reason: av.reason, holds };
  }
  const avDelivery = av.kind === 'deliver' ? { strip: av.strip, subjectTag: av.subjectTag ?? undefined } : {};
  const settings = ctx.outbreak ? effectiveOutbreakSettings(config, ctx.direction, ctx.policy) : null;
  if (ctx.outbreak && settings) {
    const action = decideOutbreak(ctx.outbreak, settings, { released: released.has('outbreak') });
    switch (action.kind) {
      case 'quarantine':
        holds.push({
          quarantine: 'outbreak',
          reason: action.reason,
          retentionMs: action.retentionMs,
          ids: ctx.outbreak.hits.filter((h) => h.level > 0).map((h) => h.id),
        });
        break;
      case 'modify':
        if (!holds.length)
          return { kind: 'deliver', reason: `Outbreak Filters: ${action.reason}`, modify: action.plan, ...avDelivery };
        break;
      case 'none':
        break;
      default: {
        const never: never = action;
        throw new Error(`unhandled outbreak action ${JSON.stringify(never)}`);
      }
    }
  }
  if (holds.length) return { kind: 'quarantine', reason: holds.map((h) => h.reason).join('; '), holds };
  if (av.kind === 'deliver') return { kind: 'deliver', reason: av.reason, ...avDelivery };
  return { kind: 'deliver', reason: 'no policy action' };
}

/** A quarantine's retention; the Outbreak quarantine's comes from the policy, never from here. */
function retentionOf(config: Config, quarantine: string): number {
  if (quarantine === 'virus') return parseDuration(config.quarantine.virus.retention);
  const q = config.quarantine.policy.find((p) => p.name === quarantine);
  // Config validation guarantees the name exists; a month is the safe fallback should it not.
  return q ? parseDuration(q.retention) : 30 * 86_400_000;
}
