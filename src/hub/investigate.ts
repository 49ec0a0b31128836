// Investigation on the hub (DESIGN §11.3): observables → their sightings across every gateway (how many
// messages, on which gateways, first and last seen, as sender, recipient or in the content), a judgement
// from the gateways' verdicts, the messages themselves (newest first) and a sender–target relationship
// graph (senders, recipients, sending IPs and domains, attachments, URL domains) any node of which can be
// investigated next. Answered from the hub's store: one index range per observable.
import { parse } from 'tldts';
import type { MessageSummary } from '../xdr/summary.ts';
import { fromAddressOf } from '../xdr/observables.ts';
import { normalizeObservable, type ObservableType } from './observables.ts';
import type { ObservableError, ParsedObservable } from './parse-observables.ts';
import type { HubStore } from './store.ts';

export type Judgement = 'malicious' | 'suspicious' | 'no threat found' | 'not seen';

export interface ObservableFinding {
  type: ObservableType;
  value: string;
  judgement: Judgement;
  sightings: {
    /** messages that carry it, every gateway together */
    count: number;
    firstSeen: string | null;
    lastSeen: string | null;
    gateways: Array<{ deviceId: string; name: string; count: number }>;
  };
  /** how it appeared in the messages returned: as sender, as recipient, in the content */
  roles: { sender: number; recipient: number; content: number };
  /** the highest threat level among the messages returned, and how those messages ended */
  maxThreatLevel: number | null;
  statuses: Record<string, number>;
  rules: string[];
}

export interface InvestigatedMessage {
  deviceId: string;
  gateway: string;
  summary: MessageSummary;
  /** which of the observables investigated it carries (`type:value`) */
  matched: string[];
}

export interface GraphNode {
  id: string;
  type: 'email' | 'ip' | 'domain' | 'sha256' | 'url_domain';
  label: string;
  /** messages it is part of */
  messages: number;
  /** one of the observables investigated */
  investigated: boolean;
  maxThreatLevel: number;
}

export interface GraphEdge {
  source: string;
  target: string;
  kind: 'sent to' | 'sent from' | 'attached' | 'linked' | 'sender domain';
  messages: number;
}

export interface Investigation {
  observables: ObservableFinding[];
  errors: ObservableError[];
  messages: InvestigatedMessage[];
  /** true when an observable had more messages than `perObservable` (counts stay exact) */
  truncated: boolean;
  graph: { nodes: GraphNode[]; edges: GraphEdge[]; truncated: boolean };
  /** the gateways asked live (the route asks them; empty when only the stored summaries were read) */
  live: {
    asked: string[];
    answered: Array<{ deviceId: string; name: string; messages: number }>;
    missing: string[];
  };
}

export interface InvestigateOptions {
  /** messages read per observable (newest first) */
  perObservable: number;
  /** nodes kept in the graph (the most connected) */
  maxNodes: number;
  /** device id → its name */
  names: Map<string, string>;
}

export function judge(maxLevel: number | null, statuses: Record<string, number>, seen: number): Judgement {
  if (!seen) return 'not seen';
  if ((maxLevel ?? 0) >= 4 || statuses.quarantined || statuses.dropped) return 'malicious';
  if ((maxLevel ?? 0) >= 1) return 'suspicious';
  return 'no threat found';
}

/** Where an observable sits in one message. */
function roleIn(s: MessageSummary, o: ParsedObservable): 'sender' | 'recipient' | 'content' {
  const lower = (x: string | null | undefined) => (x ?? '').toLowerCase();
  switch (o.type) {
    case 'email':
      if (lower(s.sender) === o.value || lower(fromAddressOf(s.headerFrom)) === o.value) return 'sender';
      return s.recipients.some((r) => lower(r.address) === o.value) ? 'recipient' : 'content';
    case 'ip':
      return 'sender';
    case 'domain':
      return lower(s.sender).endsWith(`@${o.value}`) || lower(fromAddressOf(s.headerFrom)).endsWith(`@${o.value}`)
        ? 'sender'
        : s.recipients.some((r) => lower(r.address).endsWith(`@${o.value}`))
          ? 'recipient'
          : 'content';
    default:
      return 'content';
  }
}

