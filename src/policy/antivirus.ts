// The anti-virus part of the policy layer (DESIGN §5): a scan result and a mail policy's settings in,
// one action out. Pure functions; the gateway carries the action out.
import type { Config, PolicyAntivirusConfig } from '../config/schema.ts';
import type { AntivirusResult } from '../antivirus/types.ts';
import type { Direction } from './outbreak.ts';

/** The policy's anti-virus settings after `inherit`, or null when scanning is off for it. */
export function effectiveAntivirusSettings(
  config: Config,
  direction: Direction,
  policy: string,
): PolicyAntivirusConfig | null {
  // `auto` left unresolved means no clamd (runGateway resolves it before anything scans)
  if (!config.antivirus.clamd || config.antivirus.clamd === 'auto') return null;
  const list = config.policies[direction];
  const own = list.find((p) => p.name === policy) ?? list[list.length - 1];
  let s = own.antivirus;
  if (s.mode === 'inherit' && own.name !== 'default') s = list[list.length - 1].antivirus;
  return s.mode === 'disabled' ? null : s;
}

export type AntivirusAction =
  | { kind: 'none' }
  | { kind: 'drop'; reason: string }
  | { kind: 'quarantine'; reason: string; names: string[]; quarantine: string }
  | { kind: 'deliver'; reason: string; subjectTag: string | null; strip: Array<{ partPath: string; notice: string }> };

export function decideAntivirus(
  r: AntivirusResult,
  s: PolicyAntivirusConfig,
  opts: { released: ReadonlySet<string> },
): AntivirusAction {
  if (r.verdict === 'clean') return { kind: 'none' };
  const names = r.verdict === 'infected' ? r.names : [`unscannable: ${r.reason ?? 'error'}`];
  const what = r.verdict === 'infected' ? `infected (${r.names.join(', ')})` : `unscannable (${r.reason}: ${r.detail})`;
  const setting = r.verdict === 'infected' ? s.infected : s.unscannable;
  let action: 'deliver' | 'drop' | 'strip' | 'quarantine' = setting.action;
  // Released from the quarantine this verdict sends it to (by an administrator or at its scheduled
  // exit): deliver it, tagged, rather than hold it there again.
  if (opts.released.has(setting.quarantine) && action === 'quarantine') action = 'deliver';
  // Strip needs to know which attachments are infected; when none could be singled out (the virus is in
  // the body, or only the whole message matches) the message is held instead of delivered infected.
  if (action === 'strip' && !r.infectedParts.length)
    action = opts.released.has(setting.quarantine) ? 'deliver' : 'quarantine';
  switch (action) {
    case 'drop':
      return { kind: 'drop', reason: `anti-virus: ${what}` };
    case 'quarantine':
      return { kind: 'quarantine', reason: `anti-virus: ${what}`, names, quarantine: setting.quarantine };
    case 'deliver':
      return { kind: 'deliver', reason: `anti-virus: ${what}`, subjectTag: setting.subjectTag || null, strip: [] };
    case 'strip':
      return {
        kind: 'deliver',
        reason: `anti-virus: ${what}, ${r.infectedParts.length} attachment(s) removed`,
        subjectTag: setting.subjectTag || null,
        strip: r.infectedParts.map((p) => ({
          partPath: p.partPath,
          notice: `The attachment ${p.name || '(unnamed)'} was removed by the mail gateway: it contains ${p.names.join(', ')}.\r\n`,
        })),
      };
  }
}
