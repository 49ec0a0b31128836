// The relay's response actions carried out by mailbox remediation: `delete`, `forward` and
// `forward-and-delete` on a message named by its MID (`cisco_mid`) or Message-ID (`email_messageid`).
// Block-sender and block-domain need block lists, which do not exist yet: refused, saying so.
import type { RelayResponder } from '../relay.ts';
import type { RemediationService } from './service.ts';
import type { RemediationAction } from './types.ts';

const ACTIONS: readonly string[] = ['delete', 'forward', 'forward-and-delete'];

export function remediationResponder(service: Pick<RemediationService, 'run'>): RelayResponder {
  return {
    async trigger(actionId, observable, by) {
      if (!ACTIONS.includes(actionId))
        return { ok: false, detail: `action ${actionId} is not carried out by this gateway (no block lists yet)` };
      const target =
        observable.type === 'cisco_mid' && /^\d+$/.test(observable.value)
          ? { mids: [Number(observable.value)] }
          : observable.type === 'email_messageid'
            ? { messageIds: [observable.value] }
            : null;
      if (!target) return { ok: false, detail: `${actionId} needs a cisco_mid or email_messageid observable` };
      try {
        // `by` already says where the request came from (xdr:<caller>, hub:xdr:<caller>)
        const r = await service.run({ action: actionId as RemediationAction, ...target, by });
        // Success when every mailbox that had the message was remediated.
        const why = r.failures.map((f) => `${f.recipient ?? `MID ${f.mid ?? '-'}`}: ${f.reason}`).join('; ');
        return {
          ok: r.failed === 0 && r.total > 0,
          detail: `${actionId}: ${r.total - r.failed} of ${r.total} mailbox(es) done${why ? `; failed: ${why}` : ''}`,
        };
      } catch (err) {
        return { ok: false, detail: (err as Error).message };
      }
    },
  };
}
