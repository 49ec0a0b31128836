// Prometheus metrics (DESIGN §8), fed from the tracking event catalogue.
import { Registry, Counter, Histogram, Gauge } from 'prom-client';
import type { TrackingEvent } from './events.ts';
import type { IngressObservation } from '../smtp/ingress.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly accepted = new Counter({
    name: 'breakwater_messages_accepted_total',
    help: 'Messages accepted (250 sent)',
    labelNames: ['listener'],
    registers: [this.registry],
  });
  readonly verdicts = new Counter({
    name: 'breakwater_verdicts_total',
    help: 'Verdicts by kind',
    labelNames: ['verdict'],
    registers: [this.registry],
  });
  readonly recipients = new Counter({
    name: 'breakwater_recipient_results_total',
    help: 'Delivery results per recipient',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly pipelineSeconds = new Histogram({
    name: 'breakwater_pipeline_seconds',
    help: 'Time spent in the scanning pipeline per message copy',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'breakwater_queue_messages',
    help: 'Message copies not yet finished',
    registers: [this.registry],
  });

  readonly threatLevels = new Counter({
    name: 'breakwater_outbreak_threat_levels_total',
    help: 'Messages scored by Outbreak Filters, by threat level',
    labelNames: ['level'],
    registers: [this.registry],
  });
  readonly antivirus = new Counter({
    name: 'breakwater_antivirus_verdicts_total',
    help: 'Anti-virus verdicts (clean, infected, unscannable)',
    labelNames: ['verdict'],
    registers: [this.registry],
  });
  readonly antispam = new Counter({
    name: 'breakwater_rspamd_actions_total',
    help: "rspamd's actions on scanned messages (no action, add header, reject, …; not scanned)",
    labelNames: ['action'],
    registers: [this.registry],
  });
  readonly quarantine = new Counter({
    name: 'breakwater_quarantine_events_total',
    help: 'Quarantine moves by kind (held, released, deleted)',
    labelNames: ['quarantine', 'event'],
    registers: [this.registry],
  });
  readonly clicks = new Counter({
    name: 'breakwater_clicks_total',
    help: 'Clicks on rewritten links by verdict and action',
    labelNames: ['verdict', 'action'],
    registers: [this.registry],
  });
  readonly connections = new Counter({
    name: 'breakwater_smtp_connections_total',
    help: 'SMTP connections by listener, HAT sender group and action',
    labelNames: ['listener', 'sender_group', 'action'],
    registers: [this.registry],
  });
  readonly dnsListings = new Counter({
    name: 'breakwater_dns_list_listings_total',
    help: 'Connections from clients a DNS blocklist or allowlist lists, by list ("dnsbl zone")',
    labelNames: ['list'],
    registers: [this.registry],
  });
  readonly rcptRefusals = new Counter({
    name: 'breakwater_smtp_rcpt_refusals_total',
    help: 'RCPT TO refused by reason (relay_denied, unknown_recipient, directory_unavailable, harvest_session, harvest_hour)',
    labelNames: ['listener', 'reason'],
    registers: [this.registry],
  });
  readonly directoryStale = new Counter({
    name: 'breakwater_directory_stale_answers_total',
    help: 'RCPT TO decided by an expired cached directory answer while the directory was unavailable (cache.staleTtl), by query and result (known, unknown)',
    labelNames: ['listener', 'directory', 'result'],
    registers: [this.registry],
  });
  readonly ruleVersion = new Gauge({
    name: 'breakwater_outbreak_rule_version',
    help: 'Version of the active outbreak rule bundle (0: none)',
    registers: [this.registry],
  });
  readonly quarantineBytes = new Gauge({
    name: 'breakwater_quarantine_bytes',
    help: 'Bytes held in quarantines',
    registers: [this.registry],
  });

  // prom-client's default metrics observe every garbage collection (measured: 3 % of the event loop at
  // 1,000 msg/s); these few gauges are read only when /metrics is scraped.
  readonly memory = new Gauge({
    name: 'breakwater_process_memory_bytes',
    help: 'Process memory by kind (rss, heapUsed, external)',
    labelNames: ['kind'],
    registers: [this.registry],
    collect() {
      const m = process.memoryUsage();
      this.set({ kind: 'rss' }, m.rss);
      this.set({ kind: 'heapUsed' }, m.heapUsed);
      this.set({ kind: 'external' }, m.external);
    },
  });
  readonly uptime = new Gauge({
    name: 'breakwater_process_uptime_seconds',
    help: 'Seconds since the process started',
    registers: [this.registry],
    collect() {
      this.set(process.uptime());
    },
  });

  /** Connections and refusals at the SMTP ingress (not messages, so not tracking events). */
  onIngress(o: IngressObservation): void {
    if (o.type === 'connection') {
      this.connections.inc({ listener: o.listener, sender_group: o.group, action: o.action });
      for (const l of o.listings) this.dnsListings.inc({ list: l.split(' ').slice(0, 2).join(' ') });
    } else if (o.type === 'rcpt.stale')
      this.directoryStale.inc({ listener: o.listener, directory: o.directory, result: o.result });
    else this.rcptRefusals.inc({ listener: o.listener, reason: o.reason });
  }

  onEvent(e: TrackingEvent): void {
    switch (e.type) {
      case 'ingress.accepted':
        this.accepted.inc({ listener: e.listener });
        break;
      case 'verdict':
        this.verdicts.inc({ verdict: e.verdict });
        break;
      case 'delivery.delivered':
        this.recipients.inc({ result: 'delivered' });
        break;
      case 'delivery.deferred':
        this.recipients.inc({ result: 'deferred' });
        break;
      case 'delivery.bounced':
        this.recipients.inc({ result: 'bounced' });
        break;
      case 'antivirus.scanned':
        this.antivirus.inc({ verdict: e.verdict });
        break;
      case 'antispam.scanned':
        this.antispam.inc({ action: e.action });
        break;
      case 'outbreak.scored':
        if (!e.skipped) this.threatLevels.inc({ level: String(e.level) });
        break;
      case 'quarantine.held':
        this.quarantine.inc({ quarantine: e.quarantine, event: 'held' });
        break;
      case 'quarantine.released':
        this.quarantine.inc({ quarantine: e.quarantine, event: 'released' });
        break;
      case 'quarantine.deleted':
        this.quarantine.inc({ quarantine: e.quarantine, event: 'deleted' });
        break;
      case 'click':
        this.clicks.inc({ verdict: e.verdict, action: e.action });
        break;
      default:
        break;
    }
  }
}
