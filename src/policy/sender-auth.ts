// The sender-authentication part of the policy layer (DESIGN §7): a mail policy's settings and the
// senderAuth stage's result in, one action out — what a failing DMARC `reject` or `quarantine` policy
// does (RFC 7489 §6.3, pct per §6.6.4) — and the deliver verdict's Authentication-Results header.
// Pure functions; the gateway carries the action out.
import type { Config } from '../config/schema.ts';
import type { PolicySenderAuthConfig } from '../config/sender-auth-schema.ts';
import type { SenderAuthResult } from '../senderauth/verify.ts';
import type { Verdict } from './verdict.ts';
import type { Direction } from './outbreak.ts';
import type { DmarcDetail } from '../tracking/events.ts';

/** Our authserv-id: the configured one, else the gateway's hostname. */
export function senderAuthServId(config: Config): string {
  return (config.senderAuth.authservId ?? config.hostname).toLowerCase();
}

/** The policy's sender-authentication settings after `inherit`, or null when it does not verify. */
export function effectiveSenderAuthSettings(
  config: Config,
  direction: Direction,
  policy: string,
): PolicySenderAuthConfig | null {
  if (!config.senderAuth.enabled || !config.senderAuth.directions.includes(direction)) return null;
  const list = config.policies[direction];
  const own = list.find((p) => p.name === policy) ?? list[list.length - 1];
  let s = own.senderAuth;
  if (s.mode === 'inherit' && own.name !== 'default') s = list[list.length - 1].senderAuth;
  return s.mode === 'disabled' ? null : s;
}

/**
 * Whether a DMARC failure is overridden by a trusted intermediary (RFC 7489 §6.7 local policy; RFC 8617
 * §7.2): the ARC chain validates, its newest set was sealed by a domain the administrator trusts, and
 * that sealer recorded dmarc=pass for the same From domain when the message reached it. Mailing lists
 * and forwarders break DKIM (subject tags, footers) and SPF (their own IP); their seal carries the result
 * from before. Returns the override note for tracking, or null.
 */
export function arcOverride(r: SenderAuthResult, trustedSealers: readonly string[]): string | null {
  if (r.dmarc.result !== 'fail' || r.arc.result !== 'pass' || !r.arc.sealer) return null;
  const sealer = r.arc.sealer;
  // the sealer itself or a subdomain of a trusted entry (arc.example.com under example.com)
  if (!trustedSealers.some((t) => sealer === t || sealer.endsWith(`.${t}`))) return null;
  const up = r.arc.upstream;
  if (up?.dmarc !== 'pass') return null;
  const from = r.dmarc.domain?.toLowerCase().replace(/\.$/, '') ?? null;
  if (!from || (up.fromDomain && up.fromDomain.replace(/\.$/, '') !== from)) return null;
  return `trusted ARC sealer ${sealer} (i=${r.arc.instance ?? '?'}) saw dmarc=pass for ${from}`;
}

export type SenderAuthAction =
  | { kind: 'none' }
  | { kind: 'drop'; reason: string }
  | { kind: 'bounce'; reason: string; reply: string }
  | { kind: 'quarantine'; reason: string; quarantine: string; ids: string[] }
  | { kind: 'tag'; reason: string; subjectTag: string };

/**
 * What the policy does about a DMARC failure. `sample` is a number in [0, 100) for pct (RFC 7489
 * §6.6.4: the policy applies to pct % of failing mail, the rest gets the next lower policy).
 */
export function decideSenderAuth(
  r: SenderAuthResult,
  s: PolicySenderAuthConfig,
  opts: { released: ReadonlySet<string>; sample?: number },
): SenderAuthAction {
  if (r.dmarc.result !== 'fail' || r.dmarcOverride || !r.dmarc.policy || r.dmarc.policy === 'none')
    return { kind: 'none' };
  const policy = appliedPolicy(r, s, opts.sample);
  if (policy === 'none') return { kind: 'none' };
  const setting = policy === 'reject' ? s.dmarcReject : s.dmarcQuarantine;
  const what = `DMARC ${policy} policy of ${r.dmarc.domain ?? 'the author domain'} (dmarc=fail${r.dmarc.pct < 100 ? `, pct=${r.dmarc.pct}` : ''})`;
  switch (setting.action) {
    case 'none':
      return { kind: 'none' };
    case 'drop':
      return { kind: 'drop', reason: `sender authentication: ${what}` };
    case 'bounce':
      return { kind: 'bounce', reason: `sender authentication: ${what}`, reply: setting.reply };
    case 'tag':
      return { kind: 'tag', reason: `sender authentication: ${what}`, subjectTag: setting.subjectTag };
    case 'quarantine': {
      const q = setting.quarantine!;
      // released from that quarantine (by an administrator or at its exit): delivered, not held again
      if (opts.released.has(q)) return { kind: 'none' };
      return {
        kind: 'quarantine',
        reason: `sender authentication: ${what}`,
        quarantine: q,
        ids: [`DMARC_${policy.toUpperCase()}`],
      };
    }
  }
}

