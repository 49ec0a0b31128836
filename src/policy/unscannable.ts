// Limits fail closed (DESIGN §3.5, issue 10): a limit the parser or a scanner reaches means part of the
// message was never looked at, so "nothing found" is not "clean". Stages report each limit as a typed
// finding `limit.<kind>`; this file turns them into one action per mail policy: deliver with a tag,
// quarantine (incoming default) or drop — as Cisco's gateways treat unscannable mail.
import type { Config, PolicyUnscannableConfig } from '../config/schema.ts';
import type { ParseAnomaly, ParsedMessage } from '../mime/types.ts';
import type { Finding } from './verdict.ts';
import type { Direction } from './outbreak.ts';

/** Every limit a message can reach on its way through the pipeline. */
export const UNSCANNABLE_KINDS = [
  'depth',
  'parts',
  'archive_depth',
  'archive_members',
  'archive_expansion',
  'archive_bomb',
  'archive_corrupt',
  'encrypted',
  'parse_timeout',
  'parse_error',
  'scan_size',
  'urls',
  'text',
] as const;
export type UnscannableKind = (typeof UNSCANNABLE_KINDS)[number];

/**
 * The limits that count by default: each of them means an attachment or a part may have gone unseen.
 * Not by default: scan_size (attachment metadata and the first maxScanSize bytes are still scored), urls
 * and text (the kept URLs and text are scored; long newsletters reach them every day).
 */
export const DEFAULT_UNSCANNABLE_LIMITS: UnscannableKind[] = [
  'depth',
  'parts',
  'archive_depth',
  'archive_members',
  'archive_expansion',
  'archive_bomb',
  'archive_corrupt',
  'encrypted',
  'parse_timeout',
  'parse_error',
];

const fromAnomaly: Partial<Record<ParseAnomaly, UnscannableKind>> = {
  depth_limit: 'depth',
  part_limit: 'parts',
  url_limit: 'urls',
  text_truncated: 'text',
  archive_depth_limit: 'archive_depth',
  archive_member_limit: 'archive_members',
  archive_expansion_limit: 'archive_expansion',
  archive_bomb: 'archive_bomb',
  archive_corrupt: 'archive_corrupt',
};

/** The id an unscannable message is managed by in its quarantine, like an outbreak rule id. */
export function unscannableId(kind: UnscannableKind): string {
  return `UNSCANNABLE_${kind.toUpperCase()}`;
}

export function limitFinding(stage: string, kind: UnscannableKind, detail: string): Finding {
  return { stage, code: `limit.${kind}`, severity: 'suspicious', detail };
}

/** The limit findings the parser's result implies: anomalies that are limits, and encrypted archives. */
export function parseLimitFindings(parsed: ParsedMessage): Finding[] {
  const out: Finding[] = [];
  for (const a of parsed.anomalies) {
    const kind = fromAnomaly[a];
    if (kind) out.push(limitFinding('mime.parse', kind, a));
  }
  const encrypted = parsed.attachments.filter((a) => a.encrypted).map((a) => a.name || a.partPath);
  if (encrypted.length) out.push(limitFinding('mime.parse', 'encrypted', `encrypted archive: ${encrypted.join(', ')}`));
  return out;
}

/** The kinds of the limit findings, in catalogue order, without repeats. */
export function limitsReached(findings: readonly Finding[]): UnscannableKind[] {
  const seen = new Set(findings.filter((f) => f.code.startsWith('limit.')).map((f) => f.code.slice(6)));
  // The parse stage can also fail from outside (its stage deadline): still a parse that never finished.
  if (!seen.has('parse_timeout') && findings.some((f) => f.code === 'stage.failed' && f.stage === 'mime.parse'))
    seen.add(
      /timed out/.test(findings.find((f) => f.stage === 'mime.parse')?.detail ?? '') ? 'parse_timeout' : 'parse_error',
    );
  return UNSCANNABLE_KINDS.filter((k) => seen.has(k));
}

export interface EffectiveUnscannable {
  action: 'deliver' | 'quarantine' | 'drop';
  quarantine: string;
  subjectTag: string;
  limits: readonly UnscannableKind[];
}

/**
 * The policy's settings after `inherit`, or null when unscannable handling is off for it. Unset action
 * and tag take the direction's default: incoming mail is held; outgoing mail (our own users') goes out.
 */
export function effectiveUnscannableSettings(
  config: Config,
  direction: Direction,
  policy: string,
): EffectiveUnscannable | null {
  const list = config.policies[direction];
  const own = list.find((p) => p.name === policy) ?? list[list.length - 1];
  let s: PolicyUnscannableConfig = own.unscannable;
  if (s.mode === 'inherit' && own.name !== 'default') s = list[list.length - 1].unscannable;
  if (s.mode === 'disabled') return null;
  return {
    action: s.action ?? (direction === 'incoming' ? 'quarantine' : 'deliver'),
    quarantine: s.quarantine,
    subjectTag: s.subjectTag ?? (direction === 'incoming' ? '[UNSCANNABLE] ' : ''),
    limits: s.limits,
  };
}

export type UnscannableAction =
  | { kind: 'none' }
  | { kind: 'drop'; reason: string; limits: UnscannableKind[] }
  | { kind: 'quarantine'; reason: string; limits: UnscannableKind[]; quarantine: string; ids: string[] }
  | { kind: 'deliver'; reason: string; limits: UnscannableKind[]; subjectTag: string | null };

export function decideUnscannable(
  findings: readonly Finding[],
  s: EffectiveUnscannable,
  opts: { released: ReadonlySet<string> },
): UnscannableAction {
  const limits = limitsReached(findings).filter((k) => s.limits.includes(k));
  if (!limits.length) return { kind: 'none' };
  const reason = `unscannable: ${limits.join(', ')} limit reached`;
  // Released from the quarantine this sends it to: an administrator decided, deliver it tagged.
  const action = s.action === 'quarantine' && opts.released.has(s.quarantine) ? 'deliver' : s.action;
  switch (action) {
    case 'drop':
      return { kind: 'drop', reason, limits };
    case 'quarantine':
      return { kind: 'quarantine', reason, limits, quarantine: s.quarantine, ids: limits.map(unscannableId) };
    case 'deliver':
      return { kind: 'deliver', reason, limits, subjectTag: s.subjectTag || null };
  }
}
