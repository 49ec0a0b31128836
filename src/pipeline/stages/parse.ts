// Stage 1: parse the message once, streaming (parts, attachments with true types and hashes, archive
// members, URLs). Every later stage reads ctx.parsed.
import { defaultParseLimits, ParseTimeoutError } from '../../mime/types.ts';
import { limitFinding, parseLimitFindings } from '../../policy/unscannable.ts';
import type { ParsePool } from '../../mime/pool.ts';
import type { Stage } from '../stage.ts';

export function parseStage(pool: ParsePool): Stage {
  const limits = defaultParseLimits;
  return {
    name: 'mime.parse',
    description: 'parse MIME once: parts, attachments (true type, sha256), zip members, URLs',
    timeoutMs: limits.timeoutMs + 1000,
    // A message we cannot parse still goes on, flagged: the failure is a tracking event and a finding,
    // and scanners that need the parse treat its absence as suspicious.
    failureMode: 'skip',
    settings: {
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
        parsed = await pool.parse(
          ctx.bytes ? { bytes: ctx.bytes } : { file: ctx.file, start: ctx.bodyOffset, size: ctx.size },
          limits,
        );
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
