// Prometheus metrics (DESIGN §8), fed from the tracking event catalogue.
import { Registry, Counter, Histogram, Gauge, collectDefaultMetrics } from 'prom-client';
import type { TrackingEvent } from '../tracking/events.ts';

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

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'breakwater_process_' });
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
      default:
        break;
    }
  }
}
