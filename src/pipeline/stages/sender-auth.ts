// Sender authentication (DESIGN §7, docs/sender-auth.md): SPF (envelope sender and HELO), DKIM, DMARC and
// ARC of the message as it arrived, with mailauth through the gateway's resolver (timeouts, cache, a
// per-message lookup budget and deadline). The stage reports; the policy layer (policy/sender-auth.ts)
// decides what a DMARC failure does, the deliver verdict writes our Authentication-Results header, the
// outbreak stage weighs failures (outbreak/adaptive/auth.ts), tracking records `auth.checked`.
import type { Config } from '../../config/schema.ts';
import { parseDuration } from '../../config/schema.ts';
import {
  arcOverride,
  dmarcEvaluated,
  effectiveSenderAuthSettings,
  senderAuthServId,
  type SenderAuthAction,
} from '../../policy/sender-auth.ts';
import type { AuthResolver } from '../../senderauth/resolver.ts';
import { verifySender, type SenderAuthResult } from '../../senderauth/verify.ts';
import type { DmarcDetail, TrackingEvent } from '../../tracking/events.ts';
import type { Stage, StageContext } from '../stage.ts';
import { countForgedAuthResults } from '../../senderauth/headers.ts';

export interface SenderAuthDeps {
  resolver: AuthResolver;
  /** the result a message's first scan recorded (senderauth/recorded.ts); null when none was */
  recorded?: (mid: number) => SenderAuthResult | null;
}

export function senderAuthStage(config: Config, deps: SenderAuthDeps): Stage {
  const s = config.senderAuth;
  const timeoutMs = parseDuration(s.timeout);
  const authservId = senderAuthServId(config);
  return {
    name: 'senderAuth',
    description: 'sender authentication: SPF (MAIL FROM, HELO), DKIM, DMARC, ARC (mailauth)',
    // the checks stop themselves at `timeout` (temperror); this only catches a stuck library
    timeoutMs: timeoutMs + 5000,
    // a failure is recorded (stage.failed) and the message goes on without results: the header then
    // says nothing about it, and no DMARC action is taken on a guess
    failureMode: 'skip',
    settings: {
      directions: s.directions,
      trustedArcSealers: s.trustedArcSealers,
      authservId,
      timeout: s.timeout,
      dns: {
        servers: s.dns.servers.length ? s.dns.servers : 'dns section / system',
        timeout: s.dns.timeout,
        cacheTtl: s.dns.cacheTtl,
        lookupBudget: s.dns.lookupBudget,
      },
      get dnsDown() {
        return deps.resolver.down;
      },
    },
    async run(ctx: StageContext) {
      if (!effectiveSenderAuthSettings(config, ctx.direction, ctx.policy)) return;
      // A release (days later, maybe) judges the message as it arrived: the first scan's result, not
      // DNS of today (a DKIM key rotated away would fail a signature that verified on arrival).
      const releasedMid = ctx.releasedFrom.length ? (ctx.env.releasedMid ?? ctx.mid) : null;
      const recorded = releasedMid !== null ? (deps.recorded?.(releasedMid) ?? null) : null;
      // (an event of an older version without our header value: checked again)
      if (recorded?.header) {
        ctx.senderAuth = { ...recorded, authservId, recordedFrom: releasedMid! };
        ctx.senderAuth.pctSample = Math.random() * 100;
        ctx.senderAuth.forged = countForgedAuthResults(await ctx.head(), authservId);
        findings(ctx, ctx.senderAuth, recorded.dmarcOverride ?? null);
        return;
      }
      ctx.senderAuth = await verifySender({
        // large messages stream from the spool (DKIM body hashes are computed as they pass)
        message: ctx.bytes ?? ctx.openMessage(),
        sender: ctx.env.sender,
        ip: ctx.env.senderIp,
        helo: ctx.env.helo,
        authservId,
        resolver: deps.resolver.forMessage(s.dns.lookupBudget, Date.now() + timeoutMs),
        minKeyBits: s.minKeyBits,
        deadline: Date.now() + timeoutMs,
      });
      const a = ctx.senderAuth;
      a.pctSample = Math.random() * 100;
      // Forged fields claiming our authserv-id must go, which costs a modified copy; ours is added at
      // send time.
      a.forged = countForgedAuthResults(await ctx.head(), authservId);
      findings(ctx, a, arcOverride(a, s.trustedArcSealers));
    },
  };

  /** What the results tell the policy layer and the adaptive rules, as findings. */
  function findings(ctx: StageContext, a: SenderAuthResult, override: string | null): void {
    if (override) {
      a.dmarcOverride = override;
      ctx.findings.push({ stage: 'senderAuth', code: 'auth.dmarc_override', severity: 'info', detail: override });
    } else if (a.dmarc.result === 'fail')
      ctx.findings.push({
        stage: 'senderAuth',
        code: 'auth.dmarc_fail',
        severity: a.dmarc.policy === 'reject' || a.dmarc.policy === 'quarantine' ? 'threat' : 'suspicious',
        detail: `dmarc=fail header.from=${a.dmarc.domain ?? '?'} policy=${a.dmarc.policy ?? 'none'}`,
      });
    if (a.spf.result === 'fail' || a.spf.result === 'softfail')
      ctx.findings.push({
        stage: 'senderAuth',
        code: `auth.spf_${a.spf.result}`,
        severity: 'suspicious',
        detail: `spf=${a.spf.result} smtp.mailfrom=${ctx.env.sender || '<>'}`,
      });
    if (a.dkim.some((d) => d.result === 'fail'))
      ctx.findings.push({
        stage: 'senderAuth',
        code: 'auth.dkim_fail',
        severity: 'suspicious',
        detail: a.dkim
          .filter((d) => d.result === 'fail')
          .map((d) => `dkim=fail header.d=${d.domain ?? '?'}`)
          .join(', '),
      });
    if (a.budgetExhausted)
      ctx.findings.push({
        stage: 'senderAuth',
        code: 'auth.lookup_budget',
        severity: 'suspicious',
        detail: `DNS lookup budget of ${s.dns.lookupBudget} exhausted`,
      });
  }
}

