// The relay module an XDR calls (DESIGN §10; reference R97–R105): observe (sightings and judgements),
// deliberate (verdicts), refer (links to tracking), respond (actions, and triggering one). It works on
// message summaries found through a MessageSource, so the hub can answer the same way from the summaries
// it stores; the HTTP side (JWT, error shape) is src/api/relay-routes.ts.
import type { Tracker, TrackingQuery } from '../tracking/tracker.ts';
import { summarize, type MessageSummary } from './summary.ts';
import {
  isCtimType,
  isSearchable,
  observableKey,
  observableQueries,
  type Observable,
  type ObservableQuery,
} from './observables.ts';
import {
  buildJudgement,
  buildSighting,
  buildVerdict,
  transientId,
  type Assessment,
  type CtimContext,
} from './ctim/build.ts';
import type { Docs, Judgement, Sighting, Verdict } from './ctim/entities.ts';

/** Where the relay finds messages: the gateway's tracking, or the hub's stored summaries. */
export interface MessageSource {
  /** the summaries of the messages a tracking query finds, newest first, at most `limit` */
  find(q: TrackingQuery, limit: number): MessageSummary[];
}

/** The gateway's tracking as a MessageSource. */
export function trackerSource(tracker: Tracker): MessageSource {
  return {
    find: (q, limit) =>
      tracker
        .search({ ...q, limit })
        .map((r) => tracker.show(r.mid))
        .filter((r) => r !== null)
        .map((r) => summarize(r, 0)),
  };
}

/**
 * Carries out a response action (`/respond/trigger`). Pluggable: mailbox remediation (delete, forward,
 * forward-and-delete) and block lists are provided by other services; `by` names the caller.
 */
export interface RelayResponder {
  trigger(actionId: string, observable: Observable, by: string): Promise<{ ok: boolean; detail?: unknown }>;
}

/** The responder when no service carries out actions: every trigger fails, saying why. */
export const unconfiguredResponder: RelayResponder = {
  async trigger(actionId) {
    return {
      ok: false,
      detail: `no remediation service is configured on this gateway: action ${actionId} cannot be carried out`,
    };
  },
};

/** A request the relay refuses (400 `invalid argument`, …); the routes turn it into `{"errors": […]}`. */
export class RelayError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export interface ReferLink {
  id: string;
  title: string;
  description: string;
  categories: string[];
  url: string;
}

export interface RespondAction {
  id: string;
  title: string;
  description: string;
  categories: string[];
  'query-params': { observable_type: string; observable_value: string };
}

export interface TriggerRequest {
  'action-id': string;
  observable_type: string;
  observable_value: string;
}

export interface TriggerAnswer {
  data: { status: 'success' | 'failure' };
  errors?: Array<{ type: 'fatal'; code: string; message: string }>;
}

/** What one call knows: the base URL of links, and who called. */
export interface RelayCall {
  /** base URL of this gateway's admin port, for `source_uri` and refer links */
  base: string;
  /** the caller, from the token: recorded with response actions */
  by: string;
}

export interface RelayOptions {
  source: MessageSource;
  entityLimit: number;
  /** `source` of every entity */
  name?: string;
  /** where a sighting's message can be looked at (default: the gateway's tracking record) */
  messageUri?: (base: string, s: MessageSummary) => string;
  /** where a person looks an observable up (default: the gateway web UI's tracking search) */
  referUri?: (base: string, o: Observable, q: ObservableQuery) => string;
}

/** Mailbox remediation of one message, by the responder (RemediationService). */
const REMEDIATION = [
  { id: 'delete', title: 'Delete from mailboxes', what: 'Deletes the message from every recipient mailbox' },
  {
    id: 'forward',
    title: 'Forward to the security mailbox',
    what: 'Forwards the message from every recipient mailbox to the configured address',
  },
  {
    id: 'forward-and-delete',
    title: 'Forward, then delete from mailboxes',
    what: 'Forwards the message to the configured address, then deletes it from every recipient mailbox',
  },
] as const;

export class Relay {
  /** carries out /respond/trigger; replace it to plug in remediation and block lists */
  responder: RelayResponder = unconfiguredResponder;
  readonly entityLimit: number;
  private readonly source: MessageSource;
  private readonly name: string;
  private readonly messageUri: (base: string, s: MessageSummary) => string;
  private readonly referUri: (base: string, o: Observable, q: ObservableQuery) => string;

