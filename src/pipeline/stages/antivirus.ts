// Anti-virus (DESIGN §5): the whole message through clamd's INSTREAM; when the policy strips infected
// attachments, each attachment is scanned on its own to find which ones. The stage reports; the policy
// layer (policy/antivirus.ts) decides deliver / drop / strip / quarantine.
import type { Config } from '../../config/schema.ts';
import { parseByteSize, parseDuration } from '../../config/schema.ts';
import type { ClamdClient } from '../../antivirus/clamd.ts';
import type { AntivirusResult } from '../../antivirus/types.ts';
import { extractPart } from '../../mime/edit/replace.ts';
import { effectiveAntivirusSettings } from '../../policy/antivirus.ts';
import type { Stage, StageContext } from '../stage.ts';

export interface AntivirusDeps {
  clamd: ClamdClient;
  /** the last signature version read from clamd (null until known) */
  signatureVersion: () => number | null;
}

/** Thrown so the message waits and is scanned again: clamd unreachable or too slow is never "clean". */
export class AntivirusUnavailableError extends Error {}

export function antivirusStage(config: Config, deps: AntivirusDeps): Stage {
  const maxScan = parseByteSize(config.antivirus.maxScanSize);
  return {
    name: 'antivirus',
    description: 'anti-virus: clamd INSTREAM (clean / infected / unscannable)',
    // the whole message, and (strip) each attachment: a few clamd timeouts at most
    timeoutMs: parseDuration(config.antivirus.timeout) * 3 + 5000,
    // clamd down or too slow: the message waits and is scanned again, never delivered unscanned.
    failureMode: 'tempfail',
    settings: {
      clamd: config.antivirus.clamd,
      maxScanSize: maxScan,
      get signatureVersion() {
        return deps.signatureVersion();
      },
    },
    async run(ctx: StageContext) {
      const settings = effectiveAntivirusSettings(config, ctx.direction, ctx.policy);
      if (!settings) return;
      const signatureVersion = deps.signatureVersion();
      if (ctx.size > maxScan) {
        ctx.antivirus = result(
          'unscannable',
          [],
          'size_limit',
          `${ctx.size} bytes > maxScanSize ${maxScan}`,
          signatureVersion,
        );
        return;
      }
      const r = await deps.clamd.scan(ctx.bytes ?? ctx.openMessage(), ctx.size);
      if (r.verdict === 'unscannable' && (r.reason === 'unavailable' || r.reason === 'timeout'))
        throw new AntivirusUnavailableError(`clamd ${r.reason}: ${r.detail}`);
      const av =
        r.verdict === 'clean'
          ? result('clean', [], null, '', signatureVersion)
          : r.verdict === 'infected'
            ? result('infected', r.names, null, r.names.join(', '), signatureVersion)
            : result('unscannable', [], r.reason, r.detail, signatureVersion);
      if (av.verdict === 'infected' && settings.infected.action === 'strip' && ctx.parsed) {
        const bytes = ctx.bytes ?? (await readAll(ctx.openMessage()));
        for (const a of ctx.parsed.attachments) {
          const part = extractPart(bytes, a.partPath);
          if (!part) continue;
          const p = await deps.clamd.scan(part, part.length);
          if (p.verdict === 'infected') av.infectedParts.push({ partPath: a.partPath, name: a.name, names: p.names });
          else if (p.verdict === 'unscannable' && (p.reason === 'unavailable' || p.reason === 'timeout'))
            throw new AntivirusUnavailableError(`clamd ${p.reason}: ${p.detail}`);
        }
      }
      ctx.antivirus = av;
      if (av.verdict !== 'clean')
        ctx.findings.push({
          stage: 'antivirus',
          code: `antivirus.${av.verdict}`,
          severity: av.verdict === 'infected' ? 'threat' : 'suspicious',
          detail: av.detail,
        });
    },
  };
}

function result(
  verdict: AntivirusResult['verdict'],
  names: string[],
  reason: AntivirusResult['reason'],
  detail: string,
  signatureVersion: number | null,
): AntivirusResult {
  return { verdict, names, reason, detail, infectedParts: [], signatureVersion };
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks);
}
