// Spam verdict header fields: ours (X-Spam-Status, X-Spam-Symbols on spam, policy/antispam.ts) and the
// ones other filters write (SpamAssassin's X-Spam-Flag / -Level / -Score, rspamd's milter X-Spamd-Result
// and X-Rspamd-*). Mailbox rules downstream act on them, so when our rspamd stage has judged a message,
// such fields that came with it are someone else's claim — a spammer's "X-Spam-Flag: NO" — and go.
import type { HeaderField } from '../mime/edit/structure.ts';

export function isSpamVerdictField(f: HeaderField): boolean {
  // X-Spam, X-Spam-*, X-Spamd-*, X-Rspamd-*; not a field that merely starts with the letters (X-Spamming)
  return /^x-(?:spam(?:$|-|d-)|rspamd-)/.test(f.key);
}