  constructor(o: RelayOptions) {
    this.referUri = o.referUri ?? ((base, _o, q) => trackingPage(base, q));
    this.source = o.source;
    this.entityLimit = o.entityLimit;
    this.name = o.name ?? 'Breakwater';
    this.messageUri = o.messageUri ?? ((base, s) => `${base}/api/v1/tracking/messages/${s.mid}`);
  }

  /** A body of observables: every type must be CTIM's (400 otherwise); duplicates count once. */
  static checkObservables(list: Observable[]): Observable[] {
    const bad = list.find((o) => !isCtimType(o.type));
    if (bad) throw new RelayError(400, 'invalid argument', `unknown observable type ${JSON.stringify(bad.type)}`);
    const seen = new Set<string>();
    return list.filter((o) => {
      const k = observableKey(o);
      return seen.has(k) ? false : (seen.add(k), true);
    });
  }

  context(call: RelayCall): CtimContext {
    return {
      source: this.name,
      messageUri: (s) => this.messageUri(call.base, s),
      newId: transientId,
      now: new Date(),
    };
  }

  /**
   * One sighting per message an observable appears in (newest first, at most entityLimit in all), and a
   * judgement per observable the messages' threat levels say something about.
   */
  observe(observables: Observable[], call: RelayCall): { sightings?: Docs<Sighting>; judgements?: Docs<Judgement> } {
    const list = Relay.checkObservables(observables);
    const ctx = this.context(call);
    // (a hub's messages come from several gateways: a MID is unique per device)
    const found = new Map<string, { summary: MessageSummary; matched: Observable[] }>();
    for (const o of list)
      for (const q of observableQueries(o))
        for (const s of this.source.find(q.query, this.entityLimit)) {
          // a message split by policy is tracked as its copies; the parent would repeat them
          if (s.status === 'splintered') continue;
          const key = `${s.device ?? ''}#${s.mid}`;
          const entry = found.get(key) ?? { summary: s, matched: [] };
          if (!entry.matched.some((m) => observableKey(m) === observableKey(o))) entry.matched.push(o);
          found.set(key, entry);
        }
    const newest = [...found.values()]
      .sort((a, b) => b.summary.receivedAt.localeCompare(a.summary.receivedAt) || b.summary.mid - a.summary.mid)
      .slice(0, this.entityLimit);
    const sightings = newest.map((e) => buildSighting(e.summary, e.matched, ctx));
    const judgements: Judgement[] = [];
    for (const o of list) {
      if (judgements.length >= this.entityLimit) break;
      const a = this.assess(o);
      const j = a && buildJudgement(a, ctx);
      if (j) judgements.push(j);
    }
    return {
      ...(sightings.length ? { sightings: { count: sightings.length, docs: sightings } } : {}),
      ...(judgements.length ? { judgements: { count: judgements.length, docs: judgements } } : {}),
    };
  }

  /** A verdict per observable seen in a message: Malicious, Suspicious or Unknown (see dispositionOf). */
  deliberate(observables: Observable[], call: RelayCall): { verdicts?: Docs<Verdict> } {
    const list = Relay.checkObservables(observables);
    const ctx = this.context(call);
    const verdicts: Verdict[] = [];
    for (const o of list) {
      if (verdicts.length >= this.entityLimit) break;
      const a = this.assess(o);
      if (a) verdicts.push(buildVerdict(a, ctx));
    }
    return verdicts.length ? { verdicts: { count: verdicts.length, docs: verdicts } } : {};
  }

