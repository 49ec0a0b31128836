// Tickets (DESIGN §11.4; issue 14): the hub opens a ticket in any ticketing system by POSTing a JSON body
// to a webhook (`tickets.url`, with its headers), shaped by an optional template. Each ticket is kept with
// its state: a failed or timed-out call is retried with a doubling delay, up to `tickets.attempts`, then
// marked failed with the reason. Watched observables (src/hub/watches.ts) open tickets the same way.
import { randomUUID } from 'node:crypto';
import { ApprovalError, requestedBy } from './approvals.ts';
import type { HubStore } from './store.ts';

const SCHEMA = `
create table if not exists tickets (
  id text primary key,
  title text not null,
  body text not null,
  status text not null,
  attempts integer not null default 0,
  last_error text,
  response_status integer,
  reference text,
  created_by text not null,
  created_at integer not null,
  updated_at integer not null,
  next_attempt_at integer not null
);
create index if not exists tickets_due on tickets(status, next_attempt_at);
`;

export interface TicketSettings {
  url?: string;
  headers: Record<string, string>;
  /** a JSON text with {{title}}, {{text}}, {{observables}}, {{requestedBy}}, {{createdAt}}, {{id}} */
  template?: string;
  timeoutMs: number;
  attempts: number;
  backoffMs: number;
}

export interface TicketContent {
  title: string;
  text: string;
  observables: Array<{ type: string; value: string }>;
  casebookId?: string;
}

export interface Ticket {
  id: string;
  title: string;
  /** awaiting_approval: nothing is sent until a second user approves (approvals.ticket) */
  status: 'awaiting_approval' | 'queued' | 'sent' | 'failed' | 'refused';
  attempts: number;
  lastError: string | null;
  responseStatus: number | null;
  /** the ticket's id in the ticketing system, when its answer carried one */
  reference: string | null;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

interface Row {
  id: string;
  title: string;
  body: string;
  status: Ticket['status'];
  attempts: number;
  last_error: string | null;
  response_status: number | null;
  reference: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

/** A JSON-string-safe value: what goes between the quotes of a template's string. */
const inString = (v: string) => JSON.stringify(v).slice(1, -1);

/** The webhook body: the template with its placeholders filled, or a plain JSON object. */
export function ticketBody(
  t: TicketContent & { id: string; requestedBy: string; createdAt: string },
  template?: string,
): string {
  const values: Record<string, string> = {
    id: t.id,
    title: t.title,
    text: t.text,
    requestedBy: t.requestedBy,
    createdAt: t.createdAt,
    observables: t.observables.map((o) => `${o.type}: ${o.value}`).join('\n'),
    casebookId: t.casebookId ?? '',
  };
  if (!template)
    return JSON.stringify({
      id: t.id,
      title: t.title,
      text: t.text,
      observables: t.observables,
      requestedBy: t.requestedBy,
      createdAt: t.createdAt,
      ...(t.casebookId ? { casebookId: t.casebookId } : {}),
      source: 'Breakwater hub',
    });
  return template.replace(/\{\{(\w+)\}\}/g, (m, k: string) => (k in values ? inString(values[k]) : m));
}

/** A template must stay JSON whatever goes into it: checked with awkward values at start-up. */
export function checkTemplate(template: string): string | null {
  try {
    JSON.parse(
      ticketBody(
        {
          id: 'x',
          title: 'a "quoted" title\\',
          text: 'two\nlines',
          observables: [{ type: 'email', value: 'a@b.test' }],
          requestedBy: 'u',
          createdAt: new Date(0).toISOString(),
        },
        template,
      ),
    );
    return null;
  } catch (err) {
    return `the ticket template is not JSON once filled in: ${(err as Error).message}`;
  }
}

export class TicketDesk {
  private readonly store: HubStore;
  private readonly settings: () => TicketSettings;
  private readonly log: (line: string) => void;
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<void> | null = null;
  private stopped = false;

  constructor(deps: { store: HubStore; settings: () => TicketSettings; log: (line: string) => void }) {
    this.store = deps.store;
    this.settings = deps.settings;
    this.log = deps.log;
    this.store.db.exec(SCHEMA);
  }

  get enabled(): boolean {
    return !!this.settings().url;
  }

  /**
   * Queues a ticket and sends it now (retries follow on their own); with `awaitingApproval` it waits for
   * a second user's approval first (approvals.ticket), and nothing leaves the hub until then.
   */
  open(content: TicketContent, by: string, o: { awaitingApproval?: boolean } = {}): Ticket {
    const id = randomUUID();
    const now = Date.now();
    const body = ticketBody(
      { ...content, id, requestedBy: by, createdAt: new Date(now).toISOString() },
      this.settings().template,
    );
    this.store.run(
      `insert into tickets(id, title, body, status, created_by, created_at, updated_at, next_attempt_at)
       values (?, ?, ?, ?, ?, ?, ?, ?)`,
      id,
      content.title,
      body,
      o.awaitingApproval ? 'awaiting_approval' : 'queued',
      by,
      now,
      now,
      now,
    );
    this.kick();
    return this.get(id)!;
  }

