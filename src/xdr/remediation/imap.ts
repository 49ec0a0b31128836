// The IMAP back end of mailbox remediation: one session per mailbox, logged in as the recipient through
// a master user (Dovecot's auth_master_user_separator, "user*master"; or SASL PLAIN with an
// authorization identity, RFC 4616 §2), every folder searched by Message-ID (RFC 9051 §6.4.4 SEARCH
// HEADER), the message forwarded (its source, RFC 9051 §6.4.5 BODY[]) and deleted (\Deleted and UID
// EXPUNGE, RFC 9051 §6.4.9) or moved to the trash folder (RFC 6851 MOVE). Client: imapflow.
import { readFileSync } from 'node:fs';
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import type { RemediationProfileConfig } from '../../config/remediation-schema.ts';
import { RemediationError, type MailboxBackend, type MailboxRequest } from './types.ts';

/** Message-IDs per OR-ed SEARCH command (a long search line is refused by some servers). */
const SEARCH_CHUNK = 50;

/** The bare id: no angle brackets, no blanks. */
export function bareMessageId(id: string): string {
  return id.trim().replace(/^<|>$/g, '').trim();
}

/** The Message-ID in a raw header block ("Message-ID: <x@y>\r\n", possibly folded). */
function headerMessageId(raw: Buffer | undefined): string | null {
  if (!raw) return null;
  const m = /^message-id:\s*([\s\S]*)$/im.exec(raw.toString('latin1').replace(/\r?\n[ \t]+/g, ' '));
  return m ? bareMessageId(m[1].split(/\r?\n/)[0]) : null;
}

export class ImapBackend implements MailboxBackend {
  private readonly profile: RemediationProfileConfig;
  private readonly timeoutMs: number;
  private readonly ca: Buffer | undefined;

  constructor(profile: RemediationProfileConfig, timeoutMs: number) {
    this.profile = profile;
    this.timeoutMs = timeoutMs;
    this.ca = profile.ca ? readFileSync(profile.ca) : undefined;
  }

  private options(mailbox: string): ImapFlowOptions {
    const p = this.profile;
    const tls = p.tls;
    return {
      host: p.host!,
      port: p.port ?? (tls === 'implicit' ? 993 : 143),
      secure: tls === 'implicit',
      doSTARTTLS: tls === 'starttls' ? true : tls === 'none' ? false : undefined,
      tls: { rejectUnauthorized: p.rejectUnauthorized, ...(this.ca ? { ca: this.ca } : {}), servername: p.host },
      auth:
        p.login === 'authzid'
          ? { user: p.masterUser!, pass: p.masterPassword!, authzid: mailbox, loginMethod: 'AUTH=PLAIN' }
          : { user: `${mailbox}${p.separator}${p.masterUser!}`, pass: p.masterPassword! },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: this.timeoutMs,
      greetingTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs,
    };
  }

  async remediate(req: MailboxRequest): Promise<void> {
    const client = new ImapFlow(this.options(req.mailbox));
    client.on('error', () => {}); // reported through the pending command
    const abort = (): void => client.close();
    req.signal.addEventListener('abort', abort);
    try {
      try {
        await client.connect();
      } catch (err) {
        throw classify(err, req.signal, 'login');
      }
      try {
        await this.inSession(client, req);
      } catch (err) {
        throw classify(err, req.signal, 'session');
      }
    } finally {
      req.signal.removeEventListener('abort', abort);
      if (client.usable) await client.logout().catch(() => client.close());
      else client.close();
    }
  }

  private async inSession(client: ImapFlow, req: MailboxRequest): Promise<void> {
    const p = this.profile;
    const move = p.deleteMode === 'move-to-deleted-items';
    const deleting = req.action !== 'forward';
    const boxes = await client.list();
    const trash = p.trash ?? boxes.find((b) => b.specialUse === '\\Trash')?.path ?? 'Trash';
    const wanted = p.folders ? new Set(p.folders) : null;
    const folders = boxes
      .filter((b) => !b.flags.has('\\Noselect') && !b.flags.has('\\NonExistent'))
      .filter((b) => (wanted ? wanted.has(b.path) : true))
      // a message already moved to the trash is already deleted (and is not forwarded from there)
      .filter((b) => !(move && b.path === trash))
      .map((b) => b.path);

    const byId = new Map<string, number[]>();
    req.items.forEach((it, i) => {
      const id = bareMessageId(it.messageId);
      byId.set(id, [...(byId.get(id) ?? []), i]);
    });
    const ids = [...byId.keys()];
    for (const folder of folders) {
      const lock = await client.getMailboxLock(folder);
      try {
        if (!(client.mailbox && client.mailbox.exists > 0)) continue;
        const hits = new Map<number, number[]>(); // uid → item indexes
        for (let i = 0; i < ids.length; i += SEARCH_CHUNK) {
          const chunk = ids.slice(i, i + SEARCH_CHUNK);
          const query =
            chunk.length === 1
              ? { header: { 'message-id': chunk[0] } }
              : { or: chunk.map((id) => ({ header: { 'message-id': id } })) };
          const uids = (await client.search(query, { uid: true })) || [];
          if (!uids.length) continue;
          // HEADER is a substring match (RFC 9051 §6.4.4): keep exact Message-IDs only.
          for await (const m of client.fetch(uids, { uid: true, headers: ['message-id'] }, { uid: true })) {
            const items = byId.get(headerMessageId(m.headers) ?? '');
            if (items) hits.set(m.uid, items);
          }
        }
        if (!hits.size) continue;
        if (req.action !== 'delete')
          for (const [uid, items] of hits)
            for (const i of items) {
              if (req.items[i].forwardMid !== null) continue;
              const msg = await client.fetchOne(String(uid), { source: true }, { uid: true });
              if (!msg || !msg.source) continue;
              await req.forward(req.items[i], msg.source);
            }
        if (deleting) {
          const uids = [...hits.keys()];
          if (move) {
            if (!(await client.messageMove(uids, trash, { uid: true })))
              throw new RemediationError('error', `could not move to ${trash}`);
          } else if (!(await client.messageDelete(uids, { uid: true })))
            throw new RemediationError('error', `could not expunge in ${folder}`);
        }
        for (const items of hits.values()) for (const i of items) req.items[i].found = true;
      } finally {
        lock.release();
      }
    }
  }
}

/** An imapflow failure as a stable reason (the server's text is kept; our credentials never are in it). */
function classify(err: unknown, signal: AbortSignal, stage: 'login' | 'session'): RemediationError {
  if (err instanceof RemediationError) return err;
  const e = err as {
    message?: string;
    code?: string;
    authenticationFailed?: boolean;
    serverResponseCode?: string;
    responseText?: string;
  };
  if (signal.aborted) return new RemediationError('timeout', `no answer in time (${stage})`);
  const text = String(e.responseText ?? e.message ?? err).slice(0, 200);
  if (/timeout/i.test(String(e.code ?? '')) || /timed? ?out/i.test(String(e.message ?? '')))
    return new RemediationError('timeout', text);
  // Dovecot: AUTHORIZATIONFAILED when the master user logs in but may not become (or there is no) such user.
  if (e.serverResponseCode === 'AUTHORIZATIONFAILED') return new RemediationError('mailbox_not_found', text);
  if (e.authenticationFailed || e.serverResponseCode === 'AUTHENTICATIONFAILED')
    return new RemediationError('auth_failed', text);
  return new RemediationError('error', `${e.code ? e.code + ' ' : ''}${text}`);
}
