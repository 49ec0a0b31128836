// CTIM entities from message summaries (DESIGN §10; reference R108–R114). Built from MessageSummary, not
// from the tracker, so that the hub, which stores the summaries of many gateways, builds the same
// entities: one sighting per message, and a verdict (and, when it asserts something, a judgement) per
// observable from the threat levels of the messages it came in.
import { randomUUID } from 'node:crypto';
import type { MessageSummary } from '../summary.ts';
import { fromAddressOf, observableKey, type Observable } from '../observables.ts';
import {
  CTIM_SCHEMA_VERSION,
  DISPOSITIONS,
  type Confidence,
  type Disposition,
  type Judgement,
  type ObservedRelation,
  type Resolution,
  type Severity,
  type Sighting,
  type SightingTarget,
  type Verdict,
} from './entities.ts';

export interface CtimContext {
  /** `source` of every entity, and `origin` of every relation */
  source: string;
  /** where people see one message (the gateway's tracking; the hub's message view) */
  messageUri(s: MessageSummary): string;
  /** the entity's id; relays answer with transient ids (`transient:sighting-<uuid>`) */
  newId(type: 'sighting' | 'judgement' | 'verdict'): string;
  now: Date;
  /** names the gateway in external ids when many send summaries (the hub) */
  deviceId?: string;
}

export function transientId(type: string): string {
  return `transient:${type}-${randomUUID()}`;
}

/** How long a verdict or judgement holds: they are computed again at every call. */
export const VERDICT_VALIDITY_MS = 24 * 3_600_000;

/** Judgement priority: what relay modules of security products answer (0–100; 90 for a vendor's own). */
export const JUDGEMENT_PRIORITY = 90;

/**
 * The disposition an Outbreak Filters threat level stands for (DESIGN §4.1):
 * 4–5 (high, extreme) Malicious; 2–3 ("suspicious", medium) Suspicious; 0–1 and unscored Unknown.
 * Never Clean: no rule matching is an absence of evidence, and CTIM's Clean asserts a known-good
 * observable, which a gateway cannot say about a sender, a file or a URL.
 */
export function dispositionOf(level: number | null): Disposition {
  if (level !== null && level >= 4) return 2;
  if (level !== null && level >= 2) return 3;
  return 5;
}

/** Threat level → CTIM severity: 5 Critical, 4 High, 3 Medium, 1–2 Low, 0 Info, not scored Unknown. */
export function severityOf(level: number | null): Severity {
  if (level === null) return 'Unknown';
  return (['Info', 'Low', 'Low', 'Medium', 'High', 'Critical'] as const)[Math.max(0, Math.min(5, level))];
}

function confidenceOf(level: number | null): Confidence {
  if (level === null) return 'Unknown';
  return level >= 4 ? 'High' : level === 3 ? 'Medium' : 'Low';
}

/** What the gateway did with the message, as CTIM's sighting resolution. */
export function resolutionOf(status: string): Resolution {
  switch (status) {
    case 'quarantined':
      return 'contained';
    case 'dropped':
    case 'bounced':
    case 'deleted':
      return 'blocked';
    case 'delivered':
    case 'released':
      return 'allowed';
    default:
      return 'detected';
  }
}

/** The message as an observable: our MID. */
export function messageObservable(s: MessageSummary): Observable {
  return { type: 'cisco_mid', value: String(s.mid) };
}

/** The observables that identify a message: MID, Message-ID, sender (envelope and header), IP, subject. */
export function messageObservables(s: MessageSummary): Observable[] {
  const out: Observable[] = [messageObservable(s)];
  if (s.messageId) out.push({ type: 'email_messageid', value: s.messageId });
  if (s.sender) out.push({ type: 'email', value: s.sender });
  const from = fromAddressOf(s.headerFrom);
  if (from && from !== s.sender) out.push({ type: 'email', value: from });
  out.push({ type: s.senderIp.includes(':') ? 'ipv6' : 'ip', value: s.senderIp });
  if (s.subject) out.push({ type: 'email_subject', value: s.subject });
  return out;
}

function unique(list: Observable[]): Observable[] {
  const seen = new Set<string>();
  return list.filter((o) => {
    const k = observableKey(o);
    return seen.has(k) ? false : (seen.add(k), true);
  });
}

/**
 * The relations of one message, in CTIM's observable relation vocabulary: sender `Sent_To` each
 * recipient; the message `Sent_By` its sender (envelope, and header From when it differs),
 * `Received_From` the sending IP, `Contains` each attachment (SHA-256 and name) and URL.
 */
export function messageRelations(s: MessageSummary, ctx: CtimContext): ObservedRelation[] {
  const origin = ctx.source;
  const origin_uri = ctx.messageUri(s);
  const msg = messageObservable(s);
  const rel = (source: Observable, relation: string, related: Observable): ObservedRelation => ({
    origin,
    origin_uri,
    relation,
    source,
    related,
  });
  const out: ObservedRelation[] = [];
  const sender: Observable | null = s.sender ? { type: 'email', value: s.sender } : null;
  if (sender) out.push(rel(msg, 'Sent_By', sender));
  const from = fromAddressOf(s.headerFrom);
  if (from && from !== s.sender) out.push(rel(msg, 'Sent_By', { type: 'email', value: from }));
  // a bounce (null sender) has no sender address: the message itself was sent to the recipients
  for (const r of s.recipients) out.push(rel(sender ?? msg, 'Sent_To', { type: 'email', value: r.address }));
  out.push(rel(msg, 'Received_From', { type: s.senderIp.includes(':') ? 'ipv6' : 'ip', value: s.senderIp }));
  for (const a of s.attachments) {
    out.push(rel(msg, 'Contains', { type: 'sha256', value: a.sha256 }));
    if (a.name) out.push(rel(msg, 'Contains', { type: 'file_name', value: a.name }));
  }
  for (const u of s.urls) out.push(rel(msg, 'Contains', { type: 'url', value: u }));
  return out;
}

