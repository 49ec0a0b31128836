// The end-user quarantine digest: every `endUserQuarantine.digest.every`, each recipient with messages
// held for them since their last digest gets one message listing them, with a signed link to their
// quarantine page (and one per message). Sent through the gateway's own spool and queue (durable,
// retried, tracked; generated mail is never scanned, so our links are not rewritten). The links act on
// nothing by themselves: link checkers that fetch them only open a page that asks before it acts.
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import {
  quotedPrintable,
  rfc5322Date,
  safeAddress,
  safeHostname,
  singleLine,
  unstructuredHeader,
} from '../alerts/message.ts';
import type { EndUserMessage, EndUserService } from './service.ts';

export interface DigestInput {
  to: string;
  from: string;
  subject: string;
  hostname: string;
  messages: EndUserMessage[];
  /** every message held for the recipient (the digest lists the new ones) */
  total: number;
  /** the page of all their held messages */
  pageUrl: string;
  /** a message's own link (opens the page on it) */
  messageUrl: (mid: number) => string;
  expiresAt: number;
  now: number;
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The digest message (multipart/alternative: text, then HTML). */
export function buildDigestMessage(d: DigestInput): Buffer {
  const host = safeHostname(d.hostname);
  const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  const until = when(d.expiresAt);
  const heading = `${d.messages.length} new message${d.messages.length === 1 ? '' : 's'} held for you (${d.total} in all)`;
  const text = [
    heading,
    '',
    ...d.messages.flatMap((m) => [
      `- ${when(m.receivedAt)}  from ${singleLine(m.sender) || '(no sender)'}`,
      `  ${singleLine(m.subject ?? '(no subject)')}`,
      `  ${d.messageUrl(m.mid)}`,
    ]),
    '',
    `See, release or delete them, or allow a sender: ${d.pageUrl}`,
    `(the links sign you in until ${until}; do not forward this message)`,
    '',
    '-- ',
    `Breakwater quarantine on ${host}`,
  ].join('\r\n');
  const rows = d.messages
    .map(
      (m) =>
        `<tr><td>${escapeHtml(when(m.receivedAt))}</td><td>${escapeHtml(singleLine(m.sender) || '(no sender)')}</td>` +
        `<td><a href="${escapeHtml(d.messageUrl(m.mid))}">${escapeHtml(singleLine(m.subject ?? '(no subject)'))}</a></td></tr>`,
    )
    .join('\r\n');
  const html = [
    '<!doctype html><html><body style="font-family:sans-serif">',
    `<p><strong>${escapeHtml(heading)}</strong></p>`,
    '<table cellpadding="4" style="border-collapse:collapse"><tr><th align="left">Received</th><th align="left">From</th><th align="left">Subject</th></tr>',
    rows,
    '</table>',
    `<p><a href="${escapeHtml(d.pageUrl)}">See, release or delete them, or allow a sender</a></p>`,
    `<p style="color:#666">The links sign you in until ${escapeHtml(until)}; do not forward this message.</p>`,
    '</body></html>',
  ].join('\r\n');
  const boundary = `bw-digest-${randomBytes(12).toString('hex')}`;
  const headers = [
    `Date: ${rfc5322Date(d.now)}`,
    `From: Breakwater quarantine <${d.from}>`,
    `To: <${d.to}>`,
    unstructuredHeader('Subject', `${d.subject} (${d.messages.length})`),
    `Message-ID: <digest.${randomBytes(8).toString('hex')}@${host}>`,
    'Auto-Submitted: auto-generated',
    'X-Auto-Response-Suppress: All',
    'X-Breakwater-Digest: end-user quarantine',
    'MIME-Version: 1.0',
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
  ];
  const part = (type: string, body: string) =>
    [
      `--${boundary}`,
      `Content-Type: ${type}; charset=utf-8`,
      'Content-Transfer-Encoding: quoted-printable',
      '',
      quotedPrintable(body),
    ].join('\r\n');
  return Buffer.from(
    `${headers.join('\r\n')}\r\n\r\n${part('text/plain', text)}\r\n${part('text/html', html)}\r\n--${boundary}--\r\n`,
    'utf8',
  );
}

const LINK_INTERVAL_MS = 5 * 60_000;

export interface DigestDeps {
  config: Config;
  endUsers: EndUserService;
  /** hands a message to the gateway's own spool and queue; its MID */
  inject: (from: string, to: string[], message: Buffer) => Promise<number>;
  /** the web UI address links open (endUserQuarantine.url, or the admin port) */
  baseUrl: () => string;
  meta: { get(key: string): string | undefined; set(key: string, value: string): void };
  log: (line: string) => void;
}

/** Sends the digests on schedule (and on demand: `breakwater quarantine digest`, the API). */
export class EndUserDigests {
  private readonly deps: DigestDeps;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<{ digests: number; messages: number }> | null = null;
  /** address → when a requested link was last mailed */
  private readonly linksSent = new Map<string, number>();

