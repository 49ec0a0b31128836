// Sender authentication of one message with mailauth (DESIGN §7): SPF of the envelope sender and of the
// HELO name (RFC 7208 §2.3, §2.4), every DKIM signature (RFC 6376), DMARC (RFC 7489: alignment, p, sp,
// pct) and the ARC chain (RFC 8617), all through one resolver with a lookup budget and a deadline
// (resolver.ts). Never throws on message content or DNS: what could not be checked is temperror,
// permerror or neutral, and the Authentication-Results value (RFC 8601) says so.
import { authenticate, spf as spfVerify } from 'mailauth';
import type { Readable } from 'node:stream';
import type { MessageResolver } from './resolver.ts';

export type AuthResultKeyword =
  'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror' | 'policy';

export interface SenderAuthResult {
  authservId: string;
  spf: { result: AuthResultKeyword; domain: string | null; comment: string | null };
  /** SPF of the HELO identity; null when the HELO is an address literal or missing */
  spfHelo: { result: AuthResultKeyword; domain: string } | null;
  /** one per DKIM-Signature (at most MAX_LISTED) */
  dkim: Array<{
    result: AuthResultKeyword;
    domain: string | null;
    selector: string | null;
    aligned: boolean;
    comment: string | null;
  }>;
  dmarc: {
    result: AuthResultKeyword;
    /** the Author Domain (header From) */
    domain: string | null;
    /** the effective published policy (p, or sp for a subdomain) */
    policy: 'none' | 'quarantine' | 'reject' | null;
    p: string | null;
    sp: string | null;
    pct: number;
    comment: string | null;
    /** the record that applied, for aggregate reports (RFC 7489 §7.2); absent: no record was found */
    record?: DmarcRecord;
  };
  arc: {
    result: AuthResultKeyword;
    instance: number | null;
    comment: string | null;
    /** d= of the newest ARC set (the last intermediary that sealed it); null without a passing chain */
    sealer?: string | null;
    /** what that intermediary recorded when it received the message (its ARC-Authentication-Results) */
    upstream?: { dmarc: string | null; fromDomain: string | null } | null;
  };
  /**
   * Set by the policy layer (policy/sender-auth.ts arcOverride): a DMARC failure of mail a trusted ARC
   * sealer received with DMARC passing — forwarded or changed by a mailing list on the way — which no
   * action and no adaptive rule takes as a failure
   */
  dmarcOverride?: string;
  /**
   * Set by the senderAuth stage: the draw in [0, 100) that pct= sampling compares with (RFC 7489 §6.6.4),
   * made once so that the verdict, the tag and what tracking and the aggregate report say agree
   */
  pctSample?: number;
  /** the value of our Authentication-Results field (after "Authentication-Results: "), folded with CRLF */
  header: string;
  /**
   * Authentication-Results fields in the message as it arrived that claim our authserv-id (forged);
   * null: its header block was too large to tell. Set by the senderAuth stage.
   */
  forged?: number | null;
  /**
   * Set by the senderAuth stage on a release: the MID whose first scan this result was recorded by
   * (senderauth/recorded.ts), reused instead of asking DNS again days later (a rotated DKIM key)
   */
  recordedFrom?: number;
  lookups: number;
  budgetExhausted: boolean;
  ms: number;
}

/** A DMARC record as applied to one message: what an aggregate report says was published, and where to send it. */
export interface DmarcRecord {
  /** where the record was published (the Author Domain or a parent of it) */
  policyDomain: string;
  /** the Author Domain's Organizational Domain (RFC 7489 §3.2) */
  orgDomain: string;
  adkim: 'r' | 's';
  aspf: 'r' | 's';
  /** the rua= URIs as published (RFC 7489 §6.4), at most MAX_RUA */
  rua: string[];
  /** an aligned identifier passed (RFC 7489 §3.1) */
  dkimAligned: boolean;
  spfAligned: boolean;
}

export interface VerifyInput {
  /** the message as spooled (our Received line on top) */
  message: Buffer | Readable;
  sender: string;
  ip: string;
  helo: string | null;
  authservId: string;
  resolver: MessageResolver;
  minKeyBits: number;
  /** epoch ms: SPF evaluation stops here too */
  deadline: number;
}

const MAX_LISTED = 20;
const KEYWORDS = new Set<AuthResultKeyword>([
  'pass',
  'fail',
  'softfail',
  'neutral',
  'none',
  'temperror',
  'permerror',
  'policy',
]);

/** Whether a value is one of the result keywords we record (RFC 8601 §2.7). */
export function isAuthResultKeyword(v: unknown): v is AuthResultKeyword {
  return typeof v === 'string' && KEYWORDS.has(v as AuthResultKeyword);
}