/**
 * The policy a DMARC failure is held to after pct= sampling (RFC 7489 §6.6.4): the published one for pct %
 * of failing mail, the next lower for the rest.
 */
function appliedPolicy(
  r: SenderAuthResult,
  s: PolicySenderAuthConfig,
  sample = r.pctSample ?? Math.random() * 100,
): 'reject' | 'quarantine' | 'none' {
  const policy = r.dmarc.policy ?? 'none';
  if (!s.honorPct || r.dmarc.pct >= 100 || sample < r.dmarc.pct) return policy;
  return policy === 'reject' ? 'quarantine' : 'none';
}

/**
 * What a DMARC aggregate report says was done with a message (RFC 7489 Appendix C, policy_evaluated):
 * the disposition our action amounts to (drop and bounce reject it, quarantine and tag quarantine it) and
 * why that is not what the domain's policy asked for — a trusted ARC sealer's override, pct sampling, or
 * the administrator's action for the policy (local_policy).
 */
export function dmarcEvaluated(
  r: SenderAuthResult,
  s: PolicySenderAuthConfig,
  action: SenderAuthAction['kind'],
): Pick<DmarcDetail, 'disposition' | 'reasons'> {
  const disposition = action === 'drop' || action === 'bounce' ? 'reject' : action === 'none' ? 'none' : 'quarantine';
  if (r.dmarc.result !== 'fail' || !r.dmarc.policy || r.dmarc.policy === 'none') return { disposition, reasons: [] };
  if (r.dmarcOverride) return { disposition, reasons: [{ type: 'trusted_forwarder', comment: r.dmarcOverride }] };
  const reasons: DmarcDetail['reasons'] = [];
  const applied = appliedPolicy(r, s);
  if (applied !== r.dmarc.policy) reasons.push({ type: 'sampled_out', comment: `pct=${r.dmarc.pct}` });
  if (disposition !== applied)
    reasons.push({ type: 'local_policy', comment: `the mail policy's action for p=${applied} is ${action}` });
  return { disposition, reasons };
}

/** The deliver verdict carries our Authentication-Results header (and removes forged ones). */
export function withAuthResults(verdict: Verdict, r: SenderAuthResult | null | undefined): Verdict {
  if (verdict.kind !== 'deliver' || !r) return verdict;
  // forged: unknown (undefined, null) counts as present — removing costs a copy, leaving one misleads
  return { ...verdict, authResults: { value: r.header, authservId: r.authservId, removeForged: r.forged !== 0 } };
}

/** The policy's action for this copy's sender-authentication result (none when the stage did not run). */
export function senderAuthAction(
  config: Config,
  ctx: { direction: Direction; policy: string; senderAuth?: SenderAuthResult | null },
  released: ReadonlySet<string>,
): SenderAuthAction {
  const s = ctx.senderAuth ? effectiveSenderAuthSettings(config, ctx.direction, ctx.policy) : null;
  return ctx.senderAuth && s ? decideSenderAuth(ctx.senderAuth, s, { released }) : { kind: 'none' };
}

/**
 * What sender authentication adds to the one verdict (called on decide's result): a deliver verdict
 * gets our Authentication-Results header and, for a DMARC failure whose policy action is `tag`, the
 * subject tag. Drop, bounce and quarantine were decided in decide.ts.
 */
export function withSenderAuth(
  config: Config,
  verdict: Verdict,
  ctx: { direction: Direction; policy: string; senderAuth?: SenderAuthResult | null; releasedFrom: readonly string[] },
): Verdict {
  if (verdict.kind !== 'deliver' || !ctx.senderAuth) return verdict;
  const out = withAuthResults(verdict, ctx.senderAuth) as Extract<Verdict, { kind: 'deliver' }>;
  const a = senderAuthAction(config, ctx, new Set(ctx.releasedFrom));
  if (a.kind !== 'tag') return out;
  return {
    ...out,
    reason: out.reason === 'no policy action' ? a.reason : `${out.reason}; ${a.reason}`,
    subjectTag: out.subjectTag?.includes(a.subjectTag) ? out.subjectTag : `${a.subjectTag}${out.subjectTag ?? ''}`,
  };
}
