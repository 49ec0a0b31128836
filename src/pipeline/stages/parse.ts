// Stage 1: parse the message once, streaming (parts, attachments with true types and hashes, archive
// members, URLs). Every later stage reads ctx.parsed.
import { defaultParseLimits } from '../../mime/types.ts';
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
      const parsed = await pool.parse(
        ctx.bytes ? { bytes: ctx.bytes } : { file: ctx.file, start: ctx.bodyOffset, size: ctx.size },
        limits,
      );
      ctx.parsed = parsed;
      for (const a of parsed.anomalies)
        ctx.findings.push({ stage: 'mime.parse', code: `mime.${a}`, severity: 'info', detail: a });
    },
  };
}
