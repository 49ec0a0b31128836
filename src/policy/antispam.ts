// The anti-spam part of the policy layer (docs/antispam.md): rspamd's answer and a mail policy's
// settings in, one action out. Pure functions; the gateway carries the action out.
import type { Config, PolicyAntispamConfig } from '../config/schema.ts';
import type { RspamdAnswer } from '../antispam/rspamd.ts';
import type { Direction } from './outbreak.ts';
import type { Verdict } from './verdict.ts';

/** The policy's anti-spam settings after `inherit`, or null when rspamd is off for it. */
export function effectiveAntispamSettings(
  config: Config,
  direction: Direction,
  policy: string,
): PolicyAntispamConfig | null {
  if (!config.antispam.rspamd.url) return null;
  const list = config.policies[direction];
  const own = list.find((p) => p.name === policy) ?? list[list.length - 1];
  let s = own.antispam;
  if (s.mode === 'inherit' && own.name !== 'default') s = list[list.length - 1].antispam;
  return s.mode === 'disabled' ? null : s;
}

export type AntispamAction =
  | { kind: 'none' }
  | { kind: 'drop'; reason: string }
  | { kind: 'bounce'; reason: string; reply: string }
  | { kind: 'quarantine'; reason: string; quarantine: string; ids: string[] }
  | {
      kind: 'deliver';
      reason: string;
      subjectTag: string | null;
      headers: Array<{ name: string; value: string }>;
    };

/** The headers spam is delivered with (US-ASCII: symbol names are rspamd's, scores are numbers). */
export function spamHeaders(r: RspamdAnswer): Array<{ name: string; value: string }> {
  const ascii = (s: string): string => s.replace(/[^\x21-\x7e]/g, '?');
  return [
    {
      name: 'X-Spam-Status',
      value: `Yes, action=${ascii(r.action.replace(/ /g, '_'))}, score=${r.score.toFixed(2)}, required=${r.requiredScore.toFixed(2)}`,
    },
    {
      name: 'X-Spam-Symbols',
      value: r.symbols
        .filter((s) => s.score !== 0)
        .slice(0, 20)
        .map((s) => `${ascii(s.name)}(${s.score.toFixed(2)})`)
        .join(', '),
    },
  ].filter((h) => h.value);
}

export function decideAntispam(
  r: RspamdAnswer,
  s: PolicyAntispamConfig,
  opts: { released: ReadonlySet<string> },
): AntispamAction {
  if (r.class === 'ham') return { kind: 'none' };
  const setting = r.class === 'reject' ? s.reject : s.spam;
  const top = r.symbols
    .filter((x) => x.score > 0)
    .slice(0, 3)
    .map((x) => x.name);
  const what = `rspamd ${r.action} (score ${r.score.toFixed(2)}${top.length ? `: ${top.join(', ')}` : ''})`;
  let action = setting.action;
  // Released from the quarantine this verdict sends it to (by an administrator, a recipient or its
  // scheduled exit): deliver it, tagged, rather than hold it there again.
  if (action === 'quarantine' && opts.released.has(setting.quarantine)) action = 'tag';
  const headers = s.headers ? spamHeaders(r) : [];
  switch (action) {
    case 'drop':
      return { kind: 'drop', reason: `anti-spam: ${what}` };
    case 'bounce':
      return {
        kind: 'bounce',
        reason: `anti-spam: ${what}`,
        reply: `554 5.7.1 ${r.smtpMessage ?? 'Message rejected as spam'}`,
      };
    case 'quarantine':
      // managed by the symbols that made it spam, like the virus quarantine by virus name
      return { kind: 'quarantine', reason: `anti-spam: ${what}`, quarantine: setting.quarantine, ids: top };
    case 'tag':
      return { kind: 'deliver', reason: `anti-spam: ${what}`, subjectTag: setting.subjectTag || null, headers };
    case 'deliver':
      return { kind: 'deliver', reason: `anti-spam: ${what}`, subjectTag: null, headers };
  }
}

/**
 * A deliver verdict of a message rspamd judged loses the spam verdict fields it arrived with (forged
 * "X-Spam-Flag: NO" and the like); nothing changes when there are none, or when rspamd gave no opinion.
 */
export function withoutIncomingSpamFields(verdict: Verdict, answer: RspamdAnswer | null | undefined): Verdict {
  if (verdict.kind !== 'deliver' || !answer || answer.skipped || answer.incomingSpamFields === 0) return verdict;
  if (answer.incomingSpamFields === undefined) return verdict;
  return { ...verdict, removeSpamFields: true };
}
