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
import { stripParts } from '../mime/edit/replace.ts';
import { modifyMessage } from '../outbreak/modify.ts';
import { readCopyBytes, type Copy, type CopyTable } from './copies.ts';

export interface CopyModifierDeps {
  spool: Pick<Spool, 'append' | 'release'>;
  store: Pick<Store, 'committed'>;
  events: Pick<EventBus, 'emit'>;
  copies: CopyTable;
  /** the click-time service, when it runs (rewritten links point at it) */
  clickTime: () => ClickTimeService | null;
  /** the level and strongest rules matching a URL now, carried signed in its rewritten link */
  urlThreatNow: (url: string) => { level: number; ruleIds: string[] } | undefined;
}

export type DeliverVerdict = Extract<Verdict, { kind: 'deliver' }>;

/** Whether delivering this copy needs new bytes first. */
export function needsModification(copy: Copy, verdict: DeliverVerdict): boolean {
  return !!(verdict.modify || verdict.strip?.length || verdict.subjectTag || copy.releaseTag || copy.releaseNote);
}

export class CopyModifier {
  private readonly deps: CopyModifierDeps;

  constructor(deps: CopyModifierDeps) {
    this.deps = deps;
  }

  /** Applies the verdict's changes; the copy then points at the durable modified bytes. */
  async apply(copy: Copy, verdict: DeliverVerdict): Promise<void> {
    const { events } = this.deps;
    const plan: ModificationPlan | null = verdict.modify ?? null;
    let original = await readCopyBytes(copy);
    let stripped = false;
    if (verdict.strip?.length) {
      // Anti-virus: infected attachments out first, each replaced by a notice; the rest stays as it was.
      const r = stripParts(original, verdict.strip);
      events.emit(copy.mid, {
        type: 'antivirus.stripped',
        parts: r.stripped,
        subjectTag: verdict.subjectTag ?? null,
      });
      stripped = r.stripped.length > 0;
      original = r.bytes;
    }
    const addHeaders = [...(plan?.headers ?? [])];
    const subject = plan?.subject ?? null;
    if (copy.releaseNote) addHeaders.push({ name: 'X-Breakwater-Quarantine', value: copy.releaseNote });
    const click = this.deps.clickTime();
    const single = copy.recipients.length === 1 ? copy.recipients[0].address : '';
    const rewrite =
      plan && plan.urlRewriting !== 'off' && click
        ? {
            mode: plan.urlRewriting,
            bypassDomains: plan.bypassDomains,
            wrap: (url: string) => {
              try {
                // The link carries what is known now: the message's level and what matches the URL itself,
                // so that a click is never judged on the URL's current rules alone (docs/outbreak.md).
                return click.wrap(url, {
                  mid: copy.mid,
                  recipient: single,
                  reason: 'outbreak',
                  messageThreat: plan.threat.level > 0 ? plan.threat : undefined,
                  urlThreat: this.deps.urlThreatNow(url),
                });
              } catch {
                // A URL too long to carry in a signed link (several KB) is not left clickable in a threat
                // message: it points at the service's "this link cannot be opened" page instead.
                return `${click.baseUrl}/c/unavailable`;
              }
            },
            isOwnLink: (url: string) => click.isOwnLink(url),
          }
        : undefined;
    // Signed mail keeps a valid signature unless the policy rewrites everything ("all"), also when the
    // click-time service is off and no rewrite happens at all.
    const protectSigned = (plan?.urlRewriting ?? 'unsigned') !== 'all';
    let result = modifyMessage(original, {
      subject: subject ?? undefined,
      addHeaders,
      disclaimer: plan?.disclaimer ?? undefined,
      rewrite,
      protectSigned,
    });
    if (stripped) result = { ...result, changed: true };
    // Anti-virus tag, then the release tag, each in front of what came before.
    for (const tag of [verdict.subjectTag, copy.releaseTag]) {
      if (!tag) continue;
      const tagged = modifyMessage(result.bytes, { subject: { mode: 'prepend', text: tag }, protectSigned });
      result = { ...result, bytes: tagged.bytes, changed: result.changed || tagged.changed };
    }
    if (plan)
      events.emit(copy.mid, {
        type: 'outbreak.modified',
        subject: result.subjectChanged,
        headers: addHeaders.map((h) => h.name),
        disclaimerParts: result.disclaimerParts,
        rewrittenUrls: result.rewrittenUrls.length,
        rewriteSkipped:
          plan.urlRewriting !== 'off' && !click ? 'click-time service disabled' : (result.rewriteSkipped ?? null),
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
    this.deps.copies.keepBytes(copy, result.bytes);
    // The old bytes go only once the database no longer points at them: a held file released before
    // the index row saying so is committed would leave, after a crash, a quarantine entry with no file.
    void this.deps.store.committed().then(() => this.deps.spool.release(old));
  }
}
