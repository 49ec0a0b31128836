// Quarantine capacity (DESIGN §5): one budget, `quarantine.maxSize`, for all quarantines. Past it the
// oldest messages first (first in, first out, across quarantines) take their quarantine's default
// action until the total fits; alerts when usage rises past 5, 50, 75 (warning) and 95 % (critical).
import type { Store } from '../store/db.ts';
import type { EventBus } from '../tracking/bus.ts';
import type { AlertInput } from '../alerts/alerts.ts';
import type { QuarantineIndex, QuarantineSettings } from './quarantine.ts';
import type { QuarantineService } from './service.ts';

/** Usage thresholds (percent of quarantine.maxSize) that raise an alert when crossed upward. */
const CAPACITY_THRESHOLDS = [5, 50, 75, 95];

export interface QuarantineCapacityDeps {
  index: QuarantineIndex;
  settings: QuarantineSettings[];
  /** quarantine.maxSize in bytes */
  maxBytes: number;
  store: Pick<Store, 'committed' | 'getMeta' | 'setMeta'>;
  events: Pick<EventBus, 'emit'>;
  service: Pick<QuarantineService, 'defaultAction' | 'settingsOf'>;
  raiseAlert: (a: AlertInput) => void;
}

export interface QuarantineSummary {
  quarantines: Array<QuarantineSettings & { messages: number; bytes: number }>;
  usage: { messages: number; bytes: number; maxSize: number; percent: number };
}

export class QuarantineCapacity {
  private readonly deps: QuarantineCapacityDeps;
  /** the threshold (percent) usage last rose past; alerts fire only when it rises */
  private level: number;
  private overflowing: Promise<void> | null = null;
  private stopped = false;

  constructor(deps: QuarantineCapacityDeps) {
    this.deps = deps;
    this.level = Number(deps.store.getMeta('quarantine.capacity_level') ?? 0);
  }

  stop(): void {
    this.stopped = true;
  }

  /** What the quarantines hold changed: relieve an overflow (oldest first) and alert on thresholds. */
  changed(): void {
    if (this.deps.index.usage().bytes > this.deps.maxBytes && !this.overflowing) {
      this.overflowing = this.relieveOverflow().finally(() => {
        this.overflowing = null;
        this.alert();
      });
    }
    this.alert();
  }

  private async relieveOverflow(): Promise<void> {
    const { index, maxBytes: max } = this.deps;
    let after: { enteredAt: number; mid: number } | undefined;
    while (index.usage().bytes > max && !this.stopped) {
      const batch = index.oldest(100, after);
      if (!batch.length) break;
      for (const e of batch) {
        after = { enteredAt: e.enteredAt, mid: e.mid };
        if (index.usage().bytes <= max) break;
        const q = this.deps.service.settingsOf(e.quarantine);
        this.deps.events.emit(e.mid, {
          type: 'quarantine.overflow',
          quarantine: e.quarantine,
          action: q?.defaultAction ?? 'release',
          usedBytes: index.usage().bytes,
          maxSize: max,
        });
        this.deps.service.defaultAction(e, 'overflow');
      }
      await this.deps.store.committed();
    }
  }

  /** Raises a capacity alert when usage rises past a threshold; not again while it stays above. */
  private alert(): void {
    const max = this.deps.maxBytes;
    const usage = this.deps.index.usage();
    const percent = max > 0 ? (usage.bytes / max) * 100 : 0;
    const level = CAPACITY_THRESHOLDS.filter((t) => percent >= t).pop() ?? 0;
    if (level === this.level) return;
    const rising = level > this.level;
    this.level = level;
    this.deps.store.setMeta('quarantine.capacity_level', String(level));
    if (!rising) return;
    const severity = level >= 95 ? 'critical' : level >= 75 ? 'warning' : 'info';
    this.deps.raiseAlert({
      class: 'quarantine',
      severity,
      key: `quarantine.capacity:${level}`,
      title: `Quarantines at ${percent.toFixed(0)} % of their capacity`,
      text: `The quarantines hold ${usage.messages} message(s), ${usage.bytes} bytes: ${percent.toFixed(1)} % of quarantine.maxSize (${max} bytes), past the ${level} % threshold. When they are full, the oldest messages take their quarantine's default action (release or delete) first.`,
      data: { percent: Math.round(percent * 10) / 10, threshold: level, usedBytes: usage.bytes, maxSize: max },
    });
  }

  /** Quarantines with their settings and usage; the capacity budget. */
  async summary(): Promise<QuarantineSummary> {
    await this.deps.store.committed();
    const per = this.deps.index.perQuarantine();
    const usage = this.deps.index.usage();
    const max = this.deps.maxBytes;
    return {
      quarantines: this.deps.settings.map((q) => ({ ...q, ...(per.get(q.name) ?? { messages: 0, bytes: 0 }) })),
      usage: { ...usage, maxSize: max, percent: max > 0 ? Math.round((usage.bytes / max) * 1000) / 10 : 100 },
    };
  }
}
