// The closed catalogue of tracking events. Every step of a message's life is one of these; tracking,
// the mail log and metrics are all fed from it, so nothing is reconstructed by grepping free text.
//
// An event carries everything its subscribers need to know: the tracking subscriber derives each
// message's record (status, recipients, parse facts, threat rules) from the events alone. A `detail`
// field holds bulky facts for the record tables (every URL, every rule's description); it travels on
// the bus but is not kept in the event's stored JSON (storedEventData).

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
      direction?: 'incoming' | 'outgoing';
      rdns?: string | null;
      /** epoch ms */
      receivedAt?: number;
      spoolFile?: string;
      /** written by the gateway itself (a DSN, an alert, a quarantine copy) */
      generated?: string;
      /** the HAT sender group of the connection, and the DNS lists that list the client */
      senderGroup?: string;
      reputation?: string[];
      /** recipients the directory did not answer for live: a stale cached answer or accepted unchecked */
      directory?: string[];
    }
  | {
      type: 'policy.split';
      policy: string;
      children: number[];
      /** each copy: its MID, policy and recipients (rids are renumbered from 0 per copy) */
      copies?: Array<{ mid: number; policy: string; recipients: string[] }>;
    }
  | { type: 'policy.matched'; policy: string; splinteredFrom: number | null }
  | {
      type: 'scan.parsed';
      subject: string | null;
      messageId: string | null;
      attachments: number;
      urls: number;
      anomalies: string[];
      detail?: ParsedDetail;
    }
  | { type: 'stage.failed'; stage: string; error: string; failureMode: string }
  /** limits the parser or a scanner reached, and what the policy did about them (policy/unscannable.ts) */
  | { type: 'scan.unscannable'; limits: string[]; action: string; details: string[] }
  | { type: 'verdict'; verdict: string; reason: string }
  /** handed to the delivery queue: the verdict said deliver, and any modified bytes are durable */
  | { type: 'delivery.queued'; rids: number[]; resumed?: boolean }
  /** signed: the DKIM signatures and ARC seal put in front of the bytes ("dkim d=… s=… ed25519-sha256") */
  | { type: 'delivery.start'; dcid: number; target: string; rids: number[]; signed?: string[] }
  | {
      type: 'delivery.delivered';
      dcid: number;
      rid: number;
      address: string;
      target: string;
      reply: string;
      tls?: DeliveryTlsInfo;
    }
  | {
      type: 'delivery.deferred';
      dcid: number | null;
      rid: number;
      address: string;
      target: string;
      reply: string;
      nextAttemptAt: number;
      tls?: DeliveryTlsInfo;
    }
  | {
      type: 'delivery.bounced';
      dcid: number | null;
      rid: number;
      address: string;
      target: string;
      reply: string;
      tls?: DeliveryTlsInfo;
    }
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
  /** sender authentication (pipeline/stages/sender-auth.ts): SPF, DKIM, DMARC, ARC and the policy's DMARC action */
  | {
      type: 'auth.checked';
      spf: string;
      spfDomain: string | null;
      /** SPF of the HELO name; null when not checked (address literal, null sender) */
      spfHelo: string | null;
      /** one per signature, at most 20 */
      dkim: Array<{ result: string; domain: string | null; selector: string | null; aligned: boolean }>;
      dmarc: string;
      dmarcDomain: string | null;
      dmarcPolicy: string | null;
      arc: string;
      /** none, drop, bounce, quarantine or tag */
      action: string;
      lookups: number;
      ms: number;
      /**
       * our Authentication-Results value, one entry per folded line: delivery puts it on top at send
       * time, and a restart rebuilds it from here (absent in events of older versions)
       */
      header?: string[];
      /** a DMARC failure not acted on: why (a trusted ARC sealer saw it pass; policy/sender-auth.ts) */
      dmarcOverride?: string;
      /** on a release: the result is the one this MID's first scan recorded (DNS was not asked again) */
      recordedFrom?: number;
      /** what a DMARC aggregate report counts of the message (set once per message, at its first scan) */
      detail?: DmarcDetail;
    }
  /** rspamd's answer (pipeline/stages/rspamd.ts): its action, score and strongest symbols */
  | {
      type: 'antispam.scanned';
      action: string;
      score: number;
      requiredScore: number;
      /** the symbols with a score, strongest first, at most 20 */
      symbols: Array<{ name: string; score: number; options: string[] }>;
      /** why rspamd gave no opinion (its settings skipped the message, or it was not sent) */
      skipped: string | null;
    }
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
      detail?: ThreatDetail;
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
  | {
      type: 'quarantine.held';
      quarantine: string;
      reason: string;
      exitAt: number;
      level: number;
      ruleIds: string[];
      /** the recipients held */
      rids?: number[];
    }
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
  /** one recipient released their copy (end-user quarantine): sent on as a new MID; the rest stays held */
  | {
      type: 'quarantine.recipient_released';
      quarantine: string;
      address: string;
      rids: number[];
      copyMid: number;
      by: string | null;
    }
  /** one recipient deleted their copy (end-user quarantine); the message stays held for the others */
  | { type: 'quarantine.recipient_deleted'; quarantine: string; address: string; rids: number[]; by: string | null }
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
      reason?: string;
    }
  /** one attempt to remediate a delivered message in a recipient's mailbox (IMAP, Microsoft Graph) */
  | {
      type: 'remediation.attempt';
      action: 'delete' | 'forward' | 'forward-and-delete';
      recipient: string;
      /** the account profile tried */
      profile: string;
      attempt: number;
      result: 'done' | 'failed';
      /** why it failed: mailbox_not_found, message_not_found, auth_failed, timeout, error (src/xdr/remediation/types.ts) */
      reason: string | null;
      /** who asked (an administrator, the hub, an XDR) */
      by: string | null;
      /** forward, forward-and-delete: the MID of the copy sent to the forward address */
      forwardMid?: number;
    }
  | { type: 'message.done'; status: MessageStatus };

