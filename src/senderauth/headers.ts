// Our Authentication-Results header field in the delivered message (RFC 8601): byte-preserving edits of
// the top-level header block only — every Authentication-Results field that claims our authserv-id is
// removed as forged (RFC 8601 §5: "MUST ... remove or rename"), ours goes on top (above the trace fields,
// §5), everything else stays byte for byte. Bounded: only the header block is read, and only the first
// bytes of each Authentication-Results value are parsed for the authserv-id.
import type { HeaderField } from '../mime/edit/structure.ts';
import { countFields, removeFields } from '../mime/edit/remove-fields.ts';

/** Bytes of a value read to find its authserv-id (a huge forged header costs no more than this). */
const ID_SCAN = 2048;

/**
 * The authserv-id of an Authentication-Results value: comments and folding whitespace skipped, then a
 * token or a quoted string (RFC 8601 §2.2). Lower case; null when there is none.
 */
export function authservIdOf(raw: string): string | null {
  const s = raw.slice(0, ID_SCAN);
  let i = 0;
  for (;;) {
    while (i < s.length && /[\s]/.test(s[i])) i++;
    if (s[i] !== '(') break;
    // a comment, possibly nested (RFC 5322 §3.2.2)
    let depth = 0;
    for (; i < s.length; i++) {
      if (s[i] === '\\') i++;
      else if (s[i] === '(') depth++;
      else if (s[i] === ')' && --depth === 0) {
        i++;
        break;
      }
    }
    if (depth > 0) return null;
  }
  if (s[i] === '"') {
    let out = '';
    for (i++; i < s.length && s[i] !== '"'; i++) {
      if (s[i] === '\\') i++;
      out += s[i] ?? '';
    }
    return out.trim().toLowerCase() || null;
  }
  const m = /^[^\s;()"]+/.exec(s.slice(i));
  return m ? m[0].toLowerCase() : null;
}

export interface AuthHeaderEdit {
  bytes: Buffer;
  /** forged fields removed */
  removed: number;
}

/** An Authentication-Results field claiming `authservId` (forged: we did not write it). */
function claims(authservId: string): (f: HeaderField) => boolean {
  const ours = authservId.toLowerCase();
  return (f) => f.key === 'authentication-results' && authservIdOf(f.raw) === ours;
}

/**
 * How many Authentication-Results fields in the message's header claim our authserv-id. `head` may be
 * only the first bytes of the message: when its header block does not end within them, the answer is
 * null (unknown — the caller removes whatever is there rather than guess).
 */
export function countForgedAuthResults(head: Buffer, authservId: string): number | null {
  return countFields(head, claims(authservId));
}

/** The header field line of our Authentication-Results value, as the delivery puts it in front (CRLF). */
export function authResultsField(value: string): Buffer {
  return Buffer.from(`Authentication-Results: ${value.replace(/\r?\n/g, '\r\n')}\r\n`, 'latin1');
}

/**
 * Removes Authentication-Results fields claiming `authservId`; with a `value`, also puts
 * `Authentication-Results: value` on top. Without one, ours is added later, at send time
 * (delivery/signing.ts), from the recorded result: a copy of the message is then needed only when a
 * forged field has to go.
 */
export function applyAuthResults(message: Buffer, value: string | null, authservId: string): AuthHeaderEdit {
  return removeFields(
    message,
    claims(authservId),
    value ? (eol) => Buffer.from(`Authentication-Results: ${value.replace(/\r\n/g, eol)}${eol}`, 'latin1') : undefined,
  );
}