/** The `auth.checked` tracking event of a result and the policy's action (and what reports count). */
export function authCheckedEvent(
  r: SenderAuthResult,
  action: string,
  detail?: DmarcDetail | null,
): Extract<TrackingEvent, { type: 'auth.checked' }> {
  return {
    type: 'auth.checked',
    spf: r.spf.result,
    spfDomain: r.spf.domain,
    spfHelo: r.spfHelo?.result ?? null,
    dkim: r.dkim.map((d) => ({ result: d.result, domain: d.domain, selector: d.selector, aligned: d.aligned })),
    dmarc: r.dmarc.result,
    dmarcDomain: r.dmarc.domain,
    dmarcPolicy: r.dmarc.policy,
    arc: r.arc.result,
    action,
    lookups: r.lookups,
    ms: r.ms,
    header: r.header.split(/\r?\n/),
    ...(r.dmarcOverride ? { dmarcOverride: r.dmarcOverride } : {}),
    ...(r.recordedFrom !== undefined ? { recordedFrom: r.recordedFrom } : {}),
    ...(detail ? { detail } : {}),
  };
}

/**
 * What DMARC aggregate reports count of an incoming message whose Author Domain publishes a record
 * (RFC 7489 §7.2): null for any other (no record, an error before a result, our own relay's mail).
 */
export function dmarcReportDetail(
  config: Config,
  ctx: Pick<StageContext, 'direction' | 'policy' | 'env'> & { senderAuth: SenderAuthResult },
  action: SenderAuthAction['kind'],
  splitFrom: number | null,
): DmarcDetail | null {
  const r = ctx.senderAuth;
  const record = r.dmarc.record;
  const s = effectiveSenderAuthSettings(config, ctx.direction, ctx.policy);
  if (ctx.direction !== 'incoming' || !s || !record || (r.dmarc.result !== 'pass' && r.dmarc.result !== 'fail'))
    return null;
  const sender = ctx.env.sender;
  return {
    sourceIp: ctx.env.senderIp,
    envelopeFrom: sender.includes('@') ? sender.slice(sender.lastIndexOf('@') + 1).toLowerCase() : '',
    splitFrom,
    published: {
      domain: record.policyDomain,
      orgDomain: record.orgDomain,
      p: r.dmarc.p ?? 'none',
      sp: r.dmarc.sp ?? r.dmarc.p ?? 'none',
      pct: r.dmarc.pct,
      adkim: record.adkim,
      aspf: record.aspf,
      rua: record.rua,
    },
    dkimAligned: record.dkimAligned,
    spfAligned: record.spfAligned,
    ...dmarcEvaluated(r, s, action),
  };
}
