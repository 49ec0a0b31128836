// The pipeline is data: this file lists, in order, every stage a message goes through after the
// policy split (DESIGN §3.5). Reading it tells the whole story; `breakwater pipeline show` prints it.
import type { Config } from '../config/schema.ts';
import type { Stage, StageContext } from './stage.ts';
import { parseStage } from './stages/parse.ts';
import { outbreakStage } from './stages/outbreak.ts';
import type { ParsePool } from '../mime/pool.ts';
import type { OutbreakEngine } from '../outbreak/engine.ts';
import { antivirusStage, type AntivirusDeps } from './stages/antivirus.ts';
import { rspamdStage } from './stages/rspamd.ts';
import type { AntispamService } from '../antispam/service.ts';
import { senderAuthStage, type SenderAuthDeps } from './stages/sender-auth.ts';

/** Shared resources stages use (thread pools, rule engines; later: clamd connections). */
export interface PipelineDeps {
  parsePool: ParsePool;
  outbreak: OutbreakEngine;
  /** present when clamd is configured */
  antivirus?: AntivirusDeps;
  /** present when antispam.rspamd.url is set */
  antispam?: AntispamService | null;
  /** the resolver sender authentication asks (present unless senderAuth is off) */
  senderAuth?: SenderAuthDeps;
}

export function buildPipeline(config: Config, deps: PipelineDeps): Stage[] {
  return [
    // The parse worker also scores the message with the outbreak rules; the outbreak stage applies that.
    parseStage(deps.parsePool, { config, engine: deps.outbreak, antivirus: deps.antivirus }),
    // Cisco's order: sender authentication (SPF/DKIM/DMARC/ARC) before anti-virus, content filters after it.
    ...(deps.senderAuth && config.senderAuth.enabled ? [senderAuthStage(config, deps.senderAuth)] : []),
    ...(deps.antivirus ? [antivirusStage(config, deps.antivirus)] : []),
    // rspamd, when the site runs one (docs/antispam.md): its action and score for the policy layer.
    ...(deps.antispam ? [rspamdStage(config, deps.antispam)] : []),
    outbreakStage(config, deps.outbreak),
  ];
}

export interface StageFailure {
  stage: string;
  failureMode: Stage['failureMode'];
  error: string;
}

export interface PipelineResult {
  /** the first stage failure whose mode stops the message (tempfail / quarantine) */
  stoppedBy: StageFailure | null;
  failures: StageFailure[];
}

class StageTimeoutError extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number, stage: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new StageTimeoutError(`stage ${stage} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function runPipeline(stages: Stage[], ctx: StageContext): Promise<PipelineResult> {
  const failures: StageFailure[] = [];
  for (const stage of stages) {
    try {
      await withTimeout(stage.run(ctx), stage.timeoutMs, stage.name);
    } catch (err) {
      const f = { stage: stage.name, failureMode: stage.failureMode, error: (err as Error).message };
      failures.push(f);
      ctx.findings.push({ stage: stage.name, code: 'stage.failed', severity: 'suspicious', detail: f.error });
      if (stage.failureMode !== 'skip') return { stoppedBy: f, failures };
    }
  }
  return { stoppedBy: null, failures };
}

/** The text `breakwater pipeline show` prints. */
export function describePipeline(stages: Stage[]): string {
  const lines = ['policy split (recipients → mail policies, one copy per policy)'];
  stages.forEach((s, i) => {
    lines.push(`${i + 1}. ${s.name} — ${s.description}`);
    lines.push(`     timeout ${s.timeoutMs} ms, on failure: ${s.failureMode}`);
    for (const [k, v] of Object.entries(s.settings)) lines.push(`     ${k}: ${JSON.stringify(v)}`);
  });
  lines.push('verdict (policy layer: findings → deliver / quarantine / drop / bounce / tempfail)');
  lines.push("  limits reached (nesting, archives, encryption, parse timeout): the policy's unscannable action");
  lines.push(
    'message modification (outbreak threats: subject tag, headers, disclaimer, links to the click-time service)',
  );
  lines.push('quarantine (outbreak: held until released, deleted, re-evaluated with new rules, or its scheduled exit)');
  lines.push('delivery queue (routes, retries, bounces)');
  return lines.join('\n');
}
