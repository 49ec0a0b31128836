// The policy layer: findings in, one verdict out.
import type { Finding, Verdict } from './verdict.ts';
import type { PipelineResult } from '../pipeline/pipeline.ts';

export function decide(result: PipelineResult, _findings: Finding[]): Verdict {
  if (result.stoppedBy) {
    if (result.stoppedBy.failureMode === 'tempfail')
      return {
        kind: 'tempfail',
        reason: `${result.stoppedBy.stage} failed: ${result.stoppedBy.error}`,
        retryAfterMs: 60_000,
      };
    // 'quarantine' arrives with the quarantine subsystem; until then hold by retrying, never deliver.
    return {
      kind: 'tempfail',
      reason: `${result.stoppedBy.stage} failed: ${result.stoppedBy.error}`,
      retryAfterMs: 300_000,
    };
  }
  return { kind: 'deliver', reason: 'no policy action' };
}
