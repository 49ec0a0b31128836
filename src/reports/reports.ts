// Reports (DESIGN §8), computed from what tracking recorded: the Outbreak Filters report (threats by
// level, category and rule) and the web interaction tracking report (clicks per URL, who clicked
// malicious links).
import type { Store } from '../store/db.ts';

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
