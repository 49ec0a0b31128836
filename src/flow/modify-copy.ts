// The deliver verdict's changes to a copy's bytes: infected attachments stripped (anti-virus), Outbreak
// Filters' modification (subject, headers, disclaimer, rewritten links), anti-virus and release subject
// tags, the X-Breakwater-Quarantine header. The result is made durable as a "modified" spool file
// before delivery, so retries and restarts deliver exactly these bytes.
import type { Spool, SpoolEnvelope } from '../spool/spool.ts';
import type { Store } from '../store/db.ts';
import type { EventBus } from '../tracking/bus.ts';
import type { Verdict } from '../policy/verdict.ts';
import type { ModificationPlan } from '../policy/outbreak.ts';
import type { ClickTimeService } from '../clicktime/server.ts';
import type { ParsePool } from '../mime/pool.ts';
import type { RulesMessage, UrlRulesRequest } from '../outbreak/offload.ts';
import { readCopyBytes, type Copy, type CopyTable } from './copies.ts';
import {
  onlyRemovesFields,
  runModification,
  type ModificationJob,
  type ModificationOutcome,
} from './modification-job.ts';

export interface CopyModifierDeps {
  spool: Pick<Spool, 'append' | 'release'>;
  store: Pick<Store, 'committed'>;
  events: Pick<EventBus, 'emit'>;
  copies: CopyTable;
  /** the click-time service, when it runs (rewritten links point at it) */
  clickTime: () => ClickTimeService | null;
  /** the level and strongest rules matching a URL now, carried signed in its rewritten link; never throws */
  urlThreatNow: (url: string) => { level: number; ruleIds: string[] } | undefined;
  /** the workers that run the modification off the event loop; null: it runs here */
  pool: Pick<ParsePool, 'modify'> | null;
  /** the rules a worker judges URLs with now, and the bundle message to send it if it lacks them */
  urlRules: () => { request: UrlRulesRequest; rules: RulesMessage | null };
}

export type DeliverVerdict = Extract<Verdict, { kind: 'deliver' }>;

/** Whether delivering this copy needs new bytes first. */
export function needsModification(copy: Copy, verdict: DeliverVerdict): boolean {
  return !!(
    verdict.modify ||
    verdict.strip?.length ||
    verdict.subjectTag ||
    verdict.headers?.length ||
    verdict.authResults?.removeForged ||
    verdict.removeSpamFields ||
    copy.releaseTag ||
    copy.releaseNote
  );
}

export class CopyModifier {
  private readonly deps: CopyModifierDeps;

  constructor(deps: CopyModifierDeps) {
    this.deps = deps;
  }

  /** The verdict's changes as a job a worker (or this thread) runs. */
  private job(copy: Copy, verdict: DeliverVerdict): ModificationJob {
    const plan: ModificationPlan | null = verdict.modify ?? null;
    const addHeaders = [...(plan?.headers ?? []), ...(verdict.headers ?? [])];
    if (copy.releaseNote) addHeaders.push({ name: 'X-Breakwater-Quarantine', value: copy.releaseNote });
    const click = this.deps.clickTime();
    return {
      strip: verdict.strip ?? [],
      subject: plan?.subject ?? null,
      addHeaders,
      disclaimer: plan?.disclaimer ?? null,
      rewrite:
        plan && plan.urlRewriting !== 'off' && click
          ? {
              mode: plan.urlRewriting,
              bypassDomains: plan.bypassDomains,
              signer: click.signerOptions(),
              mid: copy.mid,
              recipient: copy.recipients.length === 1 ? copy.recipients[0].address : '',
              messageThreat: plan.threat,
            }
          : null,
      // Signed mail keeps a valid signature unless the policy rewrites everything ("all"), also when the
      // click-time service is off and no rewrite happens at all.
      protectSigned: (plan?.urlRewriting ?? 'unsigned') !== 'all',
      tags: [verdict.subjectTag, copy.releaseTag].filter((t): t is string => !!t),
      removeAuthResults: verdict.authResults?.removeForged ? verdict.authResults.authservId : null,
      removeSpamFields: !!verdict.removeSpamFields,
    };
  }

  /** Runs the job on a worker when one can, else here. */
  private async run(copy: Copy, job: ModificationJob): Promise<ModificationOutcome> {
    const { pool } = this.deps;
    // only forged fields removed: a header-block edit, not worth a worker round trip
    if (pool && !onlyRemovesFields(job)) {
      const { request, rules } = this.deps.urlRules();
      try {
        const source = copy.bytes
          ? { bytes: copy.bytes }
          : { file: copy.file, start: copy.bodyOffset, size: copy.size };
        // the bundle is only needed to judge rewritten links
        const outcome = await pool.modify(source, job, request, job.rewrite ? rules : null);
        if (outcome) return outcome;
      } catch {
        // the worker failed or was replaced: the event loop modifies the copy as it did before workers
      }
    }
    return runModification(await readCopyBytes(copy), job, this.deps.urlThreatNow);
  }

  /** Applies the verdict's changes; the copy then points at the durable modified bytes. */
  async apply(copy: Copy, verdict: DeliverVerdict): Promise<void> {
    const { events } = this.deps;
    const plan: ModificationPlan | null = verdict.modify ?? null;
    const job = this.job(copy, verdict);
    const result = await this.run(copy, job);
    if (job.strip.length)
      events.emit(copy.mid, {
        type: 'antivirus.stripped',
        parts: result.stripped,
        subjectTag: verdict.subjectTag ?? null,
      });
    if (plan)
      events.emit(copy.mid, {
        type: 'outbreak.modified',
        subject: result.subjectChanged,
        headers: job.addHeaders.map((h) => h.name),
        disclaimerParts: result.disclaimerParts,
        rewrittenUrls: result.rewrittenUrls,
        rewriteSkipped:
          plan.urlRewriting !== 'off' && !job.rewrite ? 'click-time service disabled' : (result.rewriteSkipped ?? null),
        alternateMailHost: plan.alternateMailHost,
      });
    if (!result.changed && !plan?.alternateMailHost) return;
    const env: SpoolEnvelope = { ...copy.env, mid: copy.mid, derived: 'modified' };
    if (plan?.alternateMailHost) env.routeOverride = plan.alternateMailHost;
    else delete env.routeOverride;
    // Modified bytes are short-lived (delivered within moments): the group-commit journal makes them
    // durable at the cost of one shared write, where a file of their own would cost an fsync each.
    const loc = await this.deps.spool.append(env, result.bytes);
    const old = copy.file;
    copy.file = loc.file;
    copy.bodyOffset = loc.bodyOffset;
    copy.size = loc.size;
    copy.routeOverride = env.routeOverride ?? null;
    // ARC seals mail a policy changed; removing forged fields alone is not such a change
    if (result.changed && !onlyRemovesFields(job)) copy.modified = true;
    this.deps.copies.keepBytes(copy, result.bytes);
    // The old bytes go only once the database no longer points at them: a held file released before
    // the index row saying so is committed would leave, after a crash, a quarantine entry with no file.
    void this.deps.store.committed().then(() => this.deps.spool.release(old));
  }
}
