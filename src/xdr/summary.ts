// The message summary (DESIGN §10, §11.2): what a gateway tells the hub about one message copy, and what
// the relay-module protocol turns into CTIM sightings — the tracking record without its event history.
// The hub keeps the latest summary per (device, MID); `version` orders summaries of one message.
import type { TrackingRecord } from '../tracking/tracker.ts';

export interface MessageSummary {
  /** per node: the gateway's MID */
  mid: number;
  icid: number;
  parentMid: number | null;
  /** ISO 8601 */
  receivedAt: string;
  direction: string;
  listener: string;
  policy: string | null;
  sender: string;
  recipients: Array<{ address: string; status: string; lastReply: string | null }>;
  headerFrom: string | null;
  subject: string | null;
  messageId: string | null;
  senderIp: string;
  rdns: string | null;
  helo: string | null;
  size: number;
  attachments: Array<{ name: string; trueType: string | null; size: number; sha256: string }>;
  urls: string[];
  /** the message's status (tracking's: delivered, quarantined, bounced, …) */
  status: string;
  /** the last verdict (deliver, quarantine, drop, bounce, tempfail), when one was reached */
  verdict: string | null;
  threatLevel: number | null;
  /** the rules that matched (outbreak and adaptive ids, virus names), strongest first */
  rules: string[];
  /** increases with every summary of this message (the outbox position it was made at) */
  version: number;
  /** at the hub: the device (gateway) the summary came from; MIDs are per gateway */
  device?: string;
}

/** The summary of a tracking record (`show(mid)`, with its events). */
export function summarize(r: TrackingRecord, version: number): MessageSummary {
  const verdicts = r.events.filter((e) => e.type === 'verdict');
  const last = verdicts.at(-1) as { verdict?: unknown } | undefined;
  return {
    mid: r.mid,
    icid: r.icid,
    parentMid: r.parentMid,
    receivedAt: r.receivedAt,
    direction: r.direction,
    listener: r.listener,
    policy: r.policy,
    sender: r.sender,
    recipients: r.recipients.map((x) => ({ address: x.address, status: x.status, lastReply: x.lastReply })),
    headerFrom: r.headerFrom,
    subject: r.subject,
    messageId: r.messageId,
    senderIp: r.senderIp,
    rdns: r.rdns,
    helo: r.helo,
    size: r.size,
    attachments: r.attachments,
    urls: r.urls,
    status: r.status,
    verdict: typeof last?.verdict === 'string' ? last.verdict : null,
    threatLevel: r.threatLevel,
    rules: r.threatRules.map((x) => x.id),
    version,
  };
}
