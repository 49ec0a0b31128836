// Reports (DESIGN §8), computed from what tracking recorded: the Outbreak Filters report (threats by
// level, category and rule) and the web interaction tracking report (clicks per URL, who clicked
// malicious links).
import type { Store } from '../store/db.ts';

const FLOW_KEYS = ['accepted', 'delivered', 'quarantined', 'bounced', 'dropped'] as const;

export interface MailFlowReport {
  since: string;
  until: string;
  bucketSeconds: number;
  buckets: Array<{ at: string } & Record<(typeof FLOW_KEYS)[number], number>>;
}

/** Bucket size for a period: about 120 buckets, whole minutes, at least one minute. */
export function flowBucketMs(since: number, until: number): number {
  return Math.max(1, Math.round((until - since) / 120 / 60_000)) * 60_000;
}

export class Reports {
  private readonly store: Store;
  private readonly quarantineUsage: () => { messages: number; bytes: number };

  constructor(store: Store, quarantineUsage: () => { messages: number; bytes: number }) {
    this.store = store;
    this.quarantineUsage = quarantineUsage;
  }

  /** Web interaction tracking report (DESIGN §8): clicks per URL, and who clicked malicious links. */
  async webInteraction(since: number, until: number, top = 20): Promise<Record<string, unknown>> {
    await this.store.committed();
    const urls = this.store
      .stmt(
        `select url, domain,
           sum(action in ('redirected','continued')) allowed,
           sum(action = 'blocked') blocked,
           sum(verdict = 'unknown') unknown,
           sum(action = 'warned') warned,
           count(*) clicks,
           count(distinct mid) messages
         from clicks where at >= ? and at < ? and action != 'invalid'
         group by url order by clicks desc limit ?`,
      )
      .all(since, until, top);
    const users = this.store
      .stmt(
        `select recipient, count(*) clicks, count(distinct url) urls
         from clicks where at >= ? and at < ? and (verdict = 'malicious' or action = 'continued') and recipient != ''
         group by recipient order by clicks desc limit ?`,
      )
      .all(since, until, top);
    const totals = this.store
      .stmt(
        `select count(*) clicks, sum(action in ('redirected','continued')) allowed, sum(action = 'blocked') blocked,
           sum(verdict = 'unknown') unknown, sum(action = 'warned') warned
         from clicks where at >= ? and at < ? and action != 'invalid'`,
      )
      .get(since, until);
    return {
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      totals,
      urls,
      topMaliciousClickers: users,
    };
  }

  /**
   * Mail flow (DESIGN §8) in time buckets of received messages: accepted (each message once, not its
   * policy copies), and what became of the copies: delivered, quarantined, bounced, dropped (or deleted).
   * Empty buckets are zeros, so a chart shows quiet hours as quiet.
   */
  async mailFlow(since: number, until: number, bucketMs: number): Promise<MailFlowReport> {
    await this.store.committed();
    const rows = this.store
      .stmt(
        `select (received_at - ?1) / ?3 b,
           sum(parent_mid is null) accepted,
           sum(status = 'delivered') delivered,
           sum(status = 'quarantined') quarantined,
           sum(status = 'bounced') bounced,
           sum(status in ('dropped', 'deleted')) dropped
         from messages where received_at >= ?1 and received_at < ?2 group by b`,
      )
      .all(since, until, bucketMs) as Array<Record<(typeof FLOW_KEYS)[number], number> & { b: number }>;
    const byBucket = new Map(rows.map((r) => [r.b, r]));
    const buckets: MailFlowReport['buckets'] = [];
    for (let b = 0, at = since; at < until; b++, at += bucketMs) {
      const r = byBucket.get(b);
      buckets.push({
        at: new Date(at).toISOString(),
        ...(Object.fromEntries(FLOW_KEYS.map((k) => [k, r?.[k] ?? 0])) as Record<(typeof FLOW_KEYS)[number], number>),
      });
    }
    return {
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      bucketSeconds: bucketMs / 1000,
      buckets,
    };
  }

  /** Outbreak Filters report (DESIGN §8): messages by threat level, by category and by rule. */
  async outbreak(since: number, until: number, top = 20): Promise<Record<string, unknown>> {
    await this.store.committed();
    const byLevel = this.store
      .stmt(
        `select threat_level level, count(*) messages from messages
         where received_at >= ? and received_at < ? and threat_level is not null
         group by threat_level order by threat_level`,
      )
      .all(since, until);
    const rules = this.store
      .stmt(
        `select r.rule_id ruleId, r.category, r.type, r.description, r.adaptive, max(r.level) level, count(*) messages
         from messages m join message_rules r on r.mid = m.mid
         where m.threat_level > 0 and m.received_at >= ? and m.received_at < ? and r.level > 0
         group by r.rule_id order by messages desc, r.rule_id limit ?`,
      )
      .all(since, until, top) as Array<Record<string, unknown>>;
    const byCategory = this.store
      .stmt(
        `select r.category, count(distinct m.mid) messages
         from messages m join message_rules r on r.mid = m.mid and r.level = m.threat_level
         where m.threat_level > 0 and m.received_at >= ? and m.received_at < ?
         group by r.category order by messages desc`,
      )
      .all(since, until);
    return {
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      byLevel,
      byCategory,
      topRules: rules.map((r) => ({ ...r, adaptive: !!r.adaptive })),
      quarantine: this.quarantineUsage(),
    };
  }
}