function keyword(r: unknown): AuthResultKeyword {
  const s = String(r ?? 'none').toLowerCase();
  if (s === 'temperr') return 'temperror';
  return KEYWORDS.has(s as AuthResultKeyword) ? (s as AuthResultKeyword) : 'neutral';
}

/** RFC 8601 §2.2 ptype.property values and comments: printable, no ";" "(" ")" line breaks. */
function clean(s: unknown, max = 200): string {
  return String(s ?? '')
    .replace(/[^\x21-\x7e ]/g, '')
    .replace(/[;()\\"]/g, '')
    .slice(0, max)
    .trim();
}

function isDomainName(s: string): boolean {
  return (
    s.length <= 253 &&
    /^(?=.*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+\.?$/i.test(s)
  );
}

/**
 * The newest ARC set's sealer and the DMARC result it recorded, from mailauth's answer for a passing
 * chain (its AMS d= and parsed ARC-Authentication-Results); nothing for another result. Values that are
 * not plain strings (a crafted header parses into objects) count as absent.
 */
function arcSealer(a: { status: { result?: string }; signature?: unknown; authenticationResults?: unknown }): {
  sealer?: string | null;
  upstream?: { dmarc: string | null; fromDomain: string | null } | null;
} {
  if (a.status.result !== 'pass') return {};
  const str = (v: unknown): string | null => (typeof v === 'string' && v ? v.toLowerCase() : null);
  const sig = a.signature as { signingDomain?: unknown } | undefined;
  const aar = a.authenticationResults as { dmarc?: { result?: unknown; header?: { from?: unknown } } } | undefined;
  return {
    sealer: str(sig?.signingDomain),
    upstream: aar ? { dmarc: str(aar.dmarc?.result), fromDomain: str(aar.dmarc?.header?.from) } : null,
  };
}

export async function verifySender(input: VerifyInput): Promise<SenderAuthResult> {
  const started = Date.now();
  const helo = input.helo && isDomainName(input.helo) ? input.helo.replace(/\.$/, '').toLowerCase() : null;
  const maxElapsedTime = Math.max(1, input.deadline - Date.now());
  const common = {
    resolver: input.resolver as unknown as (d: string, t: string) => Promise<string[][] | string[]>,
    mta: input.authservId,
    ip: input.ip,
    minBitLength: input.minKeyBits,
  };
  const [main, heloSpf] = await Promise.all([
    authenticate(input.message, {
      ...common,
      sender: input.sender || undefined,
      helo: input.helo ?? undefined,
      disableBimi: true,
      // passed on to SPF (RFC 7208 §4.6.4 leaves the overall time to the receiver)
      ...({ maxElapsedTime } as object),
    }).catch((err: Error) => ({ error: err })),
    // RFC 7208 §2.3: the HELO identity on its own (the envelope check covers it for a null sender)
    helo && input.sender
      ? spfVerify({ ...common, sender: '', helo, maxElapsedTime } as Parameters<typeof spfVerify>[0]).catch(() => null)
      : Promise.resolve(null),
  ]);
  const lines: string[] = [];
  let result: Omit<SenderAuthResult, 'header' | 'lookups' | 'budgetExhausted' | 'ms'>;
  if ('error' in main) {
    // mailauth itself failed (a bug or an input it cannot take): say so, never pass
    const comment = clean(main.error.message, 100);
    result = {
      authservId: input.authservId,
      spf: { result: 'temperror', domain: domainOf(input.sender), comment },
      spfHelo: null,
      dkim: [],
      dmarc: { result: 'temperror', domain: null, policy: null, p: null, sp: null, pct: 100, comment },
      arc: { result: 'none', instance: null, comment: null },
    };
    lines.push(`spf=temperror (verification error: ${comment}) smtp.mailfrom=${clean(input.sender) || '<>'}`);
    lines.push(`dmarc=temperror (verification error)`);
  } else {
    const spf = main.spf
      ? {
          result: keyword(main.spf.status.result),
          domain: main.spf.domain || null,
          comment: main.spf.status.comment ? clean(main.spf.status.comment) : null,
        }
      : { result: 'none' as const, domain: domainOf(input.sender), comment: null };
    const dkim = (main.dkim.results ?? []).slice(0, MAX_LISTED).map((r) => ({
      result: keyword(r.status?.result),
      domain: r.signingDomain ?? null,
      selector: r.selector ?? null,
      aligned: !!r.status?.aligned,
      comment: r.status?.comment ? clean(r.status.comment) : null,
    }));
    const d = main.dmarc;
    const dmarc = d
      ? {
          result: keyword(d.status.result),
          domain: (d.status.header?.from as string | undefined) ?? d.domain ?? null,
          policy: (['none', 'quarantine', 'reject'] as const).find((p) => p === d.policy) ?? null,
          p: d.p ?? null,
          sp: d.sp ?? null,
          pct: pctOf(d.rr),
          comment: d.status.comment ? clean(d.status.comment) : null,
          ...(d.rr ? { record: dmarcRecord(d) } : {}),
        }
      : {
          result: main.dmarcSkipReason ? ('permerror' as const) : ('none' as const),
          domain: null,
          policy: null,
          p: null,
          sp: null,
          pct: 100,
          comment: main.dmarcSkipReason ?? null,
        };
    const a = main.arc;
    const arc = a
      ? {
          result: keyword(a.status.result),
          instance: typeof a.i === 'number' ? a.i : null,
          comment: a.status.comment ? clean(a.status.comment) : null,
          ...arcSealer(a),
        }
      : { result: 'none' as const, instance: null, comment: null };
    result = { authservId: input.authservId, spf, spfHelo: null, dkim, dmarc, arc };
    // mailauth's own resinfo texts (RFC 8601 §2.7), each on its own folded line
    for (const r of (main.dkim.results ?? []).slice(0, MAX_LISTED)) if (r.info) lines.push(oneLine(r.info));
    if ((main.dkim.results ?? []).length > MAX_LISTED)
      lines.push(`dkim=neutral (${main.dkim.results.length - MAX_LISTED} more signatures not listed)`);
    if (!main.dkim.results?.length) lines.push('dkim=none (no signatures)');
    if (main.spf && main.spf.info) lines.push(oneLine(main.spf.info));
    else lines.push(`spf=none smtp.mailfrom=${clean(input.sender) || '<>'}`);
    if (a && a.info) lines.push(oneLine(a.info));
    if (d && d.info) lines.push(oneLine(d.info));
    else if (!d) lines.push(`dmarc=${dmarc.result}${dmarc.comment ? ` (${clean(dmarc.comment)})` : ''}`);
  }
  if (heloSpf && helo) {
    result.spfHelo = { result: keyword(heloSpf.status.result), domain: helo };
    lines.push(`spf=${result.spfHelo.result} smtp.helo=${helo}`);
  }
  const header = `${input.authservId};\r\n ${lines.map((l) => fold(l)).join(';\r\n ')}`;
  return {
    ...result,
    header,
    lookups: input.resolver.lookups(),
    budgetExhausted: input.resolver.exhausted(),
    ms: Date.now() - started,
  };
}

function domainOf(address: string): string | null {
  const at = address.lastIndexOf('@');
  return at >= 0 ? address.slice(at + 1).toLowerCase() || null : null;
}

/** The value of a tag of a DMARC record (RFC 7489 §6.4), trimmed; null when absent. */
function dmarcTag(rr: string | undefined, name: string): string | null {
  for (const field of (rr ?? '').split(';')) {
    const eq = field.indexOf('=');
    if (eq > 0 && field.slice(0, eq).trim().toLowerCase() === name) return field.slice(eq + 1).trim();
  }
  return null;
}

/** pct= of a DMARC record (RFC 7489 §6.3), 100 when absent or malformed. */
export function pctOf(rr: string | undefined): number {
  const v = dmarcTag(rr, 'pct');
  return v && /^\d{1,3}$/.test(v) ? Math.min(100, Number(v)) : 100;
}

/** rua= URIs kept per record: a record cannot make us keep (or mail) more */
const MAX_RUA = 5;

/** The record mailauth applied, from its answer (the record text, where it was found, the alignment). */
function dmarcRecord(d: {
  domain?: string;
  policyDomain?: string;
  rr?: string;
  alignment?: { spf?: { result?: unknown }; dkim?: { result?: unknown } };
}): DmarcRecord {
  const mode = (tag: string): 'r' | 's' => (dmarcTag(d.rr, tag)?.toLowerCase() === 's' ? 's' : 'r');
  const orgDomain = (d.domain ?? '').toLowerCase();
  return {
    policyDomain: (d.policyDomain ?? orgDomain).toLowerCase(),
    orgDomain,
    adkim: mode('adkim'),
    aspf: mode('aspf'),
    rua: (dmarcTag(d.rr, 'rua') ?? '')
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u)
      .slice(0, MAX_RUA),
    dkimAligned: !!d.alignment?.dkim?.result,
    spfAligned: !!d.alignment?.spf?.result,
  };
}

/** A resinfo as one line: no line breaks, controls or non-ASCII (the value is third-party text). */
function oneLine(s: string): string {
  return s
    .replace(/\r?\n[ \t]*/g, ' ')
    .replace(/[^\x20-\x7e]/g, '')
    .slice(0, 900);
}

/** Folds a resinfo at spaces so that lines stay short (RFC 5322 §2.1.1: at most 998). */
function fold(s: string): string {
  const words = s.split(' ');
  const out: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > 76) {
      out.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) out.push(line);
  return out.join('\r\n\t');
}
