// End-user sign-in with mailbox credentials (endUserQuarantine.imap): the address and password are
// checked by an IMAP LOGIN against the site's mail server (as Cisco's spam quarantine and Proxmox do
// with IMAP/POP or LDAP), and nothing is kept: the password is used once and dropped.
import { ImapFlow } from 'imapflow';
import type { Config } from '../config/schema.ts';

export type ImapLoginResult = { ok: true; address: string } | { ok: false; reason: 'refused' | 'unavailable' };

const TIMEOUT_MS = 10_000;

export async function imapLogin(config: Config, user: string, password: string): Promise<ImapLoginResult> {
  const imap = config.endUserQuarantine.imap;
  if (!imap) return { ok: false, reason: 'unavailable' };
  const login = user.trim();
  const address = (login.includes('@') || !imap.domain ? login : `${login}@${imap.domain}`).toLowerCase();
  const client = new ImapFlow({
    host: imap.host,
    port: imap.port,
    secure: imap.secure,
    auth: { user: login, pass: password },
    tls: { rejectUnauthorized: imap.rejectUnauthorized },
    logger: false,
    connectionTimeout: TIMEOUT_MS,
    greetingTimeout: TIMEOUT_MS,
    socketTimeout: TIMEOUT_MS,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return { ok: true, address };
  } catch (err) {
    // imapflow marks a refused LOGIN (NO / authenticationFailed); anything else is the server's state
    const e = err as { authenticationFailed?: boolean; responseStatus?: string };
    return { ok: false, reason: e.authenticationFailed || e.responseStatus === 'NO' ? 'refused' : 'unavailable' };
  } finally {
    await client.logout().catch(() => client.close());
  }
}
