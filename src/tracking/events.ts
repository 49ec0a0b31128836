// The closed catalogue of tracking events. Every step of a message's life is one of these; tracking,
// the mail log and metrics are all fed from it, so nothing is reconstructed by grepping free text.

export type RecipientStatus =
  'queued' | 'deferred' | 'delivered' | 'bounced' | 'dropped' | 'deleted' | 'quarantined' | 'released' | 'splintered';

export type MessageStatus = RecipientStatus | 'received' | 'scanning';

export type TrackingEvent =
  | {
      type: 'ingress.accepted';
      icid: number;
      listener: string;
      sender: string;
      recipients: string[];
      size: number;
      senderIp: string;
      helo: string | null;
      tls: string | null;
    }
  | { type: 'policy.split'; policy: string; children: number[] }
  | { type: 'policy.matched'; policy: string; splinteredFrom: number | null }
  | {
      type: 'scan.parsed';
      subject: string | null;
      messageId: string | null;
      attachments: number;
      urls: number;
      anomalies: string[];
    }
  | { type: 'stage.failed'; stage: string; error: string; failureMode: string }
  /** limits the parser or a scanner reached, and what the policy did about them (policy/unscannable.ts) */
  | { type: 'scan.unscannable'; limits: string[]; action: string; details: string[] }
  | { type: 'verdict'; verdict: string; reason: string }
  | { type: 'delivery.start'; dcid: number; target: string; rids: number[] }
  | { type: 'delivery.delivered'; dcid: number; rid: number; address: string; target: string; reply: string }
  | {
      type: 'delivery.deferred';
      dcid: number | null;
      rid: number;
      address: string;
      target: string;
      reply: string;
      nextAttemptAt: number;
    }
  | { type: 'delivery.bounced'; dcid: number | null; rid: number; address: string; target: string; reply: string }
  | { type: 'delivery.dsn'; bounceMid: number; rids: number[] }
  | { type: 'delivery.dsn_suppressed'; rids: number[]; reason: string }
  | { type: 'admin.retry'; rids: number[] }
  | { type: 'admin.deleted'; rids: number[] }
  | {
      type: 'antivirus.scanned';
      verdict: string;
      names: string[];
      reason: string | null;
      signatureVersion: number | null;
      infectedParts: string[];
    }
  | { type: 'antivirus.stripped'; parts: string[]; subjectTag: string | null }
  | {
      type: 'outbreak.scored';
      level: number;
      category: string | null;
      threatType: string | null;
      viral: boolean;
      ruleIds: string[];
      ruleVersion: number | null;
      skipped: string | null;
      /** only the first maxScanSize bytes of content were scored (attachment metadata always is) */
      partial?: boolean;
    }
  | {
      type: 'outbreak.modified';
      subject: boolean;
      headers: string[];
      disclaimerParts: number;
      rewrittenUrls: number;
      rewriteSkipped: string | null;
      alternateMailHost: string | null;
    }
  | { type: 'quarantine.held'; quarantine: string; reason: string; exitAt: number; level: number; ruleIds: string[] }
  | { type: 'quarantine.rescored'; quarantine: string; level: number; ruleIds: string[]; ruleVersion: number | null }
  | {
      type: 'quarantine.released';
      quarantine: string;
      reason: string;
      by: string | null;
      /** quarantines it still sits in: it leaves only when released from all of them */
      stillIn?: string[];
      /** the X-Breakwater-Quarantine text and subject tag it leaves with (kept for recovery) */
      note?: string;
      tag?: string | null;
    }
  | {
      type: 'quarantine.deleted';
      quarantine: string;
      reason: string;
      by: string | null;
      /** the other quarantines it was in: deleted from any means deleted from all */
      alsoIn?: string[];
    }
  | { type: 'quarantine.moved'; quarantine: string; to: string; exitAt: number; by: string | null }
  | { type: 'quarantine.copied'; quarantine: string; to: string[]; copyMid: number; by: string | null }
  | {
      type: 'quarantine.overflow';
      quarantine: string;
      action: 'release' | 'delete';
      usedBytes: number;
      maxSize: number;
    }
  | { type: 'quarantine.delayed'; quarantine: string; exitAt: number; by: string | null }
  | {
      type: 'click';
      recipient: string;
      url: string;
      verdict: string;
      action: string;
      ruleIds: string[];
      /** what decided the verdict (ClickSource: allow_list, block_list, url_rules, url_at_rewrite, message, none) */
      source: string;
    }
  | { type: 'message.done'; status: MessageStatus };

export type TrackingEventType = TrackingEvent['type'];