  constructor(deps: DigestDeps) {
    this.deps = deps;
  }

  start(): void {
    const c = this.deps.config.endUserQuarantine;
    if (!c.enabled || !c.digest.enabled) return;
    const every = parseDuration(c.digest.every);
    const saved = this.deps.meta.get('enduser_digest_at');
    // The first digest goes out one interval after the feature is first started (a schedule, not a
    // burst at every first start); a restart does not send again early, and a gateway down at the due
    // time sends soon after it starts.
    if (!saved) this.deps.meta.set('enduser_digest_at', String(Date.now()));
    const last = Number(saved ?? Date.now());
    this.schedule(Math.max(5_000, last + every - Date.now()));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(inMs: number): void {
    this.timer = setTimeout(() => {
      void this.sendNow()
        .catch((err: Error) => this.deps.log(`end-user digests failed: ${err.message}`))
        .finally(() => {
          if (this.timer) this.schedule(parseDuration(this.deps.config.endUserQuarantine.digest.every));
        });
    }, inMs);
    this.timer.unref();
  }

  /** One round of digests now; a round already running is waited for, not doubled. */
  sendNow(): Promise<{ digests: number; messages: number }> {
    this.running ??= this.round().finally(() => (this.running = null));
    return this.running;
  }

  /**
   * A link the recipient asked for (the sign-in page): mailed to that address only, listing what is held
   * for them, at most one per address every 5 minutes, and only to someone with held messages (the page
   * answers the same either way, so it tells nobody whose mail is held and mails no stranger).
   */
  async sendLink(address: string): Promise<boolean> {
    const now = Date.now();
    for (const [a, at] of this.linksSent) if (now - at > LINK_INTERVAL_MS) this.linksSent.delete(a);
    if (this.linksSent.has(address) || this.linksSent.size > 10_000) return false;
    const { config, endUsers } = this.deps;
    const c = config.endUserQuarantine;
    const to = safeAddress(address);
    if (!c.enabled || !c.requestLink || !to) return false;
    const all = await endUsers.messages(to);
    if (!all.length) return false;
    this.linksSent.set(address, now);
    await this.send(to, all.slice(-c.digest.maxMessages), all.length, now, 'Your quarantine link');
    return true;
  }

  private async send(to: string, list: EndUserMessage[], total: number, now: number, subject: string): Promise<number> {
    const { config, endUsers } = this.deps;
    const c = config.endUserQuarantine;
    const from = c.digest.from ?? `quarantine@${safeHostname(config.hostname)}`;
    const expiresAt = now + parseDuration(c.linkLifetime);
    const token = endUsers.signLink(to, expiresAt);
    const base = this.deps.baseUrl();
    const mid = await this.deps.inject(
      from,
      [to],
      buildDigestMessage({
        to,
        from,
        subject,
        hostname: config.hostname,
        messages: list,
        total,
        pageUrl: endUsers.linkUrl(base, token),
        messageUrl: (m) => endUsers.linkUrl(base, token, m),
        expiresAt,
        now,
      }),
    );
    this.deps.log(
      `end-user ${subject === c.digest.subject ? 'digest' : 'link'} to <${to}> as MID ${mid}: ${list.length} message(s)`,
    );
    return mid;
  }

  private async round(): Promise<{ digests: number; messages: number }> {
    const { config, endUsers } = this.deps;
    const c = config.endUserQuarantine;
    const started = Date.now();
    let digests = 0;
    let messages = 0;
    if (!c.enabled) return { digests, messages };
    for (const due of await endUsers.digestsDue(c.digest.maxMessages)) {
      const to = safeAddress(due.address);
      if (!to) continue;
      await this.send(to, due.messages, due.total, started, c.digest.subject);
      endUsers.digestSent(to, started);
      digests++;
      messages += due.messages.length;
    }
    this.deps.meta.set('enduser_digest_at', String(started));
    return { digests, messages };
  }
}