  /**
   * What the messages an observable was part of (as sender, origin or content) say about it: the highest
   * threat level among them, from the newest message that has it. An observable seen only as a recipient
   * is never judged by the mail it received (level null: Unknown). Null when it was not seen at all.
   */
  assess(o: Observable): Assessment | null {
    const all = observableQueries(o);
    const newestOf = (queries: ObservableQuery[], level?: number): MessageSummary | null => {
      let best: MessageSummary | null = null;
      for (const q of queries) {
        const [m] = this.source.find(level === undefined ? q.query : { ...q.query, level }, 1);
        if (m && (!best || m.receivedAt > best.receivedAt || (m.receivedAt === best.receivedAt && m.mid > best.mid)))
          best = m;
      }
      return best;
    };
    const sources = all.filter((q) => q.role === 'source');
    for (const level of [5, 4, 3, 2]) {
      const m = newestOf(sources, level);
      if (m) return { observable: o, level: m.threatLevel, message: m };
    }
    const asSource = newestOf(sources);
    if (asSource) return { observable: o, level: asSource.threatLevel, message: asSource };
    const asTarget = newestOf(all.filter((q) => q.role === 'target'));
    return asTarget ? { observable: o, level: null, message: asTarget } : null;
  }

  /** Links to this gateway's tracking, one per way the observable is searched. */
  refer(observables: Observable[], call: RelayCall): ReferLink[] {
    const list = Relay.checkObservables(observables);
    const links: ReferLink[] = [];
    for (const o of list)
      for (const q of observableQueries(o))
        links.push({
          id: `ref-breakwater-search-${o.type}-${Object.keys(q.query).join('-')}-${encodeURIComponent(o.value)}`,
          title:
            q.query.mid !== undefined
              ? `Open MID ${q.query.mid} in Breakwater`
              : `Search Breakwater for this ${o.type}`,
          description: `Messages in Breakwater message tracking with ${o.value} ${q.label}`,
          categories: ['Breakwater', 'Search', 'Email'],
          url: this.referUri(call.base, o, q),
        });
    return links;
  }

  /** The response actions available for each observable (whoever carries them out). */
  actions(observables: Observable[]): RespondAction[] {
    const list = Relay.checkObservables(observables);
    const out: RespondAction[] = [];
    for (const o of list) for (const a of actionsFor(o)) out.push(a);
    return out;
  }

  /** Carries out one action through the responder; an action not offered for the observable is refused. */
  async trigger(req: TriggerRequest, by: string): Promise<TriggerAnswer> {
    const o: Observable = { type: req.observable_type, value: req.observable_value };
    Relay.checkObservables([o]);
    if (!actionsFor(o).some((a) => a.id === req['action-id']))
      throw new RelayError(
        400,
        'invalid argument',
        `action ${JSON.stringify(req['action-id'])} is not offered for a ${o.type} observable`,
      );
    let result: { ok: boolean; detail?: unknown };
    try {
      result = await this.responder.trigger(req['action-id'], o, by);
    } catch (err) {
      result = { ok: false, detail: (err as Error).message };
    }
    if (result.ok) return { data: { status: 'success' } };
    const message =
      typeof result.detail === 'string'
        ? result.detail
        : result.detail === undefined
          ? `action ${req['action-id']} failed`
          : JSON.stringify(result.detail);
    return { data: { status: 'failure' }, errors: [{ type: 'fatal', code: 'action failed', message }] };
  }
}

/** The web UI's tracking page for a query (its fields are the tracking API's; the analyst signs in). */
function trackingPage(base: string, q: ObservableQuery): string {
  if (q.query.mid !== undefined) return `${base}/ui/#/tracking/${q.query.mid}`;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q.query)) params.set(k, String(v));
  return `${base}/ui/#/tracking?${params}`;
}

function actionsFor(o: Observable): RespondAction[] {
  if (!isSearchable(o.type) || !observableQueries(o).length) return [];
  const params = { observable_type: o.type, observable_value: o.value };
  const action = (id: string, title: string, description: string, category: string): RespondAction => ({
    id,
    title,
    description,
    categories: ['Breakwater', category],
    'query-params': params,
  });
  switch (o.type) {
    case 'cisco_mid':
    case 'email_messageid':
      return REMEDIATION.map((r) =>
        action(r.id, r.title, `${r.what} (the message with ${o.type} ${o.value})`, 'Mailbox remediation'),
      );
    case 'email':
      return [
        action('block-sender', 'Block this sender', `Refuses mail from ${o.value} on this gateway`, 'Block list'),
      ];
    case 'domain':
      return [
        action(
          'block-domain',
          'Block this sender domain',
          `Refuses mail from addresses at ${o.value} on this gateway`,
          'Block list',
        ),
      ];
    default:
      return [];
  }
}
