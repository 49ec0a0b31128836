// Our Authentication-Results header field in the delivered message (RFC 8601): byte-preserving edits of
// the top-level header block only — every Authentication-Results field that claims our authserv-id is
// removed as forged (RFC 8601 §5: "MUST ... remove or rename"), ours goes on top (above the trace fields,
// §5), everything else stays byte for byte. Bounded: only the header block is read, and only the first
// bytes of each Authentication-Results value are parsed for the authserv-id.
import { parseHeaderBlock } from '../mime/edit/structure.ts';

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

/** Removes Authentication-Results fields claiming `authservId` and puts `Authentication-Results: value` on top. */
export function applyAuthResults(message: Buffer, value: string, authservId: string): AuthHeaderEdit {
  const ours = authservId.toLowerCase();
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  const ends = [crlf >= 0 ? crlf + 4 : -1, lf >= 0 ? lf + 2 : -1].filter((n) => n >= 0);
  const headEnd = ends.length ? Math.min(...ends) : message.length;
  const head = message.subarray(0, headEnd).toString('latin1');
  const eol = head.includes('\r\n') || !head.includes('\n') ? '\r\n' : '\n';
  const block = parseHeaderBlock(head, 0, head.length);
  const drop = block.fields.filter((f) => f.key === 'authentication-results' && authservIdOf(f.raw) === ours);
  const field = Buffer.from(`Authentication-Results: ${value.replace(/\r\n/g, eol)}${eol}`, 'latin1');
  const parts: Buffer[] = [field];
  let pos = 0;
  for (const f of drop) {
    parts.push(message.subarray(pos, f.start));
    pos = f.end;
  }
  parts.push(message.subarray(pos));
  return { bytes: Buffer.concat(parts), removed: drop.length };
}
