// The Microsoft Graph back end of mailbox remediation (Microsoft 365). An app-only token comes from the
// OAuth 2.0 client credentials grant (Microsoft identity platform, "client credentials flow": a client
// secret, or a certificate's signed client assertion, RFC 7523 §2.2), requested here with fetch rather
// than through MSAL (docs/decisions/0003-graph-client-credentials.md). Then per message, as Microsoft's
// Graph v1.0 reference describes:
//   GET    /users/{id}/messages?$filter=internetMessageId eq '<…>'   find it (every folder)
//   GET    /users/{id}/messages/{message-id}/$value                  its MIME, to forward through our queue
//   POST   /users/{id}/messages/{message-id}/move                   to Deleted Items ({destinationId})
//   DELETE /users/{id}/messages/{message-id}                        purge
// Errors are `{ error: { code, message } }`. The app needs the Mail.ReadWrite application permission.
import { createHash, createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RemediationProfileConfig } from '../../config/remediation-schema.ts';
import { RemediationError, type MailboxBackend, type MailboxRequest } from './types.ts';
import { bareMessageId } from './imap.ts';

const b64url = (b: Buffer): string => b.toString('base64url');

export class GraphBackend implements MailboxBackend {
  private readonly profile: RemediationProfileConfig;
  private readonly key: KeyObject | null;
  private token: { value: string; expiresAt: number } | null = null;
  private pending: Promise<string> | null = null;

  constructor(profile: RemediationProfileConfig) {
    this.profile = profile;
    this.key = profile.certificate ? createPrivateKey(readFileSync(profile.certificate.key)) : null;
  }

  private get tokenUrl(): string {
    const base = this.profile.authority.replace(/\/+$/, '');
    return `${base}/${encodeURIComponent(this.profile.tenantId!)}/oauth2/v2.0/token`;
  }

  private get graph(): string {
    return `${this.profile.graphUrl.replace(/\/+$/, '')}/v1.0`;
  }

