// Stage 1: parse the message once, streaming (parts, attachments with true types and hashes, archive
// members, URLs). Every later stage reads ctx.parsed. The worker that parses also computes the outbreak
// hits (ctx.outbreakScore) when Outbreak Filters apply to the copy; the outbreak stage applies them.
import { defaultParseLimits, ParseTimeoutError } from '../../mime/types.ts';
import { limitFinding, parseLimitFindings } from '../../policy/unscannable.ts';
import type { ParsePool } from '../../mime/pool.ts';
import type { Stage, StageContext } from '../stage.ts';
import type { Config } from '../../config/schema.ts';
import { parseByteSize } from '../../config/schema.ts';
import type { OutbreakEngine } from '../../outbreak/engine.ts';
import { BundleMessages, type RulesMessage, type ScoreRequest } from '../../outbreak/offload.ts';
import { effectiveOutbreakSettings } from '../../policy/outbreak.ts';
import { effectiveAntivirusSettings } from '../../policy/antivirus.ts';
import type { AntivirusDeps } from './antivirus.ts';

/** What the parse stage needs to have the worker score the message too. */
export interface WorkerScoring {
  config: Config;
  engine: OutbreakEngine;
  antivirus?: AntivirusDeps;
}

export function parseStage(pool: ParsePool, scoring?: WorkerScoring): Stage {
  const limits = defaultParseLimits;
  const score = scoring ? scoreRequestFor(scoring) : () => null;
  return {
    name: 'mime.parse',
    description:
      'parse MIME once: parts, attachments (true type, sha256), zip members, URLs; on a worker thread, which then scores the copy with the outbreak rules',
    timeoutMs: limits.timeoutMs + 1000,
    // A message we cannot parse still goes on, flagged: the failure is a tracking event and a finding,
    // and scanners that need the parse treat its absence as suspicious.
    failureMode: 'skip',
    settings: {
      outbreakScoring: scoring ? 'in the parse worker, applied by the outbreak stage' : 'off',
      maxDepth: limits.maxDepth,
      maxParts: limits.maxParts,
      maxUrls: limits.maxUrls,
      maxArchiveDepth: limits.maxArchiveDepth,
      maxArchiveMembers: limits.maxArchiveMembers,
      maxArchiveExpandedBytes: limits.maxArchiveExpandedBytes,
    },
    async run(ctx) {
      // Larger messages are parsed on a worker thread, reading the spool file themselves.
      let parsed;
      try {
        const job = pool.parseAndScore(
          ctx.bytes ? { bytes: ctx.bytes } : { file: ctx.file, start: ctx.bodyOffset, size: ctx.size },
          limits,
          score(ctx),
        );
        ctx.outbreakScore = job.score;
        parsed = await job.parsed;
      } catch (err) {
        // Not parsed means not looked at: a limit the policy layer acts on, and still a stage failure.
        const timeout = err instanceof ParseTimeoutError || (err as { code?: string }).code === 'parse_timeout';
        ctx.findings.push(
          limitFinding('mime.parse', timeout ? 'parse_timeout' : 'parse_error', (err as Error).message),
        );
        throw err;
      }
      ctx.parsed = parsed;
      for (const a of parsed.anomalies)
        ctx.findings.push({ stage: 'mime.parse', code: `mime.${a}`, severity: 'info', detail: a });
      ctx.findings.push(...parseLimitFindings(parsed));
    },
  };
}

/**
 * The score request for a copy: the bundle, adaptive switch, sender, bypassed extensions and content
 * limit the outbreak stage would use, and the anti-virus signature version the anti-virus stage will
 * report (when it runs for the policy). null when Outbreak Filters are off for the copy's policy.
 */
function scoreRequestFor(
  s: WorkerScoring,
): (ctx: StageContext) => { request: ScoreRequest; rules: RulesMessage | null } | null {
  const maxScanSize = parseByteSize(s.config.outbreakFilters.maxScanSize);
  const bundles = new BundleMessages(s.engine);
  return (ctx) => {
    const settings = effectiveOutbreakSettings(s.config, ctx.direction, ctx.policy);
    if (!settings) return null;
    const rules = bundles.current();
    const av =
      s.antivirus && effectiveAntivirusSettings(s.config, ctx.direction, ctx.policy)
        ? s.antivirus.signatureVersion()
        : null;
    return {
      request: {
        generation: rules?.generation ?? null,
        adaptive: s.engine.adaptive,
        sender: ctx.env.sender.toLowerCase(),
        avSignatureVersion: av,
        bypassExtensions: settings.bypassExtensions,
        truncateTo: ctx.size > maxScanSize ? maxScanSize : null,
      },
      rules,
    };
  };
}