export function investigate(
  store: HubStore,
  input: { observables: ParsedObservable[]; errors: ObservableError[] },
  o: InvestigateOptions,
): Investigation {
  const name = (id: string) => o.names.get(id) ?? id;
  const messages = new Map<string, InvestigatedMessage>();
  let truncated = false;
  const findings: ObservableFinding[] = input.observables.map((obs) => {
    const seen = store.sightings(obs.type, obs.value);
    const found = store.search(obs.type, obs.value, o.perObservable);
    if (seen.count > found.length) truncated = true;
    const roles = { sender: 0, recipient: 0, content: 0 };
    const statuses: Record<string, number> = {};
    const rules = new Map<string, number>();
    let maxLevel: number | null = null;
    for (const { deviceId, summary } of found) {
      roles[roleIn(summary, obs)]++;
      statuses[summary.status] = (statuses[summary.status] ?? 0) + 1;
      if (summary.threatLevel !== null) maxLevel = Math.max(maxLevel ?? 0, summary.threatLevel);
      for (const r of summary.rules) rules.set(r, (rules.get(r) ?? 0) + 1);
      const key = `${deviceId}/${summary.mid}`;
      const m = messages.get(key) ?? { deviceId, gateway: name(deviceId), summary, matched: [] };
      m.matched.push(`${obs.type}:${obs.value}`);
      messages.set(key, m);
    }
    return {
      type: obs.type,
      value: obs.value,
      judgement: judge(maxLevel, statuses, seen.count),
      sightings: {
        count: seen.count,
        firstSeen: seen.first === null ? null : new Date(seen.first).toISOString(),
        lastSeen: seen.last === null ? null : new Date(seen.last).toISOString(),
        gateways: seen.devices
          .map((d) => ({ deviceId: d.deviceId, name: name(d.deviceId), count: d.count }))
          .sort((a, b) => b.count - a.count || a.name.localeCompare(b.name)),
      },
      roles,
      maxThreatLevel: maxLevel,
      statuses,
      rules: [...rules.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 20)
        .map(([r]) => r),
    };
  });
  const list = [...messages.values()].sort(
    (a, b) => Date.parse(b.summary.receivedAt) - Date.parse(a.summary.receivedAt),
  );
  const investigated = new Set(input.observables.map((x) => `${x.type}:${x.value}`));
  return {
    observables: findings,
    errors: input.errors,
    messages: list,
    truncated,
    graph: relationshipGraph(list, investigated, o.maxNodes),
    live: { asked: [], answered: [], missing: [] },
  };
}

/**
 * The sender–target graph of a set of messages: who sent to whom, from which IP and domain, with which
 * attachments and links. Node ids are `type:value` (the observable to investigate on a click).
 */
export function relationshipGraph(
  list: InvestigatedMessage[],
  investigated: Set<string>,
  maxNodes: number,
): Investigation['graph'] {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  const node = (type: GraphNode['type'], value: string, level: number, label = value): string | null => {
    if (!value) return null;
    const obsType = type === 'url_domain' ? 'domain' : type;
    const v = normalizeObservable(obsType, value);
    const id = `${obsType}:${v}`;
    const n = nodes.get(id) ?? { id, type, label, messages: 0, investigated: investigated.has(id), maxThreatLevel: 0 };
    n.messages++;
    n.maxThreatLevel = Math.max(n.maxThreatLevel, level);
    nodes.set(id, n);
    return id;
  };
  const edge = (source: string | null, target: string | null, kind: GraphEdge['kind']): void => {
    if (!source || !target || source === target) return;
    const key = `${source}\u0000${target}\u0000${kind}`;
    const e = edges.get(key) ?? { source, target, kind, messages: 0 };
    e.messages++;
    edges.set(key, e);
  };
  for (const { summary: s } of list) {
    const level = s.threatLevel ?? 0;
    const sender = node('email', fromAddressOf(s.headerFrom) ?? s.sender, level);
    const ip = node('ip', s.senderIp, level);
    edge(sender, ip, 'sent from');
    const domain = (sender ?? '').split('@')[1];
    if (domain) edge(sender, node('domain', domain, level), 'sender domain');
    for (const r of new Set(s.recipients.map((x) => x.address.toLowerCase())))
      edge(sender, node('email', r, level), 'sent to');
    for (const a of s.attachments)
      edge(sender, node('sha256', a.sha256, level, a.name || a.sha256.slice(0, 12)), 'attached');
    for (const d of new Set(s.urls.map((u) => parse(u).domain ?? parse(u).hostname).filter((x): x is string => !!x)))
      edge(sender, node('url_domain', d, level), 'linked');
  }
  // the most connected nodes (and every investigated one) when there are too many to draw
  let kept = [...nodes.values()];
  const truncated = kept.length > maxNodes;
  if (truncated)
    kept = kept
      .sort((a, b) => Number(b.investigated) - Number(a.investigated) || b.messages - a.messages)
      .slice(0, maxNodes);
  const ids = new Set(kept.map((n) => n.id));
  return {
    nodes: kept,
    edges: [...edges.values()].filter((e) => ids.has(e.source) && ids.has(e.target)),
    truncated,
  };
}
