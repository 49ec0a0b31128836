// `/respond/trigger` on the hub: the message is found in the summaries the gateways streamed, and the
// action goes to every gateway that holds it (hub/actions.ts: the gateway takes it on its next poll and
// remediates through its own mailbox profiles). The answer waits for the gateways' results, up to
// `relay.actionTimeout`; an action a gateway has not answered by then keeps running there, and the
// answer says so (the action list on the hub shows how it ended). Block actions become entries of the
// hub's block list (hub/blocklist.ts), pending approval when the hub requires it.
import type { RelayResponder } from '../xdr/relay.ts';
import type { DeviceActions, DeviceAction } from './actions.ts';
import type { HubStore } from './store.ts';
import { normalizeObservable } from './observables.ts';
import type { HubBlockList } from './blocklist.ts';

const ACTIONS: readonly string[] = ['delete', 'forward', 'forward-and-delete'];
/** gateways one action may go to at most (a Message-ID shared by more is not one message) */
const MAX_GATEWAYS = 50;

export function hubResponder(
  store: HubStore,
  actions: DeviceActions,
  timeoutMs: number,
  deviceName: (id: string) => string,
  blockList: HubBlockList,
  /** remediation waits for a second user's approval (hub approvals.remediate) */
  needsApproval: () => boolean = () => false,
): RelayResponder {
  return {
    async trigger(actionId, observable, by) {
      // block-sender / block-domain: an entry of the hub's block list, on every gateway (incoming mail)
      if (actionId === 'block-sender' || actionId === 'block-domain')
        try {
          const e = blockList.request(
            {
              kind: actionId === 'block-sender' ? 'sender' : 'domain',
              value: observable.value,
              direction: 'incoming',
              reason: `requested through the XDR relay by ${by}`,
              expiresAt: null,
            },
            `xdr:${by}`,
          );
          return {
            ok: true,
            detail:
              e.status === 'pending'
                ? `block list entry ${e.id} waits for a hub user's approval`
                : `blocked on every gateway (block list entry ${e.id})`,
          };
        } catch (err) {
          return { ok: false, detail: (err as Error).message };
        }
      if (!ACTIONS.includes(actionId))
        return { ok: false, detail: `action ${actionId} is not carried out through the hub` };
      if (observable.type !== 'cisco_mid' && observable.type !== 'email_messageid')
        return { ok: false, detail: `${actionId} needs a cisco_mid or email_messageid observable` };
      const value = normalizeObservable(observable.type, observable.value);
      const devices = [...new Set(store.search(observable.type, value, 1000).map((h) => h.deviceId))];
      if (!devices.length)
        return {
          ok: false,
          detail: `no gateway registered with this hub has seen ${observable.type} ${observable.value}`,
        };
      // MIDs are numbered per gateway: the same MID on two gateways is two different messages.
      if (observable.type === 'cisco_mid' && devices.length > 1)
        return {
          ok: false,
          detail: `MID ${observable.value} exists on ${devices.length} gateways (${devices.map(deviceName).join(', ')}): name the message by its email_messageid`,
        };
      if (devices.length > MAX_GATEWAYS)
        return {
          ok: false,
          detail: `${devices.length} gateways hold this message; at most ${MAX_GATEWAYS} are asked at once`,
        };
      const awaitingApproval = needsApproval();
      const queued = devices.map((d) =>
        actions.queue(d, actionId, { type: observable.type, value: observable.value }, by, { awaitingApproval }),
      );
      if (awaitingApproval)
        return {
          ok: true,
          detail: `waits for a hub user's approval: ${queued.map((a) => `${deviceName(a.deviceId)} (action ${a.id})`).join(', ')}`,
        };
      const results = await actions.settle(
        queued.map((a) => a.id),
        timeoutMs,
      );
      return { ok: results.every((a) => a.status === 'done'), detail: describe(results, deviceName) };
    },
  };
}

function describe(results: DeviceAction[], deviceName: (id: string) => string): string {
  return results
    .map((a) => {
      const who = deviceName(a.deviceId);
      if (a.status === 'done' || a.status === 'failed') return `${who}: ${a.detail ?? a.status}`;
      if (a.status === 'expired') return `${who}: expired (${a.detail ?? 'not taken'})`;
      return `${who}: not answered yet (action ${a.id} is ${a.status === 'pending' ? 'waiting for the gateway to poll' : 'running on the gateway'})`;
    })
    .join('; ');
}
