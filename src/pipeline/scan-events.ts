// What the pipeline found, as events: the parse (`scan.parsed`, with every attachment and URL as detail
// for the record's search tables) and the Outbreak Filters score (`outbreak.scored`, with every
// matching rule as detail).
import type { TrackingEvent } from '../tracking/events.ts';
import type { OutbreakAssessment } from '../outbreak/engine.ts';
import type { ParsedMessage } from '../mime/types.ts';

/** `rescan`: what an earlier scan recorded for this message is replaced. */
export function parsedEvent(p: ParsedMessage, rescan: boolean): Extract<TrackingEvent, { type: 'scan.parsed' }> {
  return {
    type: 'scan.parsed',
    subject: p.subject,
    messageId: p.messageId,
    attachments: p.attachments.length,
    urls: p.urls.length,
    anomalies: p.anomalies,
    detail: {
      from: p.from,
      attachments: p.attachments.map((a) => ({ name: a.name, trueType: a.trueType, size: a.size, sha256: a.sha256 })),
      urls: p.urls.map((u) => ({ url: u.url, domain: u.domain ?? u.host })),
      replace: rescan,
    },
  };
}

/** `rescan`: the rules an earlier scan recorded for this message are replaced. */
export function scoreEvent(
  a: OutbreakAssessment,
  rescan: boolean,
): Extract<TrackingEvent, { type: 'outbreak.scored' }> {
  return {
    type: 'outbreak.scored',
    level: a.level,
    category: a.category,
    threatType: a.type,
    viral: a.viral,
    ruleIds: a.hits.map((h) => h.id).slice(0, 20),
    ruleVersion: a.ruleVersion,
    skipped: a.skipped,
    ...(a.partial ? { partial: true } : {}),
    detail: {
      hits: a.hits.slice(0, 50).map((h) => ({
        id: h.id,
        level: h.level,
        category: h.category,
        type: h.type,
        description: h.description,
        adaptive: h.adaptive,
      })),
      replace: rescan,
    },
  };
}