/** The recipients as sighting targets: one mailbox each. */
export function messageTargets(s: MessageSummary): SightingTarget[] {
  return s.recipients.map((r) => ({
    type: 'email',
    observables: [{ type: 'email', value: r.address }],
    observed_time: { start_time: s.receivedAt },
  }));
}

function describe(s: MessageSummary): string {
  const lines = [
    `- **MID**: ${s.mid}${s.parentMid !== null ? ` (copy of MID ${s.parentMid})` : ''}`,
    `- **From**: ${s.sender || '<>'}${s.headerFrom ? ` (header: ${s.headerFrom})` : ''}`,
    `- **To**: ${s.recipients.map((r) => `${r.address} (${r.status})`).join(', ')}`,
    `- **Subject**: ${s.subject ?? '(none)'}`,
    `- **Message-ID**: ${s.messageId ?? '(none)'}`,
    `- **Sending IP**: ${s.senderIp}${s.rdns ? ` (${s.rdns})` : ''}`,
    `- **Status**: ${s.status}${s.verdict ? ` (verdict ${s.verdict})` : ''}`,
    `- **Threat level**: ${s.threatLevel ?? 'not scored'}${s.rules.length ? ` (${s.rules.join(', ')})` : ''}`,
  ];
  if (s.attachments.length) lines.push(`- **Attachments**: ${s.attachments.map((a) => a.name || a.sha256).join(', ')}`);
  if (s.urls.length) lines.push(`- **URLs**: ${s.urls.length}`);
  return lines.join('\n');
}

/** One sighting of a message: `matched` are the observables it was found by (they come first). */
export function buildSighting(s: MessageSummary, matched: Observable[], ctx: CtimContext): Sighting {
  const n = s.recipients.length;
  return {
    type: 'sighting',
    id: ctx.newId('sighting'),
    schema_version: CTIM_SCHEMA_VERSION,
    count: 1,
    confidence: 'High',
    observed_time: { start_time: s.receivedAt, end_time: s.receivedAt },
    observables: unique([...matched, ...messageObservables(s)]),
    targets: messageTargets(s),
    relations: messageRelations(s, ctx),
    sensor: 'process.email-service',
    resolution: resolutionOf(s.status),
    severity: severityOf(s.threatLevel),
    internal: true,
    source: ctx.source,
    source_uri: ctx.messageUri(s),
    title: `${s.direction === 'outgoing' ? 'Outgoing' : 'Incoming'} email message, ${s.status}`,
    description: describe(s),
    short_description: `MID ${s.mid} from ${s.sender || '<>'} to ${n} recipient${n === 1 ? '' : 's'}: ${s.status}`,
    external_ids: [`breakwater:${ctx.deviceId ? `${ctx.deviceId}:` : ''}mid:${s.mid}`],
    tlp: 'amber',
    timestamp: ctx.now.toISOString(),
  };
}

/**
 * What the messages an observable came in say about it: the highest threat level among them, and the
 * message that has it (null level: seen only in unscored messages or at level 0).
 */
export interface Assessment {
  observable: Observable;
  level: number | null;
  /** the message that decided (the newest with the highest level) */
  message: MessageSummary;
}

function validTime(ctx: CtimContext) {
  return {
    start_time: ctx.now.toISOString(),
    end_time: new Date(ctx.now.getTime() + VERDICT_VALIDITY_MS).toISOString(),
  };
}

/** A judgement asserts a disposition; none for Unknown (there is nothing to assert). */
export function buildJudgement(a: Assessment, ctx: CtimContext): Judgement | null {
  const disposition = dispositionOf(a.level);
  if (disposition === 5) return null;
  const m = a.message;
  return {
    type: 'judgement',
    id: ctx.newId('judgement'),
    schema_version: CTIM_SCHEMA_VERSION,
    observable: a.observable,
    disposition,
    disposition_name: DISPOSITIONS[disposition],
    priority: JUDGEMENT_PRIORITY,
    confidence: confidenceOf(a.level),
    severity: severityOf(a.level),
    source: ctx.source,
    source_uri: ctx.messageUri(m),
    valid_time: validTime(ctx),
    reason: `Outbreak Filters threat level ${a.level} in MID ${m.mid}${m.rules.length ? ` (${m.rules.join(', ')})` : ''}`,
    reason_uri: ctx.messageUri(m),
    tlp: 'amber',
    timestamp: ctx.now.toISOString(),
  };
}

export function buildVerdict(a: Assessment, ctx: CtimContext, judgementId?: string): Verdict {
  const disposition = dispositionOf(a.level);
  return {
    type: 'verdict',
    id: ctx.newId('verdict'),
    schema_version: CTIM_SCHEMA_VERSION,
    observable: a.observable,
    disposition,
    disposition_name: DISPOSITIONS[disposition],
    valid_time: validTime(ctx),
    ...(judgementId ? { judgement_id: judgementId } : {}),
  };
}
