// The anti-virus service: clamd's health and signature version. While clamd does not answer, mail
// waits (never delivered unscanned) and clamd is probed every antivirus.probeInterval; its first answer
// rescans what waited, at once. A new signature version re-evaluates the Outbreak quarantine, where new
// signatures may condemn (or clear) held mail (DESIGN §5).
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { Store } from '../store/db.ts';
import type { AlertInput } from '../alerts/alerts.ts';
import type { ClamdClient } from './clamd.ts';
import { describeTarget, type AntivirusState } from './auto.ts';

export interface AntivirusServiceDeps {
  config: Config;
  clamd: ClamdClient | null;
  /** how `antivirus.clamd` was resolved (on or off, and why) */
  state: AntivirusState;
  store: Pick<Store, 'setMeta'>;
  log: { info(line: string): void; warning(line: string): void };
  raiseAlert: (a: AlertInput) => void;
  /** clamd answers again: scan what waited for it now; returns how many */
  rescanWaiting: () => number;
  /** the signatures changed: re-evaluate held mail with anti-virus */
  signaturesChanged: () => void;
}

export class AntivirusService {
  private readonly deps: AntivirusServiceDeps;
  /** clamd's signature version as last read (null: unknown or no clamd) */
  private version: number | null = null;
  private down = false;
  private pollTimer: NodeJS.Timeout | null = null;
  /** while clamd does not answer: the next probe */
  private probe: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(deps: AntivirusServiceDeps) {
    this.deps = deps;
  }

  get signatureVersion(): number | null {
    return this.version;
  }

  /** "anti-virus: on (clamd at …)" or "anti-virus: off (…)", for the start banner and the mail log */
  get summary(): string {
    return this.deps.state.summary;
  }

  /** Reads the signature version now, then every antivirus.signatureCheckInterval. */
  async start(): Promise<void> {
    if (!this.deps.clamd) return;
    await this.checkSignatures();
    const every = parseDuration(this.deps.config.antivirus.signatureCheckInterval);
    const poll = (): void => {
      void this.checkSignatures().finally(() => {
        if (this.stopped) return;
        this.pollTimer = setTimeout(poll, every);
        this.pollTimer.unref();
      });
    };
    this.pollTimer = setTimeout(poll, every);
    this.pollTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.probe) clearTimeout(this.probe);
    await this.deps.clamd?.close();
  }

  /** clamd failed a scan or a check: mail waits for it (never delivered unscanned); alert once per outage. */
  unavailable(why: string): void {
    if (this.down) return;
    this.down = true;
    this.probeLater();
    this.deps.log.warning(`anti-virus: ${why}; messages wait to be scanned`);
    this.deps.raiseAlert({
      class: 'antivirus',
      severity: 'critical',
      key: 'antivirus.clamd_down',
      title: 'clamd does not answer: mail waits for anti-virus',
      text: `The anti-virus scanner failed (${why}). Messages that need scanning are kept and retried; none is delivered unscanned. They are scanned as soon as clamd answers again.`,
      data: { error: why },
    });
  }

  /** A scan worked: if clamd was taken for down it is back, and what waits for it is rescanned now. */
  answered(): void {
    if (this.down) void this.checkSignatures();
  }

  private probeLater(): void {
    if (this.probe || this.stopped || !this.deps.clamd) return;
    this.probe = setTimeout(() => {
      void this.checkSignatures().finally(() => {
        this.probe = null;
        if (this.down) this.probeLater();
      });
    }, parseDuration(this.deps.config.antivirus.probeInterval));
    this.probe.unref();
  }

  /** Reads clamd's signature version: clamd back after an outage, or new signatures, are acted on. */
  async checkSignatures(): Promise<void> {
    const { clamd, log } = this.deps;
    if (!clamd) return;
    const v = await clamd.version().catch(() => null);
    if (!v) {
      this.unavailable('clamd does not answer');
      return;
    }
    if (this.down) {
      // clamd is back: what waited for it is scanned now, not at its retry time.
      this.down = false;
      const n = this.deps.rescanWaiting();
      log.info(`anti-virus: clamd answers again; ${n} waiting message(s) rescanned`);
      this.deps.raiseAlert({
        class: 'antivirus',
        severity: 'info',
        key: 'antivirus.clamd_up',
        title: 'clamd answers again',
        text: `clamd answers again (${v.raw}); ${n} message(s) that waited for a scan are being scanned now.`,
        data: { waiting: n },
      });
    }
    if (v.signatureVersion === null) return;
    const previous = this.version;
    this.version = v.signatureVersion;
    if (previous === v.signatureVersion) return;
    this.deps.store.setMeta('antivirus.signature_version', String(v.signatureVersion));
    log.info(`anti-virus signatures: ${v.raw}`);
    if (previous === null) return;
    this.deps.signaturesChanged();
    this.deps.raiseAlert({
      class: 'antivirus',
      severity: 'info',
      key: `antivirus.signatures:${v.signatureVersion}`,
      title: `anti-virus signatures updated to version ${v.signatureVersion}`,
      text: `clamd's signatures changed from version ${previous} to ${v.signatureVersion} (${v.raw}). The Outbreak quarantine is being rescanned with them.`,
      data: { previous, version: v.signatureVersion },
    });
  }

  /** For `breakwater status` and the status API. */
  status(): Record<string, unknown> {
    const s = this.deps.state;
    return {
      enabled: s.enabled,
      mode: s.mode,
      clamd: s.clamd ? describeTarget(s.clamd) : null,
      probed: s.probed,
      answering: this.deps.clamd ? !this.down : null,
      signatureVersion: this.version,
      summary: s.summary,
    };
  }
}
