// Alert types (DESIGN §6): what subsystems raise, what is recorded, and how the alerter is set up.
import type { Store } from '../store/db.ts';

export type AlertClass = 'outbreak' | 'quarantine' | 'antivirus' | 'system';
export type AlertSeverity = 'info' | 'warning' | 'critical';

export const ALERT_CLASSES: readonly AlertClass[] = ['outbreak', 'quarantine', 'antivirus', 'system'];
export const ALERT_SEVERITIES: readonly AlertSeverity[] = ['info', 'warning', 'critical'];

/** info < warning < critical */
export function severityRank(s: AlertSeverity): number {
  return ALERT_SEVERITIES.indexOf(s);
}

export interface AlertInput {
  class: AlertClass;
  severity: AlertSeverity;
  /** stable key used for repeat suppression, e.g. "outbreak.rule_raised:OUTBREAK_1" */
  key: string;
  title: string;
  text: string;
  data?: Record<string, unknown>;
}

export interface WebhookDelivery {
  /** the endpoint without credentials or query string */
  url: string;
  status: 'sent' | 'failed';
  httpStatus?: number;
  error?: string;
}

export interface Alert extends AlertInput {
  id: number;
  at: number;
  suppressed: boolean;
  /**
   * email: 'skipped' when nothing was sent (suppressed, below minSeverity, no recipients).
   * webhooks: one entry per webhook as its delivery finishes (they run after raise() resolves).
   */
  deliveries: { email: 'sent' | 'skipped' | 'failed'; webhooks: WebhookDelivery[] };
}

export interface WebhookTarget {
  url: string;
  /** HMAC-SHA256 key for X-Breakwater-Signature; never logged or recorded */
  secret?: string;
  /** only these classes (all when unset) */
  classes?: AlertClass[];
  /** only alerts at or above */
  minSeverity?: AlertSeverity;
}

export interface AlertOptions {
  /** alerts.recipients */
  recipients: string[];
  /** envelope and header sender, e.g. "breakwater@<hostname>" */
  from: string;
  hostname: string;
  webhooks: WebhookTarget[];
  /** below it: recorded but not sent */
  minSeverity: AlertSeverity;
  /** ms: the same key is not sent again within this interval (still recorded, marked suppressed) */
  suppressFor: number;
  /** hands an RFC 5322 message to the gateway's own spool and delivery queue; resolves when spooled */
  sendMail: (sender: string, recipients: string[], message: Buffer) => Promise<void>;
  store: Store;
  now?: () => number;
  fetchImpl?: typeof fetch;
  /** per webhook attempt, ms (default 5000) */
  webhookTimeout?: number;
  /** waits before the 2nd, 3rd, … attempt, ms (default [500, 2000]: three attempts) */
  webhookRetryDelays?: number[];
  /** how long close() waits for webhook deliveries before aborting them, ms (default 10000) */
  closeTimeout?: number;
  /** operational problems (spool or webhook failures); never given a secret. Default: process.emitWarning */
  onError?: (message: string) => void;
}
