// Observables (CTIM `{type, value}`) and what each one means as a tracking search (DESIGN §8, §10, §11.3).
// One mapping, shared by the gateway's relay module and (later) the hub, which runs the same queries over
// the summaries it stores: an observable becomes one or more tracking queries, OR-ed; every query is
// answered from an index (test/xdr-observables.test.ts checks the query plans).
import type { TrackingQuery } from '../tracking/tracker.ts';

export interface Observable {
  type: string;
  value: string;
}

/**
 * CTIM's observable type vocabulary (`ObservableTypeIdentifier` in ctim.schemas.vocabularies): a type outside it is a
 * malformed request (400); a type inside it that we do not search (md5, hostname, …) finds nothing.
 */
export const CTIM_OBSERVABLE_TYPES = [
  'acudid',
  'amp_computer_guid',
  'certificate_common_name',
  'certificate_issuer',
  'certificate_serial',
  'cisco_cm_id',
  'cisco_mid',
  'cisco_uc_id',
  'cortex_agent_id',
  'crowdstrike_id',
  'cvm_id',
  'cybereason_id',
  'darktrace_id',
  'device',
  'domain',
  'email',
  'email_messageid',
  'email_subject',
  'file_name',
  'file_path',
  'hostname',
  'imei',
  'imsi',
  'ip',
  'ipv6',
  'mac_address',
  'md5',
  'meraki_network_id',
  'meraki_node_sn',
  'meraki_org_id',
  'ms_machine_id',
  'mutex',
  'ngfw_id',
  'ngfw_name',
  'odns_identity',
  'odns_identity_label',
  'orbital_node_id',
  'pki_serial',
  'process_args',
  'process_hash',
  'process_name',
  'process_path',
  'process_uid',
  'process_username',
  'processor_id',
  'registry_key',
  'registry_name',
  'registry_path',
  's1_agent_id',
  'serial_number',
  'sha1',
  'sha256',
  'swc_device_id',
  'trend_micro_id',
  'url',
  'user',
  'user_agent',
] as const;

/** The observable types tracking can search, in the order the docs list them. */
export const SEARCHABLE_TYPES = [
  'ip',
  'ipv6',
  'domain',
  'email',
  'email_subject',
  'email_messageid',
  'cisco_mid',
  'sha256',
  'file_name',
  'url',
] as const;

export type SearchableType = (typeof SEARCHABLE_TYPES)[number];

export function isCtimType(type: string): boolean {
  return (CTIM_OBSERVABLE_TYPES as readonly string[]).includes(type);
}

export function isSearchable(type: string): type is SearchableType {
  return (SEARCHABLE_TYPES as readonly string[]).includes(type);
}

/**
 * One way an observable can appear in a message. `source`: the observable is part of what the message
 * brought (its sender, origin, content), so the message's threat level says something about it;
 * `target`: the observable is who received it (a recipient), which the message's threat says nothing
 * against.
 */
export interface ObservableQuery {
  query: TrackingQuery;
  role: 'source' | 'target';
  /** how the observable was found, for people: "as envelope sender" */
  label: string;
}

/** Shorter subjects cannot use the trigram index; searching them would scan every record. */
export const MIN_SUBJECT_LENGTH = 3;

/**
 * The tracking queries that find the messages an observable appears in (OR-ed). Empty when the type is
 * not searchable or the value cannot match anything (a MID that is not a number, a subject too short to
 * search without a full scan).
 */
export function observableQueries(o: Observable): ObservableQuery[] {
  const v = o.value.trim();
  if (!v || !isSearchable(o.type)) return [];
  switch (o.type) {
    case 'ip':
    case 'ipv6':
      return [{ query: { ip: v }, role: 'source', label: 'as sending IP address' }];
    case 'domain': {
      const d = v.toLowerCase().replace(/\.$/, '');
      return [
        { query: { senderDomain: d }, role: 'source', label: "as the envelope sender's domain" },
        { query: { urlDomain: d }, role: 'source', label: 'as the domain of a URL in the message' },
      ];
    }
    case 'email': {
      const a = v.toLowerCase().replace(/^<(.*)>$/, '$1');
      return [
        { query: { sender: a }, role: 'source', label: 'as envelope sender' },
        { query: { fromAddress: a }, role: 'source', label: 'as header From' },
        { query: { recipient: a }, role: 'target', label: 'as recipient' },
      ];
    }
    case 'email_subject':
      return [...v].length < MIN_SUBJECT_LENGTH
        ? []
        : [{ query: { subject: v }, role: 'source', label: 'in the subject' }];
    case 'email_messageid':
      return [{ query: { messageId: v }, role: 'source', label: 'as Message-ID' }];
    case 'cisco_mid':
      return /^\d{1,15}$/.test(v) ? [{ query: { mid: Number(v) }, role: 'source', label: 'as MID' }] : [];
    case 'sha256':
      return /^[0-9a-f]{64}$/i.test(v)
        ? [{ query: { sha256: v.toLowerCase() }, role: 'source', label: 'as attachment SHA-256' }]
        : [];
    case 'file_name':
      return [{ query: { attachment: v }, role: 'source', label: 'as attachment name' }];
    case 'url':
      return [{ query: { url: v }, role: 'source', label: 'as a URL in the message' }];
  }
}

/** Two observables are the same when their type and value are (the value as CTIM compares it). */
export function observableKey(o: Observable): string {
  return `${o.type}\u0000${o.value}`;
}

/**
 * The address in a header From (`Alice <alice@x.test>` → `alice@x.test`), lowercased; what tracking's
 * `fromAddress` filter compares with (FROM_ADDRESS_SQL in src/store/db.ts).
 */
export function fromAddressOf(headerFrom: string | null): string | null {
  if (!headerFrom) return null;
  const lt = headerFrom.indexOf('<');
  const gt = headerFrom.indexOf('>', lt + 1);
  if (lt >= 0 && gt < 0) return null; // malformed: no address to compare
  const text = lt >= 0 ? headerFrom.slice(lt + 1, gt) : headerFrom;
  return text.trim().toLowerCase() || null;
}
