// Adaptive rules on sender authentication (DESIGN §7, issue 15): the senderAuth stage's SPF/DKIM/DMARC
// results weighed together with what the sender rules already saw. A brand's own domain, or a domain made
// to look like it, whose mail fails DMARC is one of the strongest phishing signals there is; a bare DMARC
// or SPF failure (mailing lists, forwarders) is only a weak one. Applied by the outbreak stage on top of
// the worker's hits (the results are not known in the parse worker).
import { getDomain } from 'tldts';
import type { RuleHit } from '../types.ts';
import type { SenderAuthResult } from '../../senderauth/verify.ts';
import { BRANDS } from './lists.ts';
import { brandFusedInDomain, brandOwns } from './url.ts';

/** Sender rules whose evidence names a brand the sender does not own. */
const BRAND_SENDER_HITS = new Set([
  'ADAPTIVE_DISPLAY_NAME_BRAND',
  'ADAPTIVE_BRAND_FREE_MAIL',
  'ADAPTIVE_SENDER_BRAND_LOOKALIKE',
]);

function hit(id: string, level: number, description: string, evidence: string): RuleHit {
  return {
    id,
    level,
    category: 'phish',
    type: 'sender',
    description,
    viral: false,
    adaptive: true,
    evidence: evidence.slice(0, 120),
  };
}

/**
 * The authentication hits of a message. `from` is the header From address (lower case) or null;
 * `hits` are the other hits already found (the brand facts of the sender rules).
 */
export function authHits(r: SenderAuthResult, from: string | null, hits: readonly RuleHit[]): RuleHit[] {
  const out: RuleHit[] = [];
  // a failure a trusted ARC sealer vouches for (policy/sender-auth.ts arcOverride) is none
  const dmarcFail = r.dmarc.result === 'fail' && !r.dmarcOverride;
  const dkimPass = r.dkim.some((d) => d.result === 'pass' && d.aligned);
  const spfFail = r.spf.result === 'fail' && !dkimPass;
  const authorDomain = (r.dmarc.domain ?? (from?.includes('@') ? from.slice(from.lastIndexOf('@') + 1) : ''))
    .toLowerCase()
    .replace(/\.$/, '');
  const registrable = authorDomain ? getDomain(authorDomain) : null;
  if (dmarcFail && registrable) {
    const owner = BRANDS.find((b) => brandOwns(b, registrable));
    const lookalike = owner ? null : brandFusedInDomain(registrable);
    if (owner)
      out.push(
        hit(
          'ADAPTIVE_AUTH_BRAND_SPOOF',
          4,
          `mail in the name of ${owner.name} fails DMARC: the From domain is forged`,
          `${authorDomain} dmarc=fail`,
        ),
      );
    else if (lookalike)
      out.push(
        hit(
          'ADAPTIVE_AUTH_LOOKALIKE_FAIL',
          4,
          `a domain made to look like ${lookalike.name} whose mail fails DMARC`,
          `${authorDomain} dmarc=fail`,
        ),
      );
  }
  if (!out.length && (dmarcFail || spfFail)) {
    const brand = hits.find((h) => BRAND_SENDER_HITS.has(h.id));
    if (brand)
      out.push(
        hit(
          'ADAPTIVE_AUTH_BRAND_FAIL',
          3,
          'a sender posing as a brand whose mail also fails sender authentication',
          `${dmarcFail ? 'dmarc=fail' : 'spf=fail'}; ${brand.evidence ?? brand.id}`,
        ),
      );
    else if (dmarcFail)
      out.push(
        hit(
          'ADAPTIVE_AUTH_DMARC_FAIL',
          r.dmarc.policy === 'reject' || r.dmarc.policy === 'quarantine' ? 2 : 1,
          'the From domain publishes DMARC and this mail fails it',
          `${authorDomain} dmarc=fail p=${r.dmarc.policy ?? 'none'}`,
        ),
      );
    else
      out.push(
        hit(
          'ADAPTIVE_AUTH_SPF_FAIL',
          1,
          'the envelope sender domain says this host may not send its mail',
          `spf=fail ${r.spf.domain ?? ''}`,
        ),
      );
  }
  return out;
}
