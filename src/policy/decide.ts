// The policy layer: findings and scores in, one verdict out.
import type { Config } from '../config/schema.ts';
import type { QuarantineHold, Verdict } from './verdict.ts';
import type { PipelineResult } from '../pipeline/pipeline.ts';
import type { StageContext } from '../pipeline/stage.ts';
import { decideOutbreak, effectiveOutbreakSettings } from './outbreak.ts';
import { decideAntivirus, effectiveAntivirusSettings, type AntivirusAction } from './antivirus.ts';
import { parseDuration } from '../config/schema.ts';
import { decideUnscannable, effectiveUnscannableSettings, type UnscannableAction } from './unscannable.ts';
import { decideAntispam, effectiveAntispamSettings, type AntispamAction } from './antispam.ts';
import { senderAuthAction } from './sender-auth.ts';

export interface DecideOptions {
  /** every recipient allow-listed the sender (end-user quarantine): quarantines open to end users are skipped */
  allowListed?: boolean;
  /** the header From is on the hub's block list for this direction (xdr/hub-blocklist.ts) */
  blocked?: { id: string; reason: string } | null;
}

export function decide(config: Config, result: PipelineResult, ctx: StageContext, o: DecideOptions = {}): Verdict {
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
  // The security team blocked this sender on every gateway: dropped, and tracking says by which entry.
  if (o.blocked)
    return { kind: 'drop', reason: `header From on the hub's block list (entry ${o.blocked.id}: ${o.blocked.reason})` };
  // Anti-virus first (Cisco's order): a virus verdict outranks Outbreak Filters.
  const released = new Set(ctx.releasedFrom);
  // Sender authentication (policy/sender-auth.ts): a failing DMARC reject / quarantine policy.
  const auth = senderAuthAction(config, ctx, released);
  if (auth.kind === 'drop') return { kind: 'drop', reason: auth.reason };
  if (auth.kind === 'bounce') return { kind: 'bounce', reason: auth.reason, reply: auth.reply };
  const avSettings = ctx.antivirus ? effectiveAntivirusSettings(config, ctx.direction, ctx.policy) : null;
  const av: AntivirusAction =
    ctx.antivirus && avSettings ? decideAntivirus(ctx.antivirus, avSettings, { released }) : { kind: 'none' };
  if (av.kind === 'drop') return { kind: 'drop', reason: av.reason };
  const unscannable = unscannableAction(config, ctx, released);
  const holds: QuarantineHold[] = [];
  if (auth.kind === 'quarantine')
    holds.push({
      quarantine: auth.quarantine,
      reason: auth.reason,
      retentionMs: retentionOf(config, auth.quarantine),
      ids: auth.ids,
    });
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
  // rspamd's opinion (policy/antispam.ts): after anti-virus, before Outbreak Filters.
  const spamSettings = ctx.antispam ? effectiveAntispamSettings(config, ctx.direction, ctx.policy) : null;
  const spam: AntispamAction =
    ctx.antispam && spamSettings ? decideAntispam(ctx.antispam, spamSettings, { released }) : { kind: 'none' };
  if (spam.kind === 'drop') return { kind: 'drop', reason: spam.reason };
  if (spam.kind === 'bounce') return { kind: 'bounce', reason: spam.reason, reply: spam.reply };
  if (spam.kind === 'quarantine')
    addHold(holds, {
      quarantine: spam.quarantine,
      reason: spam.reason,
      retentionMs: retentionOf(config, spam.quarantine),
      ids: spam.ids,
    });
  // A limit reached: part of the message was never looked at (policy/unscannable.ts).
  if (unscannable.kind === 'drop') return { kind: 'drop', reason: unscannable.reason };
  if (unscannable.kind === 'quarantine')
    addHold(holds, {
      quarantine: unscannable.quarantine,
      reason: unscannable.reason,
      retentionMs: retentionOf(config, unscannable.quarantine),
      ids: unscannable.ids,
    });
  // the same tag twice (anti-virus and limits both say "unscannable") is put on once
  const subjectTag =
    [
      ...new Set(
        [
          av.kind === 'deliver' ? av.subjectTag : null,
          unscannable.kind === 'deliver' ? unscannable.subjectTag : null,
          spam.kind === 'deliver' ? spam.subjectTag : null,
        ].filter((t): t is string => !!t),
      ),
    ].join('') || undefined;
  const avDelivery = {
    ...(av.kind === 'deliver' ? { strip: av.strip } : {}),
    ...(subjectTag ? { subjectTag } : {}),
    ...(spam.kind === 'deliver' && spam.headers.length ? { headers: spam.headers } : {}),
  };
  const settings = ctx.outbreak ? effectiveOutbreakSettings(config, ctx.direction, ctx.policy) : null;
  if (ctx.outbreak && settings) {
    const action = decideOutbreak(ctx.outbreak, settings, { released: released.has('outbreak') });
    switch (action.kind) {
      case 'quarantine':
        addHold(holds, {
          quarantine: 'outbreak',
          reason: action.reason,
          retentionMs: action.retentionMs,
          ids: ctx.outbreak.hits.filter((h) => h.level > 0).map((h) => h.id),
        });
        break;
      case 'modify':
        if (!holds.length)
          return {
            kind: 'deliver',
            reason: [
              `Outbreak Filters: ${action.reason}`,
              unscannable.kind === 'deliver' ? unscannable.reason : '',
              spam.kind === 'deliver' ? spam.reason : '',
            ]
              .filter(Boolean)
              .join('; '),
            modify: action.plan,
            ...avDelivery,
          };
        break;
      case 'none':
        break;
      default: {
        const never: never = action;
        throw new Error(`unhandled outbreak action ${JSON.stringify(never)}`);
      }
    }
  }
  if (holds.length && o.allowListed) {
    // Recipients decide for their own quarantines only: never the virus or Outbreak quarantine.
    const openToEndUsers = (name: string) =>
      (config.quarantine.policy.find((q) => q.name === name)?.endUsers ?? 'none') !== 'none';
    const kept = holds.filter((h) => !openToEndUsers(h.quarantine));
    if (!kept.length)
      return {
        kind: 'deliver',
        reason: `sender allow-listed by the recipients (skipped ${holds.map((h) => h.quarantine).join(', ')})`,
        ...avDelivery,
      };
    holds.splice(0, holds.length, ...kept);
  }
  if (holds.length) return { kind: 'quarantine', reason: holds.map((h) => h.reason).join('; '), holds };
  if (av.kind === 'deliver' || unscannable.kind === 'deliver' || spam.kind === 'deliver')
    return {
      kind: 'deliver',
      reason: [
        av.kind === 'deliver' ? av.reason : '',
        unscannable.kind === 'deliver' ? unscannable.reason : '',
        spam.kind === 'deliver' ? spam.reason : '',
      ]
        .filter(Boolean)
        .join('; '),
      ...avDelivery,
    };
  return { kind: 'deliver', reason: 'no policy action' };
}

