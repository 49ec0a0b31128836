// Anti-spam through rspamd (docs/antispam.md): the message with its envelope and client metadata to
// rspamd's /checkv2; its action and score become a finding, and the policy layer (policy/antispam.ts)
// decides deliver / tag / quarantine / drop / bounce. rspamd down, slow or answering nonsense is the
// configured failure mode (skip: on without its opinion; tempfail: scanned again later), an alert and
// a `stage.failed` tracking event — never a lost message and never a silent pass.
import type { Config } from '../../config/schema.ts';
import { parseDuration } from '../../config/schema.ts';
import { RspamdError, type RspamdAnswer } from '../../antispam/rspamd.ts';
import type { AntispamService } from '../../antispam/service.ts';
import { effectiveAntispamSettings } from '../../policy/antispam.ts';
import type { Stage, StageContext } from '../stage.ts';
import { countFields } from '../../mime/edit/remove-fields.ts';
import { isSpamVerdictField } from '../../antispam/headers.ts';

export function rspamdStage(config: Config, service: AntispamService): Stage {
  const r = config.antispam.rspamd;
  const timeoutMs = parseDuration(r.timeout);
  return {
    name: 'rspamd',
    description: 'anti-spam: rspamd /checkv2 (action and score → findings)',
    // the client gives up at `timeout`; this is only the pipeline's backstop
    timeoutMs: timeoutMs + 2000,
    failureMode: r.failureMode,
    settings: {
      rspamd: service.client.url,
      timeout: r.timeout,
      maxScanSize: r.maxScanSize,
      get state() {
        return service.status().state;
      },
    },
    async run(ctx: StageContext) {
      if (!effectiveAntispamSettings(config, ctx.direction, ctx.policy)) return;
      if (ctx.size > r.maxScanSize) {
        ctx.antispam = notScanned(`${ctx.size} bytes > maxScanSize ${r.maxScanSize}`);
        return;
      }
      let answer: RspamdAnswer;
      try {
        answer = await service.client.check(ctx.bytes ?? ctx.openMessage(), ctx.size, {
          from: ctx.env.sender,
          rcpts: ctx.recipients,
          ip: ctx.env.senderIp,
          helo: ctx.env.helo,
          hostname: ctx.env.rdns,
          queueId: String(ctx.mid),
          tls: ctx.env.tls,
          mtaName: config.hostname,
        });
      } catch (err) {
        const e = err instanceof RspamdError ? err : new RspamdError('unavailable', (err as Error).message);
        service.failed(e.reason, e.message);
        throw e;
      }
      service.answered();
      // Fields claiming a spam verdict that came with the message are not ours: counted here, removed
      // on delivery (a modified copy, only when there are some)
      answer.incomingSpamFields = countFields(await ctx.head(), isSpamVerdictField);
      ctx.antispam = answer;
      if (answer.class !== 'ham')
        ctx.findings.push({
          stage: 'rspamd',
          code: `antispam.${answer.class}`,
          severity: answer.class === 'reject' ? 'threat' : 'suspicious',
          detail: `rspamd ${answer.action}, score ${answer.score}/${answer.requiredScore}: ${answer.symbols
            .filter((s) => s.score > 0)
            .slice(0, 5)
            .map((s) => s.name)
            .join(', ')}`,
        });
    },
  };
}

function notScanned(note: string): RspamdAnswer {
  return {
    action: 'not scanned',
    class: 'ham',
    score: 0,
    requiredScore: 0,
    symbols: [],
    skipped: true,
    smtpMessage: null,
    note,
  };
}
