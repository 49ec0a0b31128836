// Removing top-level header fields byte for byte (forged Authentication-Results, forged X-Spam-*): only
// the header block is parsed, everything else — other fields, their folding, the body — stays as it came.
import { parseHeaderBlock, type HeaderField } from './structure.ts';

/** A message's top-level header block: where it ends (after its empty line), its line ending, its text. */
export interface TopHeader {
  end: number;
  eol: string;
  /** the block as latin1 text (byte offsets = string offsets) */
  text: string;
  /** false: no empty line within the bytes given (a truncated read, or a message that is all header) */
  complete: boolean;
}

export function topHeader(message: Buffer): TopHeader {
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  const ends = [crlf >= 0 ? crlf + 4 : -1, lf >= 0 ? lf + 2 : -1].filter((n) => n >= 0);
  const end = ends.length ? Math.min(...ends) : message.length;
  const text = message.subarray(0, end).toString('latin1');
  const eol = text.includes('\r\n') || !text.includes('\n') ? '\r\n' : '\n';
  return { end, eol, text, complete: ends.length > 0 };
}

/** The top-level fields `match` picks. */
export function matchingFields(header: TopHeader, match: (f: HeaderField) => boolean): HeaderField[] {
  return parseHeaderBlock(header.text, 0, header.text.length).fields.filter(match);
}

/**
 * How many top-level fields `match` picks. `head` may be only the first bytes of the message: when its
 * header block does not end within them the answer is null (unknown — remove rather than guess).
 */
export function countFields(head: Buffer, match: (f: HeaderField) => boolean): number | null {
  const header = topHeader(head);
  return header.complete ? matchingFields(header, match).length : null;
}

/** The message without the top-level fields `match` picks, with `first` (if any) put on top. */
export function removeFields(
  message: Buffer,
  match: (f: HeaderField) => boolean,
  first?: (eol: string) => Buffer,
): { bytes: Buffer; removed: number } {
  const header = topHeader(message);
  const drop = matchingFields(header, match);
  const parts: Buffer[] = first ? [first(header.eol)] : [];
  let pos = 0;
  for (const f of drop) {
    parts.push(message.subarray(pos, f.start));
    pos = f.end;
  }
  parts.push(message.subarray(pos));
  return { bytes: Buffer.concat(parts), removed: drop.length };
}
