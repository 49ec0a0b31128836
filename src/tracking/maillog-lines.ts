// The mail log subscriber (DESIGN §8): one line per event on the bus, in the appliance's format
// (`Info: MID 12 ICID 7 From: <a@x.test>`). The mail log and its mirrors (syslog) get every line.
import type { EventBus } from './bus.ts';
import type { TrackingEvent } from './events.ts';
import type { MailLog } from './maillog.ts';

export interface MailLogLine {
  level: 'info' | 'warning';
  text: string;
}

/** Writes every event's mail log lines to `log`. */
export function subscribeMailLog(bus: EventBus, log: Pick<MailLog, 'info' | 'warning'>): () => void {
  return bus.subscribe('mail log', ({ mid, event, icid }) => {
    for (const l of mailLogLines(mid, event, icid)) log[l.level](l.text);
  });
}

export function mailLogLines(mid: number, e: TrackingEvent, icid?: number): MailLogLine[] {
  const out: MailLogLine[] = [];
  const log = {
    info: (text: string) => out.push({ level: 'info', text }),
    warning: (text: string) => out.push({ level: 'warning', text }),
  };
  switch (e.type) {
    case 'ingress.accepted':
      log.info(`MID ${mid} ICID ${e.icid} From: <${e.sender}>`);
      e.recipients.forEach((r, i) => log.info(`MID ${mid} ICID ${e.icid} RID ${i} To: <${r}>`));
      log.info(`MID ${mid} ready ${e.size} bytes from ${e.senderIp}`);
      break;
    case 'policy.split':
      log.info(`MID ${mid} splintered into MIDs ${e.children.join(', ')} by policy`);
      break;
    case 'policy.matched':
      log.info(
        `MID ${mid} matched ${e.policy} policy` +
          (e.splinteredFrom !== null ? ` (splintered from MID ${e.splinteredFrom})` : ''),
      );
      break;
    case 'scan.parsed':
      if (e.messageId) log.info(`MID ${mid} Message-ID '${e.messageId}'`);
      if (e.subject !== null) log.info(`MID ${mid} Subject '${e.subject}'`);
      if (e.anomalies.length) log.warning(`MID ${mid} MIME anomalies: ${e.anomalies.join(', ')}`);
      break;
    case 'stage.failed':
      log.warning(`MID ${mid} stage ${e.stage} failed (${e.failureMode}): ${e.error}`);
      break;
    case 'scan.unscannable':
      log.warning(`MID ${mid} unscannable: ${e.limits.join(', ')} limit reached; action ${e.action}`);
      break;
    case 'verdict':
      log.info(`MID ${mid} verdict ${e.verdict} (${e.reason})`);
      break;
    case 'delivery.queued':
      if (e.resumed) log.info(`MID ${mid} queued for delivery again after a restart`);
      break;
    case 'delivery.start':
      log.info(`Delivery start DCID ${e.dcid} MID ${mid} to RID [${e.rids.join(', ')}]`);
      break;
    case 'delivery.delivered':
      log.info(`Message done DCID ${e.dcid} MID ${mid} to RID [${e.rid}] [('${e.address}', '${e.reply}')]`);
      break;
    case 'delivery.deferred':
      log.info(
        `Delayed: DCID ${e.dcid ?? '-'} MID ${mid} to RID ${e.rid} - ${e.reply} (next attempt ${new Date(e.nextAttemptAt).toISOString()})`,
      );
      break;
    case 'delivery.bounced':
      log.info(`Bounced: DCID ${e.dcid ?? '-'} MID ${mid} to RID ${e.rid} - ${e.reply}`);
      break;
    case 'delivery.dsn':
      log.info(`MID ${mid} DSN sent as MID ${e.bounceMid} for RID [${e.rids.join(', ')}]`);
      break;
    case 'delivery.dsn_suppressed':
      log.info(`MID ${mid} no DSN for RID [${e.rids.join(', ')}]: ${e.reason}`);
      break;
    case 'admin.retry':
      log.info(`MID ${mid} retry requested by administrator for RID [${e.rids.join(', ')}]`);
      break;
    case 'admin.deleted':
      log.info(`MID ${mid} deleted by administrator for RID [${e.rids.join(', ')}]`);
      break;
    case 'antivirus.scanned':
      log.info(
        `MID ${mid} antivirus ${e.verdict}${e.names.length ? ` ${e.names.join(', ')}` : ''}${e.reason ? ` (${e.reason})` : ''}`,
      );
      break;
    case 'antivirus.stripped':
      log.info(`MID ${mid} antivirus: ${e.parts.length} infected attachment(s) removed`);
      break;
    case 'auth.checked':
      log.info(
        `MID ${mid} sender auth spf=${e.spf}${e.spfHelo ? ` helo=${e.spfHelo}` : ''} dkim=${e.dkim.map((d) => d.result).join(',') || 'none'} dmarc=${e.dmarc}${e.dmarcPolicy ? ` (p=${e.dmarcPolicy})` : ''} arc=${e.arc}${e.action !== 'none' ? ` action ${e.action}` : ''}${e.dmarcOverride ? ` dmarc overridden: ${e.dmarcOverride}` : ''}`,
      );
      break;
    case 'antispam.scanned': {
      const top = e.symbols
        .filter((s) => s.score > 0)
        .slice(0, 5)
        .map((s) => s.name);
      if (e.skipped) log.info(`MID ${mid} rspamd: no opinion (${e.skipped})`);
      else
        log.info(
          `MID ${mid} rspamd ${e.action} score ${e.score}/${e.requiredScore}${top.length ? ` (${top.join(', ')})` : ''}`,
        );
      break;
    }
    case 'outbreak.scored':
      if (e.skipped) log.info(`MID ${mid} Outbreak Filters: not scanned (${e.skipped})`);
      if (e.partial) log.info(`MID ${mid} Outbreak Filters: content scored up to maxScanSize`);
      else if (e.level > 0)
        log.info(
          `MID ${mid} Outbreak Filters: verdict positive (${e.ruleIds.slice(0, 5).join(', ')} level ${e.level})`,
        );
      else log.info(`MID ${mid} Outbreak Filters: verdict negative`);
      break;
    case 'outbreak.modified':
      log.info(
        `MID ${mid} Outbreak Filters: modified (${[
          e.subject ? 'subject' : '',
          e.headers.length ? 'headers' : '',
          e.disclaimerParts ? 'disclaimer' : '',
          e.rewrittenUrls ? `${e.rewrittenUrls} URL(s) rewritten` : '',
          e.rewriteSkipped ? `rewriting skipped: ${e.rewriteSkipped}` : '',
          e.alternateMailHost ? `to ${e.alternateMailHost}` : '',
        ]
          .filter(Boolean)
          .join(', ')})`,
      );
      break;
    case 'quarantine.held':
      log.info(`MID ${mid} quarantined to "${quarantineLabel(e.quarantine)}" (${e.reason})`);
      break;
    case 'quarantine.rescored':
      log.info(`MID ${mid} rescanned in quarantine "${quarantineLabel(e.quarantine)}": level ${e.level}`);
      break;
    case 'quarantine.released':
      log.info(
        `MID ${mid} released from quarantine "${quarantineLabel(e.quarantine)}" (${e.reason})` +
          (e.stillIn?.length ? `; still in ${e.stillIn.map((q) => `"${quarantineLabel(q)}"`).join(', ')}` : ''),
      );
      break;
    case 'quarantine.deleted':
      log.info(
        `MID ${mid} deleted from quarantine "${quarantineLabel(e.quarantine)}" (${e.reason})` +
          (e.alsoIn?.length ? `; also removed from ${e.alsoIn.map((q) => `"${quarantineLabel(q)}"`).join(', ')}` : ''),
      );
      break;
    case 'quarantine.recipient_released':
      log.info(
        `MID ${mid} released from quarantine "${quarantineLabel(e.quarantine)}" for <${e.address}> as MID ${e.copyMid}` +
          (e.by ? ` by ${e.by}` : ''),
      );
      break;
    case 'quarantine.recipient_deleted':
      log.info(
        `MID ${mid} deleted from quarantine "${quarantineLabel(e.quarantine)}" for <${e.address}>` +
          (e.by ? ` by ${e.by}` : ''),
      );
      break;
    case 'quarantine.moved':
      log.info(
        `MID ${mid} moved from quarantine "${quarantineLabel(e.quarantine)}" to "${quarantineLabel(e.to)}"` +
          (e.by ? ` by ${e.by}` : ''),
      );
      break;
    case 'quarantine.copied':
      log.info(
        `MID ${mid} copy sent from quarantine "${quarantineLabel(e.quarantine)}" to ${e.to.map((a) => `<${a}>`).join(', ')} as MID ${e.copyMid}`,
      );
      break;
    case 'quarantine.overflow':
      log.warning(
        `MID ${mid} quarantine "${quarantineLabel(e.quarantine)}" over capacity (${e.usedBytes} of ${e.maxSize} bytes): oldest message takes its default action, ${e.action}`,
      );
      break;
    case 'quarantine.delayed':
      log.info(
        `MID ${mid} scheduled exit from quarantine "${quarantineLabel(e.quarantine)}" moved to ${new Date(e.exitAt).toISOString()}`,
      );
      break;
    case 'click':
      log.info(
        `MID ${mid} click by <${e.recipient}> on ${e.url}: ${e.verdict}, ${e.action}` +
          (e.source && e.source !== 'none' ? ` (from ${e.source})` : ''),
      );
      break;
    case 'remediation.attempt':
      (e.result === 'done' ? log.info : log.warning)(
        `MID ${mid} remediation ${e.action} in the mailbox of <${e.recipient}> via ${e.profile} (attempt ${e.attempt}): ${e.result}` +
          (e.reason ? ` (${e.reason})` : '') +
          (e.forwardMid !== undefined ? `, forwarded as MID ${e.forwardMid}` : '') +
          (e.by ? ` by ${e.by}` : ''),
      );
      break;
    case 'message.done':
      log.info(`Message finished MID ${mid} ${e.status}` + (icid !== undefined ? ` ICID ${icid}` : ''));
      break;
    default: {
      const never: never = e;
      throw new Error(`unknown event ${(never as { type: string }).type}`);
    }
  }
  return out;
}

function quarantineLabel(q: string): string {
  return q === 'outbreak' ? 'Outbreak' : q === 'virus' ? 'Virus' : q;
}
