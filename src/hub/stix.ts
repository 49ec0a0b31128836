// A casebook as a STIX 2.1 bundle (OASIS STIX 2.1, sections 3–7), for sharing with other teams and
// tools: the hub as the producing identity, each gateway as an identity where things were sighted, an
// indicator with a STIX pattern per observable, the observed data (the cyber-observable objects, with
// deterministic ids, and how often and when they were seen), a sighting per indicator and gateway,
// `related-to` relationships between indicators the relationship graph links, and a note with the
// casebook's notes. Written by hand from the specification: a handful of object types, no library.
import { createHash, randomUUID } from 'node:crypto';
import net from 'node:net';
import type { Casebook } from './casebooks.ts';
import type { Investigation } from './investigate.ts';
import type { ParsedObservable } from './parse-observables.ts';

/** STIX 2.1 §2.9: the namespace of deterministic cyber-observable ids (UUIDv5 over the id properties). */
const SCO_NAMESPACE = '00abedb4-aa42-466c-9c01-fed23315a9b7';

type StixObject = Record<string, unknown> & { type: string; id: string };

function uuidv5(namespace: string, name: string): string {
  const h = createHash('sha1')
    .update(Buffer.from(namespace.replace(/-/g, ''), 'hex'))
    .update(name, 'utf8')
    .digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** JSON with sorted keys, no white space (the id contributing properties are hashed this way). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** A cyber-observable object with its deterministic id (its id contributing properties). */
function sco(type: string, props: Record<string, unknown>): StixObject {
  return { type, spec_version: '2.1', id: `${type}--${uuidv5(SCO_NAMESPACE, canonical(props))}`, ...props };
}

/** A STIX pattern string literal: single quotes, with quote and backslash escaped. */
const lit = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** The pattern and the cyber-observable object of an observable; null when STIX has none (a MID). */
export function stixOf(o: ParsedObservable): { pattern: string; object: StixObject } | null {
  switch (o.type) {
    case 'email':
      return { pattern: `[email-addr:value = ${lit(o.value)}]`, object: sco('email-addr', { value: o.value }) };
    case 'ip': {
      const t = net.isIPv6(o.value) ? 'ipv6-addr' : 'ipv4-addr';
      return { pattern: `[${t}:value = ${lit(o.value)}]`, object: sco(t, { value: o.value }) };
    }
    case 'domain':
      return { pattern: `[domain-name:value = ${lit(o.value)}]`, object: sco('domain-name', { value: o.value }) };
    case 'url':
      return { pattern: `[url:value = ${lit(o.value)}]`, object: sco('url', { value: o.value }) };
    case 'sha256':
      return {
        pattern: `[file:hashes.'SHA-256' = ${lit(o.value)}]`,
        object: sco('file', { hashes: { 'SHA-256': o.value } }),
      };
    case 'file_name':
      return { pattern: `[file:name = ${lit(o.value)}]`, object: sco('file', { name: o.value }) };
    case 'email_subject':
      return {
        pattern: `[email-message:subject = ${lit(o.value)}]`,
        object: sco('email-message', { is_multipart: false, subject: o.value }),
      };
    case 'email_messageid':
      return {
        pattern: `[email-message:message_id = ${lit(`<${o.value}>`)}]`,
        object: sco('email-message', { is_multipart: false, message_id: `<${o.value}>` }),
      };
    default:
      return null;
  }
}

/** The hub's STIX identity: the same id in every bundle and in the TAXII collection. */
export function hubIdentityId(hubId: string): string {
  return `identity--${uuidv5(SCO_NAMESPACE, `breakwater-hub:${hubId}`)}`;
}

const INDICATOR_TYPES: Record<string, string> = {
  malicious: 'malicious-activity',
  suspicious: 'anomalous-activity',
};

/** The bundle: `now` fixes created/modified times (the same casebook exported twice differs only in ids). */
export function casebookBundle(
  c: Casebook,
  inv: Investigation,
  o: { hubName: string; hubId: string; now?: Date },
): { type: 'bundle'; id: string; objects: StixObject[] } {
  const at = (o.now ?? new Date()).toISOString();
  const common = (type: string): StixObject => ({
    type,
    spec_version: '2.1',
    id: `${type}--${randomUUID()}`,
    created: at,
    modified: at,
  });
  const hub: StixObject = {
    type: 'identity',
    spec_version: '2.1',
    id: hubIdentityId(o.hubId),
    created: at,
    modified: at,
    name: o.hubName,
    identity_class: 'system',
  };
  const objects: StixObject[] = [hub];
  const gateways = new Map<string, StixObject>();
  const gatewayIdentity = (deviceId: string, name: string): StixObject => {
    let g = gateways.get(deviceId);
    if (!g) {
      g = {
        type: 'identity',
        spec_version: '2.1',
        id: `identity--${uuidv5(SCO_NAMESPACE, `breakwater-gateway:${deviceId}`)}`,
        created: at,
        modified: at,
        name,
        identity_class: 'system',
        created_by_ref: hub.id,
      };
      gateways.set(deviceId, g);
      objects.push(g);
    }
    return g;
  };
  const indicatorOf = new Map<string, string>();
  const scos = new Map<string, StixObject>();
  for (const f of inv.observables) {
    const s = stixOf(f);
    if (!s) continue;
    const indicator: StixObject = {
      ...common('indicator'),
      created_by_ref: hub.id,
      name: `${f.type} ${f.value}`,
      description: `${f.judgement} on Breakwater gateways: ${f.sightings.count} message(s)${f.rules.length ? `; rules ${f.rules.join(', ')}` : ''}`,
      indicator_types: [INDICATOR_TYPES[f.judgement] ?? 'unknown'],
      pattern: s.pattern,
      pattern_type: 'stix',
      pattern_version: '2.1',
      valid_from: f.sightings.firstSeen ?? at,
      labels: [f.judgement.replace(/ /g, '-')],
    };
    objects.push(indicator);
    indicatorOf.set(`${f.type}:${f.value}`, indicator.id);
    if (!f.sightings.count) continue;
    if (!scos.has(s.object.id)) {
      scos.set(s.object.id, s.object);
      objects.push(s.object);
    }
    const first = f.sightings.firstSeen ?? at;
    const last = f.sightings.lastSeen ?? at;
    const observed: StixObject = {
      ...common('observed-data'),
      created_by_ref: hub.id,
      first_observed: first,
      last_observed: last,
      number_observed: Math.max(1, Math.min(f.sightings.count, 999_999_999)),
      object_refs: [s.object.id],
    };
    objects.push(observed);
    for (const g of f.sightings.gateways)
      objects.push({
        ...common('sighting'),
        created_by_ref: hub.id,
        sighting_of_ref: indicator.id,
        observed_data_refs: [observed.id],
        where_sighted_refs: [gatewayIdentity(g.deviceId, g.name).id],
        count: Math.min(g.count, 999_999_999),
        first_seen: first,
        last_seen: last,
      });
  }
  // indicators the relationship graph connects (sender → recipient, sender → attachment, …)
  for (const e of inv.graph.edges) {
    const a = indicatorOf.get(e.source);
    const b = indicatorOf.get(e.target);
    if (a && b && a !== b)
      objects.push({
        ...common('relationship'),
        created_by_ref: hub.id,
        relationship_type: 'related-to',
        source_ref: a,
        target_ref: b,
        description: `${e.kind} (${e.messages} message(s))`,
      });
  }
  const refs = [...indicatorOf.values()];
  if (refs.length)
    objects.push({
      ...common('note'),
      created_by_ref: hub.id,
      abstract: c.title,
      content: c.notes || c.title,
      authors: [...new Set([c.createdBy, c.updatedBy])],
      object_refs: refs,
    });
  return { type: 'bundle', id: `bundle--${randomUUID()}`, objects };
}
