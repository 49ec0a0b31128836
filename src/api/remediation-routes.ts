// Admin API route for mailbox remediation (DESIGN §10): delete, forward or forward-and-delete delivered
// messages in the recipients' mailboxes. It calls RemediationService.run; the CLI calls this route.
import type { Gateway } from '../gateway/gateway.ts';
import { RemediationRequestError } from '../xdr/remediation/service.ts';
import { ApiError } from './errors.ts';
import { responses } from './schemas/common.ts';
import { remediationBody, remediationResult } from './schemas/remediation.ts';
import { answer, type Api } from './validation.ts';

export function registerRemediationRoutes(api: Api, gw: Gateway): void {
  api.post(
    '/remediation',
    {
      schema: {
        operationId: 'remediateMessages',
        tags: ['Remediation'],
        summary: 'Delete and/or forward delivered messages in the recipients’ mailboxes',
        description:
          'Finds where each message was delivered (tracking), then acts in each mailbox through the profile its domain maps to (`remediation.mappings`), with retries and chained profiles. Answers when every mailbox is done; a message that cannot be remediated is counted in `failed` with its reason, never an error.',
        body: remediationBody,
        response: responses({
          ok: remediationResult,
          body: true,
          400: [
            'invalid_body',
            'invalid_parameter',
            'unknown_parameter',
            'too_many_mids',
            'message_required',
            'forward_address_required',
          ],
        }),
      },
    },
    async (req) => {
      const b = req.body;
      try {
        const result = await gw.remediation.run({
          action: b.action,
          mids: b.mids,
          messageIds: b.messageIds,
          forwardTo: b.forwardTo,
          by: b.by ?? null,
        });
        return answer(remediationResult, result);
      } catch (err) {
        if (err instanceof RemediationRequestError) throw new ApiError(400, err.code, err.message);
        throw err;
      }
    },
  );
}