  /** A certificate credential: a JWT signed with the certificate's key, x5t = its SHA-1 thumbprint. */
  private assertion(): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5t: b64url(Buffer.from(this.profile.certificate!.thumbprint, 'hex')) };
    const claims = {
      aud: this.tokenUrl,
      iss: this.profile.clientId,
      sub: this.profile.clientId,
      jti: randomUUID(),
      nbf: now,
      iat: now,
      exp: now + 600,
    };
    const input = `${b64url(Buffer.from(JSON.stringify(header)))}.${b64url(Buffer.from(JSON.stringify(claims)))}`;
    return `${input}.${b64url(sign('sha256', Buffer.from(input), this.key!))}`;
  }

  /** The app-only token, cached until a minute before it expires. */
  private async accessToken(signal: AbortSignal): Promise<string> {
    if (this.token && this.token.expiresAt > Date.now() + 60_000) return this.token.value;
    this.pending ??= this.requestToken(signal).finally(() => (this.pending = null));
    return this.pending;
  }

  private async requestToken(signal: AbortSignal): Promise<string> {
    const p = this.profile;
    const form = new URLSearchParams({
      client_id: p.clientId!,
      scope: `${new URL(p.graphUrl).origin}/.default`,
      grant_type: 'client_credentials',
    });
    if (this.key) {
      form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      form.set('client_assertion', this.assertion());
    } else form.set('client_secret', p.clientSecret!);
    const res = await this.fetch(this.tokenUrl, { method: 'POST', body: form, signal });
    const body = (await res.json().catch(() => ({}))) as {
      access_token?: string;
      expires_in?: number;
      error?: string;
      error_description?: string;
    };
    if (!res.ok || !body.access_token) {
      const why = `token endpoint ${res.status}: ${String(body.error ?? '')} ${String(body.error_description ?? '')}`;
      // 4xx: the tenant, client id, secret or certificate is wrong (AADSTS7000215, AADSTS700016, …)
      throw new RemediationError(res.status >= 400 && res.status < 500 ? 'auth_failed' : 'error', why.slice(0, 300));
    }
    this.token = { value: body.access_token, expiresAt: Date.now() + Number(body.expires_in ?? 3600) * 1000 };
    return body.access_token;
  }

  private async fetch(url: string, init: RequestInit & { signal: AbortSignal }): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (err) {
      if (init.signal.aborted) throw new RemediationError('timeout', 'no answer in time');
      throw new RemediationError('error', `${new URL(url).host}: ${String((err as Error).cause ?? err)}`.slice(0, 200));
    }
  }

  /** One Graph call; a failure becomes a stable reason (`notFound`: what a 404 means here). */
  private async call(
    method: string,
    path: string,
    signal: AbortSignal,
    notFound: 'mailbox_not_found' | 'message_not_found',
    body?: unknown,
  ): Promise<Response> {
    const token = await this.accessToken(signal);
    const res = await this.fetch(`${this.graph}${path}`, {
      method,
      signal,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.ok) return res;
    const err = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
    const detail = `${method} ${path.split('?')[0]}: ${res.status} ${err.error?.code ?? ''} ${err.error?.message ?? ''}`
      .trim()
      .slice(0, 300);
    if (res.status === 401) {
      this.token = null; // expired or revoked: the next attempt asks for a new one
      throw new RemediationError('auth_failed', detail);
    }
    // 403: the app lacks Mail.ReadWrite, or an application access policy keeps it out of this mailbox
    if (res.status === 403) throw new RemediationError('auth_failed', detail);
    if (res.status === 404) throw new RemediationError(notFound, detail);
    throw new RemediationError('error', detail);
  }

  async remediate(req: MailboxRequest): Promise<void> {
    const user = `/users/${encodeURIComponent(req.mailbox)}`;
    const move = (this.profile.deleteMode ?? 'move-to-deleted-items') === 'move-to-deleted-items';
    let deletedItems: string | null = null;
    for (const it of req.items) {
      const id = `<${bareMessageId(it.messageId)}>`;
      // OData string literal: a quote is doubled
      const filter = `internetMessageId eq '${id.replace(/'/g, "''")}'`;
      const res = await this.call(
        'GET',
        `${user}/messages?$filter=${encodeURIComponent(filter)}&$select=id,parentFolderId`,
        req.signal,
        'mailbox_not_found',
      );
      let found = ((await res.json()) as { value?: Array<{ id: string; parentFolderId?: string }> }).value ?? [];
      if (move && found.length) {
        // A message already in Deleted Items is already deleted (and is not forwarded from there).
        deletedItems ??= (
          (await (
            await this.call('GET', `${user}/mailFolders/deleteditems?$select=id`, req.signal, 'mailbox_not_found')
          ).json()) as { id: string }
        ).id;
        found = found.filter((m) => m.parentFolderId !== deletedItems);
      }
      if (!found.length) continue; // not there (or done by an earlier attempt: item.found says)
      try {
        if (req.action !== 'delete' && it.forwardMid === null) {
          const mime = await this.call(
            'GET',
            `${user}/messages/${encodeURIComponent(found[0].id)}/$value`,
            req.signal,
            'message_not_found',
          );
          await req.forward(it, Buffer.from(await mime.arrayBuffer()));
        }
        if (req.action !== 'forward')
          for (const m of found) {
            const path = `${user}/messages/${encodeURIComponent(m.id)}`;
            if (move)
              await this.call('POST', `${path}/move`, req.signal, 'message_not_found', {
                destinationId: 'deleteditems',
              });
            else await this.call('DELETE', path, req.signal, 'message_not_found');
          }
      } catch (err) {
        // Gone between the search and the action (the user deleted it meanwhile): this item only.
        if (err instanceof RemediationError && err.reason === 'message_not_found') continue;
        throw err;
      }
      it.found = true;
    }
  }
}

/** The SHA-1 thumbprint of a PEM certificate, as Microsoft Entra shows it (for docs and tests). */
export function certificateThumbprint(pem: string): string {
  const der = Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, ''), 'base64');
  return createHash('sha1').update(der).digest('hex').toUpperCase();
}
