// Why a held message is released early (DESIGN §4.5): whenever the outbreak rules change, every message
// in the Outbreak quarantine is scored again; one whose level fell below its policy's quarantine
// threshold leaves at once (and is rescanned on its way out). When clamd's signatures change, each is
// also scanned by anti-virus: one that is now infected leaves the Outbreak quarantine into the
// pipeline, where the anti-virus policy takes it. The adaptive rules on sender authentication weigh
// the results the message had when it was scanned (its recorded `auth.checked` event): checking DNS again
// days later would judge it by records that may have changed since (rotated or retired DKIM keys).
import { createReadStream } from 'node:fs';
import type { Config } from '../config/schema.ts';
import type { Store } from '../store/db.ts';
import type { EventBus } from '../tracking/bus.ts';
import type { ParsePool } from '../mime/pool.ts';
import { defaultParseLimits } from '../mime/types.ts';
import { effectiveOutbreakSettings } from '../policy/outbreak.ts';
import type { ClamdClient } from '../antivirus/clamd.ts';
import type { QuarantineService } from '../quarantine/service.ts';
import { withAuthHits, type OutbreakAssessment, type OutbreakEngine } from './engine.ts';
import { recordedSenderAuth } from '../senderauth/recorded.ts';
import { scoreEvent } from '../pipeline/scan-events.ts';

export interface ReevaluationDeps {
  config: Config;
  store: Pick<Store, 'committed' | 'stmt'>;
  events: Pick<EventBus, 'emit'>;
  parsePool: Pick<ParsePool, 'parse'>;
  engine: Pick<OutbreakEngine, 'score' | 'adaptive'>;
  quarantines: Pick<QuarantineService, 'index' | 'isSettled' | 'release'>;
  clamd: Pick<ClamdClient, 'scan'> | null;
  avSignatureVersion: () => number | null;
  log: { info(line: string): void; warning(line: string): void };
}

export class HeldReevaluation {
  private readonly deps: ReevaluationDeps;
  /** a re-evaluation is running or queued */
  private running: Promise<void> | null = null;
  private again = false;
  private withAntivirus = false;
  private stopped = false;

  constructor(deps: ReevaluationDeps) {
    this.deps = deps;
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * Scores every message in the Outbreak quarantine again; those now below threshold leave at once.
   * With `antivirus` (clamd's signatures changed) each is also scanned. Calls during a run queue one
   * more run, so the last change is always seen.
   */
  run(antivirus = false): Promise<void> {
    this.withAntivirus ||= antivirus;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        const av = this.withAntivirus;
        this.withAntivirus = false;
        await this.once(av);
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async once(antivirus: boolean): Promise<void> {
    const { config, quarantines, events, log } = this.deps;
    await this.deps.store.committed();
    let released = 0;
    for (const e of quarantines.index.each({ quarantine: 'outbreak' })) {
      if (this.stopped) return;
      const settings = effectiveOutbreakSettings(config, e.copy.env.direction, e.policy);
      let a: OutbreakAssessment;
      try {
        const parsed = await this.deps.parsePool.parse(
          { file: e.file, start: e.bodyOffset, size: e.size },
          defaultParseLimits,
        );
        a = withAuthHits(
          this.deps.engine.score(
            { parsed, sender: e.copy.env.sender.toLowerCase(), avSignatureVersion: this.deps.avSignatureVersion() },
            settings?.bypassExtensions ?? [],
          ),
          this.deps.engine.adaptive,
          recordedSenderAuth(this.deps.store, e.mid),
          parsed.from,
        );
        if (antivirus && this.deps.clamd) {
          const r = await this.deps.clamd.scan(
            createReadStream(e.file, { start: e.bodyOffset, end: e.bodyOffset + e.size - 1 }),
            e.size,
          );
          if (r.verdict === 'infected') {
            const out = quarantines.release(e, {
              reason: `new anti-virus signatures: ${r.names.join(', ')}`,
              by: null,
              tag: null,
              note: 'released from Outbreak for anti-virus after a signature update',
            });
            if (out) released++;
            continue;
          }
        }
      } catch (err) {
        log.warning(`MID ${e.mid} re-evaluation failed: ${(err as Error).message}; it stays held`);
        continue;
      }
      // Released or deleted meanwhile (an administrator, a scheduled exit)?
      if (!quarantines.isSettled(e.mid, 'outbreak')) continue;
      // Still held only while it still meets its policy's quarantine threshold.
      if (!settings || a.level < settings.quarantineThreshold) {
        events.emit(e.mid, scoreEvent(a, true));
        const out = quarantines.release(e, {
          reason: `re-evaluated with rules version ${a.ruleVersion ?? '-'}: level ${a.level}`,
          by: null,
          tag: null,
          note: `released from Outbreak early: rules version ${a.ruleVersion ?? '-'} puts it at level ${a.level}`,
        });
        if (out) released++;
      } else if (a.level !== e.level || a.hits.map((h) => h.id).join(' ') !== e.ruleIds.join(' ')) {
        const ids = a.hits.filter((h) => h.level > 0).map((h) => h.id);
        quarantines.index.rescored(e.mid, 'outbreak', a.level, ids);
        events.emit(e.mid, scoreEvent(a, true));
        events.emit(e.mid, {
          type: 'quarantine.rescored',
          quarantine: 'outbreak',
          level: a.level,
          ruleIds: ids,
          ruleVersion: a.ruleVersion,
        });
      }
    }
    if (released) log.info(`Outbreak quarantine re-evaluated: ${released} message(s) released early`);
  }
}
