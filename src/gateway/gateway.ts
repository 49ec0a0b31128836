// The gateway is wiring only: it builds each service from the config, connects them through the event
// bus and a few explicit callbacks, starts and stops them, and hands them to the admin API. What each
// service does lives in its own subsystem (docs/ARCHITECTURE.md has the map).
import { HubBlockListSync } from '../xdr/hub-blocklist.ts';
import { HubEvents } from '../xdr/hub-events.ts';
import { liveAnswer } from '../xdr/live-query.ts';
import { HubRulesSync } from '../xdr/hub-rules.ts';
import { fromAddressOf } from '../xdr/observables.ts';
import path from 'node:path';
import type { LoadedConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { parseByteSize, parseDuration } from '../config/schema.ts';
import { Spool } from '../spool/spool.ts';
import { StorageGuard } from '../spool/storage.ts';
import { Store } from '../store/db.ts';
import { EventBus } from '../tracking/bus.ts';
import { MailLog } from '../tracking/maillog.ts';
import { subscribeMailLog } from '../tracking/maillog-lines.ts';
import { startSyslog, type SyslogExporter } from '../tracking/syslog.ts';
import { Tracker } from '../tracking/tracker.ts';
import { Ingress } from '../smtp/ingress.ts';
import type { ReverseResolver } from '../smtp/hat.ts';
import { buildPipeline } from '../pipeline/pipeline.ts';
import { senderAuthResolver } from '../senderauth/resolver.ts';
import { recordedSenderAuth } from '../senderauth/recorded.ts';
import { ParsePool } from '../mime/pool.ts';
import { BundleMessages } from '../outbreak/offload.ts';
import type { Stage } from '../pipeline/stage.ts';
import { DeliveryQueue } from '../delivery/queue.ts';
import { Bounces } from '../delivery/bounces.ts';
import { TlsReports } from '../delivery/tls-reports.ts';
import { DmarcReports } from '../senderauth/dmarc-reports.ts';
import { ensureTls } from '../smtp/tls.ts';
import { Metrics } from '../tracking/metrics.ts';
import { OutbreakEngine } from '../outbreak/engine.ts';
import { RuleUpdater } from '../outbreak/updater.ts';
import { ruleChangeAlerts } from '../outbreak/rule-alerts.ts';
import { HeldReevaluation } from '../outbreak/reevaluation.ts';
import { QuarantineIndex, quarantineSettings } from '../quarantine/quarantine.ts';
import { QuarantineService } from '../quarantine/service.ts';
import { QuarantineCapacity } from '../quarantine/capacity.ts';
import { ClamdClient } from '../antivirus/clamd.ts';
import { antivirusState, clamdTarget, type AntivirusState } from '../antivirus/auto.ts';
import { AntivirusService } from '../antivirus/service.ts';
import { AntispamService } from '../antispam/service.ts';
import { ClickProtection } from '../clicktime/protection.ts';
import { Alerts, type AlertInput } from '../alerts/alerts.ts';
import { SystemHealth } from '../alerts/system-health.ts';
import { Reports } from '../reports/reports.ts';
import { CopyTable, MidAllocator } from '../flow/copies.ts';
import { CopyModifier } from '../flow/modify-copy.ts';
import { MessageFlow } from '../flow/message-flow.ts';
import { recoverSpool } from '../flow/recovery.ts';
import { EventOutbox } from '../tracking/outbox.ts';
import { CloudService } from '../xdr/cloud.ts';
import { HubStream } from '../xdr/stream.ts';
import { HubActions } from '../xdr/hub-actions.ts';
import { UserService } from '../users/service.ts';
import { AuditLog } from '../users/audit.ts';
import { userPolicy } from '../users/policy.ts';
import { EndUserService } from '../enduser/service.ts';
import { EndUserDigests } from '../enduser/digest.ts';
import { Telemetry } from '../xdr/telemetry.ts';
import { readFileSync } from 'node:fs';
import { relayEnabled } from '../config/xdr-schema.ts';
import { Relay, trackerSource } from '../xdr/relay.ts';
import { RemediationService } from '../xdr/remediation/service.ts';
import { remediationResponder } from '../xdr/remediation/responder.ts';
import { DnsClient } from '../dns/resolver.ts';
import { DnsLists } from '../smtp/dnsbl.ts';
import { LdapAcceptQuery } from '../smtp/ldap-accept.ts';

export interface GatewayOptions {
  resolver?: ReverseResolver;
  /** print the admin token on first start (the CLI does; tests do not) */
  announce?: (line: string) => void;
  /** how `antivirus.clamd: auto` was resolved (runGateway probes before building the gateway) */
  antivirus?: AntivirusState;
}

export class Gateway {
  readonly config: Config;
  readonly configFile: string;
  /** the config file's text this gateway runs on (the settings page compares the file with it) */
  readonly configSource: string | undefined;
  readonly dataDir: string;
  readonly store: Store;
  readonly mailLog: MailLog;
  /** every service announces what happens to a message here; tracking, mail log and metrics listen */
  readonly bus = new EventBus();
  readonly tracker: Tracker;
  readonly metrics = new Metrics();
  /** whether the data directory has room for new mail (452 4.3.1 at MAIL FROM when not) */
  readonly storage: StorageGuard;
  readonly spool: Spool;
  readonly delivery: DeliveryQueue;
  /** SMTP TLS Reporting (RFC 8460): the TLS of MX sessions, reported daily to the receiving domains */
  readonly tlsReports: TlsReports;
  /** DMARC aggregate reports (RFC 7489 §7.2): incoming mail counted per policy domain, reported daily */
  readonly dmarcReports: DmarcReports;
  readonly parsePool: ParsePool;
  readonly outbreak: OutbreakEngine;
  readonly rules: RuleUpdater;
  readonly alerts: Alerts;
  readonly antivirus: AntivirusService;
  /** rspamd, when antispam.rspamd.url is set */
  readonly antispam: AntispamService | null;
  readonly stages: Stage[];
  readonly flow: MessageFlow;
  readonly quarantines: QuarantineService;
  readonly capacity: QuarantineCapacity;
  readonly reevaluation: HeldReevaluation;
  readonly clickProtection: ClickProtection;
  readonly reports: Reports;
  /** mailbox remediation of delivered mail (DESIGN §10) */
  readonly remediation: RemediationService;
  readonly system: SystemHealth;
  /** registration with the threat-response hub, streaming to it, telemetry (DESIGN §10) */
  readonly cloud: CloudService;
  readonly hubStream: HubStream;
  readonly hubActions: HubActions;
  /** the hub's block list, applied at MAIL FROM and to the header From */
  readonly hubBlockList: HubBlockListSync;
  /** outbreak rules published by the hub, pushed over the device channel */
  readonly hubRules: HubRulesSync;
  readonly hubEvents: HubEvents;
  /** users of the admin API and web UI, their sessions and API tokens (DESIGN §9) */
  readonly users: UserService;
  readonly audit: AuditLog;
  /** the end-user quarantine: recipients' own held messages, their allow lists, digests */
  readonly endUsers: EndUserService;
  readonly digests: EndUserDigests;
  /** where the admin API and web UI listen (set by run.ts once listening): end-user links' default */
  adminUrl = 'http://127.0.0.1:8025';
  readonly telemetry: Telemetry;
  /** the XDR relay module (null unless `xdr.relay` is configured); its `responder` is pluggable */
  readonly relay: Relay | null;
  readonly listeners: Ingress[] = [];
  /** directory.ldap accept queries by name (recipient validation at RCPT TO) */
  private readonly ldapQueries = new Map<string, LdapAcceptQuery>();
  readonly ports = new Map<string, number>();
  readonly startedAt = Date.now();
  private readonly options: GatewayOptions;
  private readonly copies = new CopyTable();
  private readonly mids = new MidAllocator();
  private nextIcid = 1;
  private syslog: SyslogExporter | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(loaded: LoadedConfig, options: GatewayOptions = {}) {
    const config = (this.config = loaded.config);
    this.configFile = loaded.file;
    this.configSource = loaded.source;
    const dataDir = (this.dataDir = loaded.dataDir);
    this.options = options;
    const log = (this.mailLog = new MailLog(
      path.join(dataDir, 'logs'),
      parseByteSize(config.log.maxSize),
      config.log.keep,
    ));
    const store = (this.store = new Store(path.join(dataDir, 'breakwater.db')));
    const bus = this.bus;
    // Subscribers, in order: the record first (so the outbox has the event), then the mail log, metrics.
    this.tracker = new Tracker(store, bus);
    this.relay = relayEnabled(config.xdr.relay)
      ? new Relay({ source: trackerSource(this.tracker), entityLimit: config.xdr.relay.entityLimit })
      : null;
    subscribeMailLog(bus, log);
    bus.subscribe('metrics', (e) => this.metrics.onEvent(e.event));
    bus.onSubscriberError = (name, err) => log.warning(`event subscriber ${name} failed: ${err.message}`);
    const raiseAlert = (a: AlertInput): void => {
      this.alerts.raise(a).catch((err: Error) => log.warning(`alert ${a.key} could not be raised: ${err.message}`));
    };

    this.system = new SystemHealth({
      dataDir,
      minFreeBytes: parseByteSize(config.spool.minFree),
      raiseAlert,
      log,
      queued: () => this.copies.size,
    });
    this.storage = new StorageGuard({
      dir: dataDir,
      minFreeBytes: parseByteSize(config.spool.minFree),
      onChange: (s) => this.system.storageChanged(s),
    });
    // Every write path reports a full or failing disk here instead of taking the process down.
    log.onWriteError = (err) => this.storage.reportFailure('mail log', err);
    store.onStorageError = (err) => this.storage.reportFailure('database', err);
    this.spool = new Spool(path.join(dataDir, 'spool'), config.spool.fsync);
    this.users = new UserService(store, userPolicy(config.admin));
    this.audit = new AuditLog(store);
    this.parsePool = new ParsePool(config.workers);
    this.delivery = new DeliveryQueue(config, dataDir, bus, (line) => log.info(line), {
      onFinal: (job, results) => this.flow.onDeliveryFinal(job.mid, results),
      onDeferred: (job) => this.flow.onDeferred(job.mid),
      onTlsSession: (s) => this.tlsReports.record(s),
    });
    this.tlsReports = new TlsReports({
      config,
      dataDir,
      store,
      dns: DnsClient.fromConfig(config.dns).resolver,
      spool: this.spool,
      allocateMid: () => this.mids.next(),
      accept: (m) => this.flow.accept(m),
      log: (l) => log.info(l),
    });
    const authDns = config.senderAuth.dns;
    this.dmarcReports = new DmarcReports({
      config,
      store,
      // the servers that found the DMARC records answer the report authorization lookups (§7.1)
      dns: new DnsClient({
        servers: authDns.servers.length ? authDns.servers : config.dns.servers,
        timeoutMs: parseDuration(authDns.timeout) * authDns.tries,
        tries: authDns.tries,
      }),
      spool: this.spool,
      allocateMid: () => this.mids.next(),
      accept: (m) => this.flow.accept(m),
      log: (l) => log.info(l),
    });
    bus.subscribe('dmarc reports', (e) => this.dmarcReports.onEvent(e));
    this.alerts = new Alerts({
      recipients: config.alerts.recipients,
      from: config.alerts.from ?? `breakwater@${config.hostname}`,
      hostname: config.hostname,
      webhooks: config.alerts.webhooks,
      minSeverity: config.alerts.minSeverity,
      suppressFor: parseDuration(config.alerts.suppressFor),
      sendMail: async (sender, recipients, message) => {
        await this.flow.inject(sender, recipients, message, 'alert');
      },
      store,
    });
    this.outbreak = new OutbreakEngine(config.outbreakFilters.adaptiveRules);
    const outbreakAlert = (a: AlertInput): void => {
      if (config.outbreakFilters.alerts) raiseAlert(a);
    };
    this.rules = new RuleUpdater({
      config,
      configDir: path.dirname(this.configFile),
      dataDir,
      store,
      engine: this.outbreak,
      onChange: (c) => {
        for (const a of ruleChangeAlerts(config, c)) outbreakAlert(a);
        void this.reevaluation.run();
      },
      onFailure: (e) =>
        outbreakAlert({
          class: 'outbreak',
          severity: 'warning',
          key: `outbreak.feed_failed:${e.code}`,
          title: `rule update failed: ${e.code}`,
          text: `The outbreak rule feed could not be updated (${e.code}: ${e.message}). The previous rules stay active.`,
          data: { code: e.code },
        }),
      log: (l) => log.info(l),
      // rules the hub publishes, when no feed of its own is configured (xdr/hub-rules.ts)
      hubSource: () => {
        const key = this.cloud.rulesPublicKey();
        return key && this.hubRules.applies ? { publicKey: key, fetch: () => this.hubRules.fetchBundle() } : null;
      },
    });

    const av = config.antivirus;
    const target = clamdTarget(config);
    const clamd = target
      ? new ClamdClient({
          target,
          timeoutMs: parseDuration(av.timeout),
          maxStreamBytes: parseByteSize(av.maxScanSize),
          maxConnections: av.maxConnections,
        })
      : null;
    this.antivirus = new AntivirusService({
      config,
      clamd,
      state: options.antivirus ?? antivirusState(config),
      store,
      log,
      raiseAlert,
      rescanWaiting: () => this.flow.rescanNow(),
      signaturesChanged: () => void this.reevaluation.run(true),
    });
    this.antispam = AntispamService.create({ config, raiseAlert, log, rescanWaiting: () => this.flow.rescanNow() });
    this.stages = buildPipeline(config, {
      parsePool: this.parsePool,
      outbreak: this.outbreak,
      antivirus: clamd ? { clamd, signatureVersion: () => this.antivirus.signatureVersion } : undefined,
      antispam: this.antispam,
      senderAuth: config.senderAuth.enabled
        ? { resolver: senderAuthResolver(config), recorded: (mid) => recordedSenderAuth(this.store, mid) }
        : undefined,
    });

    this.clickProtection = new ClickProtection({ config, dataDir, engine: this.outbreak, events: bus, log });
    const ruleMessages = new BundleMessages(this.outbreak);
    this.flow = new MessageFlow({
      config,
      spool: this.spool,
      store,
      events: bus,
      log,
      stages: this.stages,
      delivery: this.delivery,
      copies: this.copies,
      mids: this.mids,
      modifier: new CopyModifier({
        spool: this.spool,
        store,
        events: bus,
        copies: this.copies,
        clickTime: () => this.clickProtection.service,
        urlThreatNow: (url) => this.clickProtection.urlThreatNow(url),
        pool: this.parsePool,
        urlRules: () => {
          const rules = ruleMessages.current();
          return { request: { generation: rules?.generation ?? null, adaptive: this.outbreak.adaptive }, rules };
        },
      }),
      bounces: new Bounces({
        hostname: config.hostname,
        spool: this.spool,
        events: bus,
        allocateMid: () => this.mids.next(),
        accept: (m) => this.flow.accept(m),
        warn: (l) => log.warning(l),
      }),
      hold: (copy, verdict, a, subject) => this.quarantines.hold(copy, verdict, a, subject),
      antivirus: {
        failed: (why) => this.antivirus.unavailable(why),
        answered: () => this.antivirus.answered(),
      },
      storageFailure: (what, err) => this.storage.reportFailure(what, err),
      observePipelineSeconds: (s) => this.metrics.pipelineSeconds.observe(s),
      allowListed: (sender, recipients) => this.endUsers.allowListed(sender, recipients),
      blockedFrom: (from, direction) => {
        const address = fromAddressOf(from);
        return address ? this.hubBlockList.blocked(address, direction) : null;
      },
    });

    const index = new QuarantineIndex(store);
    const settings = quarantineSettings(config);
    this.quarantines = new QuarantineService({
      config,
      index,
      settings,
      store,
      spool: this.spool,
      events: bus,
      flow: {
        isActive: (mid) => this.copies.has(mid),
        resume: (h, r) => this.flow.resume(h, r),
        handedOver: (copy) => this.flow.handedOver(copy),
        inject: (sender, recipients, message, kind) => this.flow.inject(sender, recipients, message, kind),
        reinjectReleased: (env, recipients, message, from) =>
          this.flow.reinjectReleased(env, recipients, message, from),
      },
      ruleDescriptions: () => new Map(this.rules.activeRules().map((r) => [r.id, r.description])),
      onUsageChanged: () => this.capacity.changed(),
    });
    this.endUsers = new EndUserService({ config, dataDir, store, index, quarantines: this.quarantines });
    this.digests = new EndUserDigests({
      config,
      endUsers: this.endUsers,
      inject: (from, to, message) => this.flow.inject(from, to, message, 'digest'),
      baseUrl: () => config.endUserQuarantine.url ?? this.adminUrl,
      meta: { get: (k) => store.getMeta(k), set: (k, v) => store.setMeta(k, v) },
      log: (l) => log.info(l),
    });
    this.capacity = new QuarantineCapacity({
      index,
      settings,
      maxBytes: parseByteSize(config.quarantine.maxSize),
      store,
      events: bus,
      service: this.quarantines,
      raiseAlert,
    });
    this.reevaluation = new HeldReevaluation({
      config,
      store,
      events: bus,
      parsePool: this.parsePool,
      engine: this.outbreak,
      quarantines: this.quarantines,
      clamd,
      avSignatureVersion: () => this.antivirus.signatureVersion,
      log,
    });
    this.reports = new Reports(store, () => index.usage());

    this.cloud = new CloudService({ config, dataDir, store, version: gatewayVersion(), log });
    this.hubStream = new HubStream({
      config,
      cloud: this.cloud,
      outbox: new EventOutbox(store, 'hub'),
      tracker: this.tracker,
      bus,
      raiseAlert,
      log,
    });
    this.hubBlockList = new HubBlockListSync({ cloud: this.cloud, store, log });
    this.hubRules = new HubRulesSync({
      config,
      cloud: this.cloud,
      installed: () => this.outbreak.bundle?.version ?? 0,
      update: () => this.rules.update(),
      log,
    });
    this.cloud.onChange = () => {
      this.hubStream.poke();
      this.hubEvents.poke();
      this.hubActions.poke();
      this.hubRules.poke();
      void this.hubBlockList.fetch();
    };
    this.telemetry = new Telemetry(config, this.cloud, () => !!clamd);
    this.remediation = new RemediationService({
      config,
      tracker: this.tracker,
      events: bus,
      inject: (sender, recipients, message) => this.flow.inject(sender, recipients, message, 'remediation'),
    });
    // An XDR's response actions on messages are mailbox remediation, whether they come through this
    // gateway's relay or from the hub.
    const responder = remediationResponder(this.remediation);
    if (this.relay) this.relay.responder = responder;
    this.hubActions = new HubActions({ config, cloud: this.cloud, responder: () => responder, log });
    // The hub's pushed events: fetch what they announce; the pollers only reconcile while the stream is up.
    const source = trackerSource(this.tracker);
    this.hubEvents = new HubEvents({
      config,
      cloud: this.cloud,
      log,
      handlers: {
        rules: (version) => this.hubRules.announce(version),
        actions: () => this.hubActions.nudge(),
        blocklist: () => void this.hubBlockList.fetch(),
        query: (observables, limit) => liveAnswer(source, observables, limit),
        connectedChanged: () => {
          this.hubActions.nudge();
          this.hubRules.nudge();
        },
      },
    });
    this.hubActions.pushed = this.hubRules.pushed = () => this.hubEvents.connected;
  }

  async start(): Promise<void> {
    const { config, store, mailLog: log } = this;
    if (config.log.syslog) this.syslog = await startSyslog(config.log.syslog, config.hostname, this.mailLog);
    await this.storage.start();
    await this.spool.init();
    const maxDbMid = (store.db.prepare('select max(mid) m from messages').get() as { m: number | null }).m ?? 0;
    this.mids.atLeast(maxDbMid + 1); // recovery raises it past every MID in the spool
    this.nextIcid = Number(store.getMeta('icid_hwm') ?? 0) + 1;
    store.setMeta('icid_hwm', String(this.nextIcid + 1000));
    const tls = await ensureTls(this.dataDir, config.hostname, config.listeners, (l) => log.warning(l));
    this.rules.loadPersisted();
    recoverSpool({
      spool: this.spool,
      store,
      index: this.quarantines.index,
      flow: this.flow,
      tracker: this.tracker,
      mids: this.mids,
      log,
    });
    // A smaller maxSize than the quarantines hold (changed config): the oldest leave first, now.
    this.capacity.changed();
    if (config.clickTime.enabled) this.ports.set('clickTime', await this.clickProtection.start());
    // Who may send, to whom: DNS lists for the HAT and the directory queries for RCPT TO, shared by listeners.
    const dnsClient = DnsClient.fromConfig(config.dns);
    const dnsLists = new DnsLists(dnsClient, parseDuration(config.dns.listCacheTtl));
    for (const q of config.directory.ldap)
      this.ldapQueries.set(q.name, new LdapAcceptQuery(q, { dataDir: this.dataDir, warn: (l) => log.warning(l) }));
    for (const l of config.listeners) {
      const ingress = new Ingress(l, {
        hostname: config.hostname,
        spool: this.spool,
        allocateMid: () => this.mids.next(),
        allocateIcid: () => this.allocateIcid(),
        onAccepted: (m) => this.flow.accept(m),
        log: (line) => log.info(line),
        tls: tls.get(l.name) ?? null,
        resolver:
          this.options.resolver ?? (config.dns.servers.length ? (ip: string) => dnsClient.reverse(ip) : undefined),
        dnsLists,
        ldapQueries: this.ldapQueries,
        observe: (o) => this.metrics.onIngress(o),
        storage: this.storage,
        blockedSender: (address, direction) => this.hubBlockList.blocked(address, direction),
        smtp: {
          allowNul: config.smtp.allowNul,
          dataTimeoutMs: parseDuration(config.smtp.dataTimeout),
          dataMinRate: config.smtp.dataMinRate,
          dataRateGraceMs: parseDuration(config.smtp.dataRateGrace),
          postmaster: config.smtp.postmaster ?? config.alerts.recipients[0] ?? null,
        },
      });
      const port = await ingress.listen();
      this.ports.set(l.name, port);
      this.listeners.push(ingress);
      log.info(`listener ${l.name} (${l.direction}) on ${l.host}:${port}`);
    }
    this.rules.start();
    this.hubStream.start();
    this.hubActions.start();
    this.hubBlockList.start();
    this.hubRules.start();
    this.hubEvents.start();
    this.digests.start();
    this.tlsReports.start();
    this.dmarcReports.start();
    if (config.cloud.telemetry) this.telemetry.start();
    log.info(this.antivirus.summary);
    await this.antivirus.start();
    // Scheduled exits from the quarantines and the system checks share one timer.
    const every = parseDuration(config.outbreakFilters.reevaluateInterval);
    const tick = (): void => {
      void Promise.all([this.quarantines.applyScheduledExits(), this.system.check()]).finally(() => {
        if (this.stopped) return;
        this.tickTimer = setTimeout(tick, every);
        this.tickTimer.unref();
      });
    };
    this.tickTimer = setTimeout(tick, every);
    this.tickTimer.unref();
  }

  private allocateIcid(): number {
    const icid = this.nextIcid++;
    // ICIDs stay increasing across restarts: persist a high-water mark every 1000 sessions.
    if (icid % 1000 === 0) this.store.setMeta('icid_hwm', String(icid + 1000));
    return icid;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.storage.stop();
    await this.tlsReports.stop();
    await this.dmarcReports.stop();
    this.rules.stop();
    this.flow.stop();
    this.quarantines.stop();
    this.capacity.stop();
    this.reevaluation.stop();
    this.telemetry.stop();
    this.digests.stop();
    await this.hubStream.stop();
    await this.hubActions.stop();
    this.hubBlockList.stop();
    await this.hubRules.stop();
    await this.hubEvents.stop();
    this.remediation.stop();
    await this.antivirus.stop();
    this.antispam?.stop();
    await this.clickProtection.stop();
    await Promise.all(this.listeners.map((l) => l.close()));
    await Promise.all([...this.ldapQueries.values()].map((q) => q.close()));
    await this.alerts.close();
    await this.delivery.stop();
    await this.parsePool.close();
    await this.store.close();
    this.spool.close();
    await this.mailLog.close();
    await this.syslog?.close();
  }

  /** `breakwater status` and `GET /api/v1/status`. */
  async status(): Promise<Record<string, unknown>> {
    return {
      hostname: this.config.hostname,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      listeners: this.config.listeners.map((l) => ({
        name: l.name,
        direction: l.direction,
        address: `${l.host}:${this.ports.get(l.name) ?? l.port}`,
      })),
      queue: { active: this.copies.size, deferred: this.delivery.deferred().length },
      antivirus: this.antivirus.status(),
      storage: { ...this.storage.snapshot(), databaseRetries: this.store.storageRetries },
      mailLog: { ...this.mailLog.health },
      ...(this.syslog ? { syslog: this.syslog.health() } : {}),
      events: { subscribers: this.bus.health() },
      cloud: {
        ...this.cloud.state(),
        enabled: this.cloud.enabled,
        stream: this.hubStream.health(),
        actions: this.hubActions.health(),
        blockList: this.hubBlockList.health(),
        rules: this.hubRules.health(),
        events: this.hubEvents.health(),
      },
      nextMid: this.mids.peek(),
      dataDir: this.dataDir,
      memory: {
        ...process.memoryUsage(),
        heldMessageBytes: this.copies.heldBytes,
        parseWorkers: await this.parsePool.heapStats(),
        storeWriter: await this.store.writerHeap(),
      },
    };
  }
}

/** The package version (the hub shows it per device). */
function gatewayVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
      .version;
  } catch {
    return '0.0.0';
  }
}