/** What the policy does about the limits this copy reached (also what tracking records). */
export function unscannableAction(
  config: Config,
  ctx: Pick<StageContext, 'direction' | 'policy' | 'findings' | 'antivirus'>,
  released: ReadonlySet<string>,
): UnscannableAction {
  const s = effectiveUnscannableSettings(config, ctx.direction, ctx.policy);
  if (!s) return { kind: 'none' };
  // clamd found it unscannable too (an encrypted archive, say) and its policy holds such mail: one
  // quarantine for "could not be looked at", not two the analyst must release it from.
  const av = ctx.antivirus ? effectiveAntivirusSettings(config, ctx.direction, ctx.policy) : null;
  const quarantine =
    ctx.antivirus?.verdict === 'unscannable' && av?.unscannable.action === 'quarantine'
      ? av.unscannable.quarantine
      : s.quarantine;
  return decideUnscannable(ctx.findings, { ...s, quarantine }, { released });
}

/** Two reasons to hold a message in the same quarantine are one hold managed by both sets of ids. */
function addHold(holds: QuarantineHold[], hold: QuarantineHold): void {
  const same = holds.find((h) => h.quarantine === hold.quarantine);
  if (!same) holds.push(hold);
  else {
    same.reason = `${same.reason}; ${hold.reason}`;
    same.ids = [...new Set([...same.ids, ...hold.ids])];
    same.retentionMs = Math.max(same.retentionMs, hold.retentionMs);
  }
}

/** A quarantine's retention; the Outbreak quarantine's comes from the policy, never from here. */
function retentionOf(config: Config, quarantine: string): number {
  if (quarantine === 'virus') return parseDuration(config.quarantine.virus.retention);
  const q = config.quarantine.policy.find((p) => p.name === quarantine);
  // Config validation guarantees the name exists; a month is the safe fallback should it not.
  return q ? parseDuration(q.retention) : 30 * 86_400_000;
}