export type TrackingEventType = TrackingEvent['type'];

/** The TLS of one delivery attempt (delivery/tls-policy.ts): the TLS column of tracking. */
export interface DeliveryTlsInfo {
  /** "TLSv1.3"; null: the session was in clear */
  protocol: string | null;
  cipher: string | null;
  /** the certificate chains to a trusted CA and names the host */
  verified: boolean;
  /** why it is not encrypted or not verified; null when it is both */
  reason: string | null;
  /** the policy applied: opportunistic, require, verify, none, mta-sts enforce, "… (mta-sts testing)" */
  policy: string;
  /** MTA-STS testing-mode findings, policy fetch errors */
  note?: string;
}

/** What the parse found, for the record's search tables (bulky: never in the stored event JSON). */
export interface ParsedDetail {
  from: string | null;
  attachments: Array<{ name: string; trueType: string | null; size: number; sha256: string }>;
  urls: Array<{ url: string; domain: string | null }>;
  /** a rescan (after a restart, on release): what an earlier scan recorded is replaced */
  replace: boolean;
}

/** The rules that scored a message, for the record's rule table (searchable by rule and level). */
export interface ThreatDetail {
  hits: Array<{ id: string; level: number; category: string; type: string; description: string; adaptive: boolean }>;
  /** a rescan: the rules an earlier scan recorded are replaced */
  replace: boolean;
}

/**
 * One message as DMARC aggregate reports count it (RFC 7489 §7.2, senderauth/dmarc-reports.ts): where it
 * came from, the record that applied and what was done. Travels on the bus only: the stored event has the
 * results, and the rest is in the report's counts.
 */
export interface DmarcDetail {
  sourceIp: string;
  /** the envelope sender's domain; '' for the null sender */
  envelopeFrom: string;
  /** the MID of the message a policy split made this copy of (a message is counted once); null: not split */
  splitFrom: number | null;
  /** the record that applied (policy_published) and its rua= URIs */
  published: {
    domain: string;
    orgDomain: string;
    p: string;
    sp: string;
    pct: number;
    adkim: 'r' | 's';
    aspf: 'r' | 's';
    rua: string[];
  };
  /** an aligned DKIM signature, an aligned SPF identity passed */
  dkimAligned: boolean;
  spfAligned: boolean;
  /** what our action amounts to (policy_evaluated) */
  disposition: 'none' | 'quarantine' | 'reject';
  /** why that is not what the domain's policy asked for (PolicyOverrideReason) */
  reasons: Array<{ type: 'trusted_forwarder' | 'sampled_out' | 'local_policy'; comment: string | null }>;
}

/** The event as kept in the events table (the outbox): without its bulky `detail`. */
export function storedEventData(e: TrackingEvent): Record<string, unknown> {
  const { type: _type, ...data } = e;
  if ('detail' in data) delete (data as { detail?: unknown }).detail;
  return data;
}
