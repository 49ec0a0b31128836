// The policy layer: findings and scores in, one verdict out.
import type { Config } from '../config/schema.ts';
import type { Verdict } from './verdict.ts';
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
  const avSettings = ctx.antivirus ? effectiveAntivirusSettings(config, ctx.direction, ctx.policy) : null;
  const av: AntivirusAction =
    ctx.antivirus && avSettings
      ? decideAntivirus(ctx.antivirus, avSettings, { releasedFromVirus: ctx.releasedFrom === 'virus' })
      : { kind: 'none' };
  if (av.kind === 'drop') return { kind: 'drop', reason: av.reason };
  if (av.kind === 'quarantine')
    return {
      kind: 'quarantine',
      quarantine: 'virus',
      reason: av.reason,
      retentionMs: parseDuration(config.quarantine.virus.retention),
      names: av.names,
    };
  const avDelivery = av.kind === 'deliver' ? { strip: av.strip, subjectTag: av.subjectTag ?? undefined } : {};
  const settings = ctx.outbreak ? effectiveOutbreakSettings(config, ctx.direction, ctx.policy) : null;
  if (ctx.outbreak && settings) {
    const action = decideOutbreak(ctx.outbreak, settings, { released: ctx.releasedFrom === 'outbreak' });
    switch (action.kind) {
      case 'quarantine':
        return { kind: 'quarantine', quarantine: 'outbreak', reason: action.reason, retentionMs: action.retentionMs };
      case 'modify':
        return { kind: 'deliver', reason: `Outbreak Filters: ${action.reason}`, modify: action.plan, ...avDelivery };
      case 'none':
        break;
      default: {
        const never: never = action;
        throw new Error(`unhandled outbreak action ${JSON.stringify(never)}`);
      }
    }
  }
  if (av.kind === 'deliver') return { kind: 'deliver', reason: av.reason, ...avDelivery };
  return { kind: 'deliver', reason: 'no policy action' };
}
