// Header fields written by message modification: the tagged Subject, the fields added on top
// (X-Breakwater-Outbreak-*), and the DKIM facts that decide whether the Subject may change.
import { isUtf8 } from 'node:buffer';
import { libmime } from '../deps.ts';
import { isAscii } from './encoding.ts';
import { unfold, type HeaderField } from './structure.ts';

interface LibmimeWords {
  decodeWords(value: string): string;
  encodeWords(value: string, encoding: 'Q' | 'B', maxLength?: number): string;
  encodeWord(value: string, encoding: 'Q' | 'B', maxLength?: number): string;
}

const words = libmime as unknown as LibmimeWords;

/** Header lines are folded to stay within this many characters (RFC 5322 §2.1.1). */
export const FOLD_AT = 78;
/** encoded-words are split so that each fits a folded line */
const ENCODED_WORD_MAX = 52;
/** subjects longer than this (raw) are not decoded: the tag is added to the raw value */
const MAX_DECODED_SUBJECT = 16 * 1024;

/** field names: printable ASCII except colon (RFC 5322 §3.6.8) */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

export function isFieldName(name: string): boolean {
  return FIELD_NAME.test(name);
}

/**
 * Folds `name: value` at spaces so that lines stay within FOLD_AT where the value allows it
 * (a single longer word stays whole). Folding only inserts line breaks in front of existing
 * spaces, so unfolding gives the value back.
 */
export function foldField(name: string, value: string, eol: string): string {
  const first = `${name}: `;
  if (first.length + value.length <= FOLD_AT) {
    return first + value + eol;
  }
  const tokens = value.split(' ');
  const lines: string[] = [];
  let line = first + tokens[0];
  for (let i = 1; i < tokens.length; i++) {
    const token = tokens[i];
    if (line.length + 1 + token.length > FOLD_AT && line.trim().length > 0 && token.length > 0) {
      lines.push(line);
      line = ' ' + token;
    } else {
      line += ' ' + token;
    }
  }
  lines.push(line);
  return lines.join(eol) + eol;
}

/** A header value made safe to write: no line breaks or controls; non-ASCII as encoded-words. */
export function headerValue(value: string): string {
  const flat = value
    .replace(/[\r\n]+/g, ' ')
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '')
    .trim();
  if (isAscii(flat) && !looksEncoded(flat)) {
    return flat;
  }
  try {
    return isAscii(flat)
      ? words.encodeWord(flat, 'Q', ENCODED_WORD_MAX)
      : words.encodeWords(flat, pickEncoding(flat), ENCODED_WORD_MAX);
  } catch {
    return flat.replace(/[^\x20-\x7e]/g, '?');
  }
}

/** an ASCII value that a reader would take for an RFC 2047 encoded-word */
function looksEncoded(value: string): boolean {
  return /=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=/.test(value);
}

function pickEncoding(value: string): 'Q' | 'B' {
  const nonAscii = value.replace(/[\x00-\x7f]/g, '').length;
  return nonAscii * 2 > value.length ? 'B' : 'Q';
}

/** The decoded text of a raw Subject value (RFC 2047 words decoded, raw UTF-8 accepted). */
export function decodeSubject(raw: string): string {
  let value = unfold(raw);
  if (/[^\x00-\x7f]/.test(value)) {
    const bytes = Buffer.from(value, 'latin1');
    value = isUtf8(bytes) ? bytes.toString('utf8') : value;
  }
  if (value.indexOf('=?') < 0) {
    return value;
  }
  try {
    return words.decodeWords(value);
  } catch {
    return value;
  }
}

function joinTag(mode: 'prepend' | 'append', tag: string, subject: string): string {
  if (!subject) {
    return tag.trim();
  }
  if (mode === 'prepend') {
    return /\s$/.test(tag) ? tag + subject : `${tag} ${subject}`;
  }
  return /^\s/.test(tag) ? subject + tag : `${subject} ${tag}`;
}

export interface SubjectChange {
  /** the new field, line break included; null when the subject already carries the tag */
  field: string | null;
}

/**
 * The tagged Subject field for an existing field. The value is decoded, tagged, and written
 * as plain ASCII when it is ASCII, else re-encoded as UTF-8 encoded-words (only the words
 * that need it). A subject that already starts (prepend) or ends (append) with the tag is left alone.
 */
export function tagSubject(
  field: HeaderField,
  s: string,
  mode: 'prepend' | 'append',
  tagText: string,
  eol: string,
): SubjectChange {
  const colon = s.indexOf(':', field.start);
  const name = s.slice(field.start, colon).trimEnd();
  const tag = tagText.replace(/[\r\n]+/g, ' ');
  if (field.raw.length > MAX_DECODED_SUBJECT) {
    // too long to decode: add the tag to the raw value, which keeps any encoded-words valid
    return { field: foldField(name, joinTag(mode, headerValue(tag), unfold(field.raw)), eol) };
  }
  const current = decodeSubject(field.raw);
  const trimmedTag = tag.trim();
  if (
    trimmedTag &&
    (mode === 'prepend' ? current.trimStart().startsWith(trimmedTag) : current.trimEnd().endsWith(trimmedTag))
  ) {
    return { field: null };
  }
  const value = joinTag(mode, tag, current);
  return { field: foldField(name, headerValue(value), eol) };
}

/** A Subject field for a message that has none. */
export function newSubject(tagText: string, eol: string): string {
  return foldField('Subject', headerValue(tagText), eol);
}

/**
 * What the DKIM signatures of a header block cover: true when any signature signs the Subject
 * field (its h= tag names it) or cannot be read.
 */
export function dkimSignsSubject(fields: readonly HeaderField[]): boolean {
  for (const f of fields) {
    if (f.key !== 'dkim-signature') {
      continue;
    }
    const value = unfold(f.raw).replace(/\s+/g, '');
    const h = /(?:^|;)h=([^;]*)/i.exec(value);
    if (!h) {
      return true;
    }
    if (
      h[1]
        .toLowerCase()
        .split(':')
        .some((name) => name === 'subject')
    ) {
      return true;
    }
  }
  return false;
}