  /** A second user approves: the ticket is sent. Its requester (or the owner of the watch that opened it) may not. */
  approve(id: string, by: string): Ticket {
    const t = this.awaiting(id, by);
    this.store.run(
      "update tickets set status = 'queued', last_error = null, updated_at = ?, next_attempt_at = ? where id = ?",
      Date.now(),
      Date.now(),
      t.id,
    );
    this.log(`ticket ${id} approved by ${by}`);
    this.kick();
    return this.get(id)!;
  }

  refuse(id: string, by: string): Ticket {
    const t = this.awaiting(id);
    this.store.run(
      "update tickets set status = 'refused', last_error = ?, updated_at = ? where id = ?",
      `refused by ${by}`,
      Date.now(),
      t.id,
    );
    return this.get(id)!;
  }

  private awaiting(id: string, approver?: string): Ticket {
    const t = this.get(id);
    if (!t) throw new ApprovalError('ticket_not_found', 'no ticket with that id');
    if (t.status !== 'awaiting_approval')
      throw new ApprovalError('not_pending', `the ticket is ${t.status}, not awaiting approval`);
    if (approver !== undefined && requestedBy(t.createdBy, approver))
      throw new ApprovalError('approval_by_requester', 'a ticket is approved by someone other than its requester');
    return t;
  }

  get(id: string): Ticket | null {
    const r = this.store.stmt('select * from tickets where id = ?').get(id) as unknown as Row | undefined;
    return r ? toTicket(r) : null;
  }

  list(limit = 200): Ticket[] {
    return (
      this.store.stmt('select * from tickets order by created_at desc limit ?').all(limit) as unknown as Row[]
    ).map(toTicket);
  }

  start(): void {
    this.stopped = false;
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.sending;
  }

  /** Sends what is due now, then sleeps until the next retry is due. */
  private kick(): void {
    if (this.stopped || this.sending) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.sending = this.sendDue().finally(() => {
      this.sending = null;
      const next = this.store.stmt("select min(next_attempt_at) t from tickets where status = 'queued'").get() as {
        t: number | null;
      };
      if (next.t !== null && !this.stopped) {
        this.timer = setTimeout(() => this.kick(), Math.max(50, next.t - Date.now()));
        this.timer.unref();
      }
    });
  }

  private async sendDue(): Promise<void> {
    for (;;) {
      const due = this.store
        .stmt(
          "select * from tickets where status = 'queued' and next_attempt_at <= ? order by next_attempt_at limit 20",
        )
        .all(Date.now()) as unknown as Row[];
      if (!due.length || this.stopped) return;
      for (const t of due) await this.attempt(t);
    }
  }

  private async attempt(t: Row): Promise<void> {
    const s = this.settings();
    const attempts = t.attempts + 1;
    let error: string | null = null;
    let status: number | null = null;
    let reference: string | null = null;
    if (!s.url) error = 'tickets.url is not set';
    else
      try {
        const res = await fetch(s.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...s.headers },
          body: t.body,
          signal: AbortSignal.timeout(s.timeoutMs),
        });
        status = res.status;
        const text = await res.text().catch(() => '');
        if (res.ok) {
          try {
            const j = JSON.parse(text) as { id?: unknown; key?: unknown; number?: unknown };
            const ref = j.key ?? j.id ?? j.number;
            reference = ref === undefined || ref === null ? null : String(ref).slice(0, 200);
          } catch {
            // a ticketing system that answers no JSON: sent all the same
          }
        } else error = `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
      } catch (err) {
        const e = err as Error;
        error =
          e.name === 'TimeoutError' ? `no answer within ${s.timeoutMs} ms` : ((e.cause as Error)?.message ?? e.message);
      }
    const now = Date.now();
    if (!error) {
      this.store.run(
        "update tickets set status = 'sent', attempts = ?, response_status = ?, reference = ?, last_error = null, updated_at = ? where id = ?",
        attempts,
        status,
        reference,
        now,
        t.id,
      );
      this.log(`ticket ${t.id} "${t.title}" opened${reference ? ` as ${reference}` : ''}`);
      return;
    }
    const failed = attempts >= s.attempts;
    this.store.run(
      'update tickets set status = ?, attempts = ?, response_status = ?, last_error = ?, updated_at = ?, next_attempt_at = ? where id = ?',
      failed ? 'failed' : 'queued',
      attempts,
      status,
      error,
      now,
      now + s.backoffMs * 2 ** (attempts - 1),
      t.id,
    );
    this.log(`ticket ${t.id} attempt ${attempts} failed (${error})${failed ? ': given up' : ': retried later'}`);
  }
}

function toTicket(r: Row): Ticket {
  return {
    id: r.id,
    title: r.title,
    status: r.status,
    attempts: r.attempts,
    lastError: r.last_error,
    responseStatus: r.response_status,
    reference: r.reference,
    createdBy: r.created_by,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}
