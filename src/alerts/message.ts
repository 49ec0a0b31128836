// The alert e-mail: one RFC 5322 message (RFC 2045 MIME, RFC 2047 encoded subject, RFC 3834
// Auto-Submitted) built from a recorded alert. No I/O; every header value is made single-line here.
import { randomBytes } from 'node:crypto';
import type { Alert } from './types.ts';

export interface AlertMessageInput {
  alert: Alert;
  from: string;
  recipients: string[];
  hostname: string;
}

/** RFC 5322 §2.1.1: lines SHOULD be at most 78 characters (MUST be at most 998). */
const FOLD_AT = 78;

/** Control characters, including Unicode line and paragraph separators, become one space. */
export function singleLine(s: string): string {
  return s
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim();
}

/** An addr-spec that is safe to put in a header and an SMTP envelope, or null. */
export function safeAddress(s: string): string | null {
  const a = s.trim();
  if (!/^[^\s<>()[\]\\,;:"@\u0000-\u001f\u007f]+@[A-Za-z0-9.-]+$/.test(a)) return null;
  if (a.length > 254) return null;
  return a;
}

/** A host name fit for Message-ID and the body; anything else becomes "localhost". */
export function safeHostname(s: string): string {
  return /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(s) ? s : 'localhost';
}

/** RFC 5322 §3.3 date-time in UTC. */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

const isPrintableAscii = (s: string) => /^[\x20-\x7e]*$/.test(s);

/** Folds an ASCII header line at spaces (RFC 5322 §2.2.3); `name` is the "Name: " prefix length. */
function foldAscii(value: string, prefixLength: number): string {
  const words = value.split(' ');
  let out = '';
  let lineLength = prefixLength;
  for (const [i, w] of words.entries()) {
    if (i === 0) {
      out = w;
      lineLength += w.length;
    } else if (lineLength + 1 + w.length > FOLD_AT && lineLength > prefixLength) {
      out += '\r\n ' + w;
      lineLength = 1 + w.length;
    } else {
      out += ' ' + w;
      lineLength += 1 + w.length;
    }
  }
  return out;
}

/**
 * RFC 2047 encoded-words ("B" encoding, UTF-8), each at most 75 characters and on its own line of at most
 * 78, never splitting a character, separated by folding white space. `used` is what precedes the first one.
 */
function encodeWords(value: string, used: number): string {
  const overhead = '=?utf-8?B??='.length;
  const bytesFor = (width: number) => Math.floor((Math.min(75, width) - overhead) / 4) * 3;
  const words: string[] = [];
  let chunk: Buffer[] = [];
  let size = 0;
  let maxBytes = bytesFor(FOLD_AT - used);
  const flush = () => {
    if (!size) return;
    words.push(`=?utf-8?B?${Buffer.concat(chunk).toString('base64')}?=`);
    chunk = [];
    size = 0;
    maxBytes = bytesFor(FOLD_AT - 1);
  };
  for (const ch of value) {
    const b = Buffer.from(ch, 'utf8');
    if (size + b.length > maxBytes) flush();
    chunk.push(b);
    size += b.length;
  }
  flush();
  return words.join('\r\n ');
}

/** An unstructured header field (RFC 5322 §3.2.5) from any text: single line, folded, encoded if needed. */
export function unstructuredHeader(name: string, value: string): string {
  const v = singleLine(value);
  if (isPrintableAscii(v) && !/=\?/.test(v)) return `${name}: ${foldAscii(v, name.length + 2)}`;
  return `${name}: ${encodeWords(v, name.length + 2)}`;
}

/** Quoted-printable (RFC 2045 §6.7) of CRLF-separated text, lines at most 76 characters. */
export function quotedPrintable(text: string): string {
  return text
    .split('\r\n')
    .map((line) => {
      const bytes = Buffer.from(line, 'utf8');
      const tokens: string[] = [];
      for (let i = 0; i < bytes.length; i++) {
        const c = bytes[i];
        const last = i === bytes.length - 1;
        const literal = (c >= 33 && c <= 126 && c !== 61) || ((c === 32 || c === 9) && !last);
        tokens.push(literal ? String.fromCharCode(c) : `=${c.toString(16).toUpperCase().padStart(2, '0')}`);
      }
      const out: string[] = [];
      let cur = '';
      for (const t of tokens) {
        if (cur.length + t.length > 75) {
          out.push(cur + '=');
          cur = '';
        }
        cur += t;
      }
      out.push(cur);
      return out.join('\r\n');
    })
    .join('\r\n');
}

function normaliseNewlines(s: string): string {
  return s.replace(/\r\n|\r|\n|\u2028|\u2029/g, '\r\n');
}

/** A data value as text: strings as they are, everything else as compact JSON. */
function showValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined) return '';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** The plain-text body: the alert's text, then its details as indented `key: value` lines. */
export function alertBody(alert: Alert, hostname: string): string {
  const lines: string[] = [normaliseNewlines(alert.text).replace(/(\r\n)+$/, ''), '', 'Details:'];
  const detail = (k: string, v: string) => {
    const [first, ...rest] = normaliseNewlines(v).split('\r\n');
    lines.push(`  ${singleLine(k)}: ${first}`, ...rest.map((r) => `    ${r}`));
  };
  for (const [k, v] of Object.entries(alert.data ?? {})) detail(k, showValue(v));
  lines.push(
    '',
    `Alert: #${alert.id} (${alert.class}, ${alert.severity})`,
    `Key: ${singleLine(alert.key)}`,
    `Host: ${hostname}`,
    `Time: ${new Date(alert.at).toISOString()}`,
    '',
    '-- ',
    'This message was generated automatically by Breakwater.',
  );
  return lines.join('\r\n') + '\r\n';
}

export function alertSubject(alert: Pick<Alert, 'severity' | 'class' | 'title'>): string {
  return `[Breakwater ${alert.severity}] ${alert.class}: ${singleLine(alert.title)}`;
}

/** The whole message. Recipients and sender must already be checked with safeAddress. */
export function buildAlertMessage(input: AlertMessageInput): Buffer {
  const { alert, from, recipients } = input;
  const host = safeHostname(input.hostname);
  const body = alertBody(alert, host);
  const sevenBit = /^[\t\r\n\x20-\x7e]*$/.test(body) && body.split('\r\n').every((l) => l.length <= 998);
  const headers = [
    `Date: ${rfc5322Date(alert.at)}`,
    `From: Breakwater <${from}>`,
    `To: ${recipients.join(',\r\n ')}`,
    unstructuredHeader('Subject', alertSubject(alert)),
    `Message-ID: <alert-${alert.id}.${randomBytes(8).toString('hex')}@${host}>`,
    // RFC 3834 §5: keeps vacation responders and other automatic replies away.
    'Auto-Submitted: auto-generated',
    'X-Auto-Response-Suppress: All',
    `X-Breakwater-Alert: ${alert.class}; severity=${alert.severity}; id=${alert.id}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${sevenBit ? '7bit' : 'quoted-printable'}`,
  ];
  return Buffer.from(headers.join('\r\n') + '\r\n\r\n' + (sevenBit ? body : quotedPrintable(body)), 'utf8');
}
