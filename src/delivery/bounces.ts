// Where bounces come from: recipients that bounced (a 5xx downstream, the queue lifetime over, a
// policy's bounce verdict) get one RFC 3464 delivery status notification to the envelope sender,
// written to the spool and delivered like any message of ours. Never for a null sender or a DSN.
import type { SpoolEnvelope } from '../spool/spool.ts';
import type { Spool } from '../spool/spool.ts';
import type { EventBus } from '../tracking/bus.ts';
import { buildDsn, statusFromReply } from './dsn.ts';
import type { RecipientResult } from './queue.ts';
import { readHeaderBlock, type CopyBytes } from '../flow/copies.ts';

export interface BounceDeps {
  hostname: string;
  spool: Pick<Spool, 'append'>;
  events: Pick<EventBus, 'emit'>;
  allocateMid: () => number;
  /** hands the DSN, durable in the spool, to the message flow */
  accept: (m: { file: string; bodyOffset: number; size: number; env: SpoolEnvelope; bytes: Buffer }) => void;
  warn: (line: string) => void;
}

/** The copy a bounce is about: its MID, envelope and bytes (for the original's header block). */
export interface BouncedCopy extends CopyBytes {
  mid: number;
  env: SpoolEnvelope;
}

export class Bounces {
  private readonly deps: BounceDeps;

  constructor(deps: BounceDeps) {
    this.deps = deps;
  }

  async send(copy: BouncedCopy, bounced: RecipientResult[]): Promise<void> {
    const { events } = this.deps;
    const rids = bounced.map((b) => b.rid);
    if (!copy.env.sender || copy.env.generated === 'dsn') {
      // RFC 5321 §6.1 / RFC 3464: never bounce a bounce or a null sender.
      events.emit(copy.mid, {
        type: 'delivery.dsn_suppressed',
        rids,
        reason: copy.env.generated === 'dsn' ? 'message is a DSN' : 'null sender',
      });
      return;
    }
    try {
      const dsn = buildDsn({
        reportingMta: this.deps.hostname,
        originalSender: copy.env.sender,
        originalMid: copy.mid,
        arrivalDate: new Date(copy.env.receivedAt),
        originalHeaders: readHeaderBlock(copy),
        recipients: bounced.map((b) => ({
          address: b.address,
          action: 'failed',
          status: statusFromReply(b.reply, '5.0.0'),
          diagnostic: b.reply,
          remoteMta: b.target.startsWith('file:') || b.target === 'policy' ? null : b.target.split(':')[0],
        })),
      });
      const mid = this.deps.allocateMid();
      const env: SpoolEnvelope = {
        mid,
        icid: 0,
        listener: '(internal)',
        direction: 'outgoing',
        sender: '',
        recipients: [copy.env.sender],
        senderIp: '127.0.0.1',
        rdns: null,
        helo: null,
        tls: null,
        receivedAt: Date.now(),
        generated: 'dsn',
      };
      const loc = await this.deps.spool.append(env, dsn);
      events.emit(copy.mid, { type: 'delivery.dsn', bounceMid: mid, rids });
      this.deps.accept({ ...loc, env, bytes: dsn });
    } catch (err) {
      this.deps.warn(`MID ${copy.mid} could not create DSN: ${(err as Error).message}`);
    }
  }
}
