// Message modification for Outbreak Filters (DESIGN §4.4–4.6): subject tag, X-Breakwater
// header fields, disclaimer above the body and click-time URL rewriting, applied in one pass
// over the whole message (at most maxScanSize, 2 MiB, so it is held in memory).
//
// Only what changes is rewritten (STYLE "Messages and bytes"): the result is the original
// bytes with a few spans replaced — header fields that are added, removed or retagged, and
// the bodies (plus Content-Type / Content-Transfer-Encoding fields where needed) of the text
// parts that get a disclaimer or rewritten links. Every other byte — other header fields and
// their order, attachments, boundaries, preamble and epilogue, line endings — is copied.
//
// Decisions:
// - Signed mail and urlRewriting `unsigned` (the default): a message with a DKIM-Signature,
//   a multipart/signed part (S/MIME or PGP/MIME), S/MIME signed-data or an inline PGP signed
//   text is left as the signer sent it: no disclaimer, no rewritten links, and no subject tag
//   when the Subject is covered (a DKIM signature whose h= names Subject, or an S/MIME / PGP
//   signature, whose clients compare protected headers). Our own X-Breakwater-* fields are
//   still added on top (no signature covers them) and spoofed copies removed.
//   With `all` everything is modified, signatures or not; with `off` links are left alone and
//   the subject tag and disclaimer are applied whatever the signatures, unless the caller
//   asks for the protection explicitly (protectSigned, e.g. `unsigned` without a click-time
//   service).
// - Body parts: links are rewritten in every inline text/plain and text/html part outside
//   attachments (Content-Disposition other than inline, or a file name) and outside attached
//   messages. The disclaimer goes "above the body": into the parts a client shows first — the
//   first body of multipart/mixed, every alternative of multipart/alternative, the root of
//   multipart/related, the signed content of multipart/signed.
// - Charsets: the part keeps its charset when it can represent the disclaimer. Otherwise an
//   HTML part gets the disclaimer's non-ASCII characters as character references (same
//   rendering, charset and any <meta charset> untouched) and a text part is converted to
//   UTF-8 with its charset parameter updated. Charsets that can only be decoded (ISO-2022-JP)
//   are converted to UTF-8 when the part changes.
// - Structure that parsers are known to read differently (see modify/mime.ts) leaves the body
//   alone: only header fields change and rewriteSkipped / disclaimerSkipped say 'unparsable'.
// - Running twice changes nothing more: own links are not wrapped again, a subject that
//   already carries the tag and a part that already starts with the disclaimer are left as
//   they are. Links are rewritten before the disclaimer goes in, so its links stay as written.
// - Links: href of <a>/<area> (comments included: Outlook renders conditional comments) that
//   lead to http(s) after entity decoding and whitespace removal, "//host" read as https;
//   bare http(s) URLs in text. Unknown transfer encodings are read and written as is, the way
//   mailsplit and mailparser show them.
import { encodeBase64, encodeQuotedPrintable, bufferIsAscii, linesFit, textCodec } from '../mime/edit/encoding.ts';
import { transferDecode, transferKind, type EncodedText } from '../mime/edit/encoding.ts';
import { dkimSignsSubject, foldField, headerValue, isFieldName, newSubject, tagSubject } from '../mime/edit/headers.ts';
import { charsetOf, firstField, lineBreakOf, unfold, walkMessage } from '../mime/edit/structure.ts';
import type { MimeNode, StructureNote } from '../mime/edit/structure.ts';
import {
  CallbackError,
  LinkRewriter,
  asciiHtml,
  insertHtmlDisclaimer,
  insertTextDisclaimer,
} from './modify/rewrite.ts';
import { retargetMetaCharset, rewriteHtmlLinks, rewriteTextLinks, textLineBreak } from './modify/rewrite.ts';

export interface ModifyOptions {
  /** already rendered subject tag; US-ASCII */
  subject?: { mode: 'prepend' | 'append'; text: string };
  /**
   * header fields to add at the top of the header block (e.g. X-Breakwater-Outbreak-Status);
   * values are ASCII, folded if > 78 chars. Fields of the same name already in the message
   * are removed, so that a sender cannot forge them.
   */
  addHeaders?: Array<{ name: string; value: string }>;
  /** further field names removed from the message without a replacement (e.g. X-Breakwater-Outbreak-Description) */
  removeHeaders?: string[];
  /** disclaimer inserted above the body: text for text/plain parts, html for text/html parts (already rendered; html is trusted markup) */
  disclaimer?: { text: string; html: string };
  /**
   * Leave signed messages as the signer sent them (no subject tag when the Subject is signed,
   * no disclaimer, no rewriting; our header fields still go on top). Defaults to
   * `rewrite.mode === 'unsigned'`; pass it when rewriting is off or unavailable (no click-time
   * service) but the policy's `unsigned` setting should still protect signatures.
   */
  protectSigned?: boolean;
  /** URL rewriting */
  rewrite?: {
    mode: 'unsigned' | 'all' | 'off';
    /** domains (and their subdomains) or IP literals never rewritten */
    bypassDomains: string[];
    /** returns the rewritten link for an original URL */
    wrap: (url: string) => string;
    /** true for links that already point at our click-time service (never wrapped twice) */
    isOwnLink: (url: string) => boolean;
  };
}

export type SignatureKind = 'dkim' | 'smime' | 'pgp';

export type ModifyNote =
  | StructureNote
  /** the header block never ends: the message has no body */
  | 'no_body'
  /** a modified part declares a transfer encoding other than base64, quoted-printable, 7bit, 8bit, binary (read and written as is) */
  | 'unknown_transfer_encoding'
  /** a part was converted to UTF-8 */
  | 'charset_converted'
  /** a 7bit/8bit part was switched to quoted-printable (8-bit data or over-long lines) */
  | 'transfer_encoding_changed'
  /** a text part in an unknown charset could not take a non-ASCII disclaimer */
  | 'disclaimer_charset_unknown'
  /** more URLs were rewritten than rewrittenUrls lists */
  | 'url_list_truncated'
  /** an internal error: only header fields were changed (or nothing, see changed) */
  | 'internal_error';

export interface ModifyResult {
  bytes: Buffer;
  changed: boolean;
  subjectChanged: boolean;
  /** parts that got the disclaimer */
  disclaimerParts: number;
  /** original URLs that were rewritten (deduplicated, bounded) */
  rewrittenUrls: string[];
  /** why rewriting did not happen: signed message in `unsigned` mode, mode off, or a body that could not be parsed safely */
  rewriteSkipped: null | 'signed' | 'off' | 'unparsable';
  /** why a requested subject tag was not applied */
  subjectSkipped: null | 'signed' | 'already-tagged';
  /** why a requested disclaimer was not inserted anywhere */
  disclaimerSkipped: null | 'signed' | 'unparsable' | 'no-body-part';
  /** signatures found on the message, whatever the mode */
  signatures: SignatureKind[];
  notes: ModifyNote[];
}

/** most URLs listed in rewrittenUrls */
export const MAX_LISTED_URLS = 1000;

/** fields the modification itself writes; they cannot be added through addHeaders */
const RESERVED_FIELDS = new Set(['subject', 'content-type', 'content-transfer-encoding', 'mime-version']);

const KNOWN_IDENTITY = new Set(['7bit', '8bit', 'binary']);

const PGP_SIGNED = '-----BEGIN PGP SIGNED MESSAGE-----';

interface Edit {
  start: number;
  end: number;
  data: Buffer | string;
  seq: number;
}

interface Job {
  bytes: Buffer;
  /** latin1 view of bytes: one character per byte */
  s: string;
  eol: '\r\n' | '\n';
  edits: Edit[];
  notes: Set<ModifyNote>;
}

function addEdit(job: Job, start: number, end: number, data: Buffer | string): void {
  job.edits.push({ start, end, data, seq: job.edits.length });
}

/** Inserts whole header lines at `at`, starting a new line first when the block lacks a final line break. */
function insertLines(job: Job, at: number, lines: string): void {
  if (!lines) {
    return;
  }
  const needsBreak = at > 0 && job.s.charCodeAt(at - 1) !== 0x0a;
  addEdit(job, at, at, needsBreak ? job.eol + lines : lines);
}

function assemble(job: Job): Buffer {
  if (!job.edits.length) {
    return job.bytes;
  }
  const edits = job.edits.sort((a, b) => a.start - b.start || a.end - b.end || a.seq - b.seq);
  const pieces: Buffer[] = [];
  let cursor = 0;
  for (const e of edits) {
    if (e.start < cursor) {
      // overlapping edits cannot happen by construction; never write a span twice
      continue;
    }
    if (e.start > cursor) {
      pieces.push(job.bytes.subarray(cursor, e.start));
    }
    if (e.data.length) {
      pieces.push(typeof e.data === 'string' ? Buffer.from(e.data, 'latin1') : e.data);
    }
    cursor = e.end;
  }
  if (cursor < job.bytes.length) {
    pieces.push(job.bytes.subarray(cursor));
  }
  return Buffer.concat(pieces);
}

function isAttachment(node: MimeNode): boolean {
  return (node.disposition !== null && node.disposition !== 'inline') || node.filename;
}

function isTextType(node: MimeNode): boolean {
  return node.type === 'text/plain' || node.type === 'text/html';
}

/** Inline text parts outside attachments and attached messages, in document order. */
function bodyTextParts(node: MimeNode, out: MimeNode[]): MimeNode[] {
  if (node.attached || isAttachment(node)) {
    return out;
  }
  if (isTextType(node)) {
    out.push(node);
  }
  if (node.type.startsWith('multipart/')) {
    for (const child of node.children) {
      bodyTextParts(child, out);
    }
  }
  return out;
}

/** The parts a client shows first: where the disclaimer goes. */
function disclaimerParts(node: MimeNode): MimeNode[] {
  if (node.attached || isAttachment(node)) {
    return [];
  }
  if (isTextType(node)) {
    return [node];
  }
  if (!node.type.startsWith('multipart/')) {
    return [];
  }
  const kids = node.children;
  switch (node.type) {
    case 'multipart/alternative':
      return kids.flatMap((k) => disclaimerParts(k));
    case 'multipart/related':
    case 'multipart/signed':
      return kids.length ? disclaimerParts(kids[0]) : [];
    default:
      for (const k of kids) {
        const found = disclaimerParts(k);
        if (found.length) {
          return found;
        }
      }
      return [];
  }
}

function findSignatures(root: MimeNode, decoded: Map<MimeNode, Buffer>): SignatureKind[] {
  const found = new Set<SignatureKind>();
  if (root.header.fields.some((f) => f.key === 'dkim-signature')) {
    found.add('dkim');
  }
  const visit = (node: MimeNode): void => {
    if (node.attached) {
      return;
    }
    if (node.type === 'multipart/signed') {
      found.add(/pgp/i.test(node.params.protocol ?? '') ? 'pgp' : 'smime');
    } else if (node.type === 'application/pkcs7-mime' || node.type === 'application/x-pkcs7-mime') {
      const smimeType = (node.params['smime-type'] ?? '').trim().toLowerCase();
      if (smimeType === 'signed-data') {
        found.add('smime');
      }
    }
    for (const child of node.children) {
      visit(child);
    }
  };
  visit(root);
  for (const data of decoded.values()) {
    if (data.indexOf(PGP_SIGNED, 0, 'latin1') >= 0) {
      found.add('pgp');
      break;
    }
  }
  return [...found];
}

/** Content-Type value with the charset parameter set to `charset` (added when missing). */
function withCharset(value: string, charset: string): string {
  const segments: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '"') {
      quoted = !quoted;
    } else if (c === '\\' && quoted) {
      i++;
    } else if (c === ';' && !quoted) {
      segments.push(value.slice(start, i));
      start = i + 1;
    }
  }
  segments.push(value.slice(start));
  const out: string[] = [segments[0].trim()];
  let replaced = false;
  for (const seg of segments.slice(1)) {
    const name = seg.split('=')[0].trim().toLowerCase();
    if (name === 'charset' || name.startsWith('charset*')) {
      if (!replaced) {
        out.push(`charset=${charset}`);
        replaced = true;
      }
      continue;
    }
    if (seg.trim()) {
      out.push(seg.trim());
    }
  }
  if (!replaced) {
    out.push(`charset=${charset}`);
  }
  return out.join('; ');
}

interface PartPlan {
  rewriter: LinkRewriter | null;
  disclaimer: { text: string; html: string } | null;
}

interface PartOutcome {
  disclaimer: boolean;
  /** the part's Content-Type / Content-Transfer-Encoding fields changed */
  headersChanged: boolean;
}

function trailingBreaks(s: string, start: number, end: number): string {
  let i = end;
  while (i > start && (s.charCodeAt(i - 1) === 0x0a || s.charCodeAt(i - 1) === 0x0d)) {
    i--;
  }
  return s.slice(i, end);
}

/** Rewrites one text part in place (as edits). Returns null when the part is left as it was. */
function modifyPart(job: Job, node: MimeNode, data: Buffer, plan: PartPlan): PartOutcome | null {
  const kind = transferKind(node.encoding);
  const isHtml = node.type === 'text/html';
  const partEol = lineBreakOf(job.s, node.bodyStart, node.bodyEnd, job.eol);
  const codec = textCodec(charsetOf(node), data);
  let text = codec.text;
  if (plan.rewriter) {
    text = isHtml ? rewriteHtmlLinks(text, plan.rewriter) : rewriteTextLinks(text, plan.rewriter);
  }
  const rewritten = text;
  const teol = textLineBreak(text, partEol);
  let added = '';
  if (plan.disclaimer) {
    if (isHtml && plan.disclaimer.html) {
      const r = insertHtmlDisclaimer(text, plan.disclaimer.html, teol);
      text = r.html;
      added = r.added;
    } else if (!isHtml && plan.disclaimer.text) {
      const r = insertTextDisclaimer(text, plan.disclaimer.text, teol);
      text = r.text;
      added = r.added;
    }
  }
  if (text === codec.text) {
    return null;
  }
  let enc: EncodedText | null = codec.encode(text, added);
  if (isHtml && added && (!enc || enc.charset)) {
    // the part's charset cannot carry the disclaimer as is: character references can
    const r = insertHtmlDisclaimer(rewritten, asciiHtml(plan.disclaimer?.html ?? ''), teol);
    const alt = codec.encode(r.html, r.added);
    if (alt && !alt.charset) {
      text = r.html;
      added = r.added;
      enc = alt;
    }
  }
  if (!enc) {
    // unknown charset and a non-ASCII disclaimer: keep the links, drop the disclaimer
    job.notes.add('disclaimer_charset_unknown');
    added = '';
    text = rewritten;
    if (text === codec.text) {
      return null;
    }
    enc = codec.encode(text, '');
    if (!enc) {
      return null;
    }
  }
  if (enc.charset && isHtml) {
    const retargeted = retargetMetaCharset(text);
    if (retargeted !== text) {
      enc = { bytes: Buffer.from(retargeted, 'utf8'), charset: enc.charset };
    }
  }
  if (enc.charset) {
    job.notes.add('charset_converted');
  }

  let body: Buffer | string;
  let newEncoding: string | null = null;
  if (kind === 'base64') {
    body = encodeBase64(enc.bytes, partEol) + trailingBreaks(job.s, node.bodyStart, node.bodyEnd);
  } else if (kind === 'quoted-printable') {
    body = encodeQuotedPrintable(enc.bytes, partEol);
  } else {
    const declared = node.encoding || '7bit';
    if (!KNOWN_IDENTITY.has(declared)) {
      job.notes.add('unknown_transfer_encoding');
    }
    if ((declared === '7bit' && !bufferIsAscii(enc.bytes)) || (declared !== 'binary' && !linesFit(enc.bytes))) {
      body = encodeQuotedPrintable(enc.bytes, partEol);
      newEncoding = 'quoted-printable';
      job.notes.add('transfer_encoding_changed');
    } else {
      body = enc.bytes;
    }
  }
  addEdit(job, node.bodyStart, node.bodyEnd, body);

  const headerEol = lineBreakOf(job.s, node.start, node.bodyStart, job.eol);
  const missing: string[] = [];
  if (enc.charset) {
    const ct = firstField(node.header, 'content-type');
    if (ct) {
      const name = job.s.slice(ct.start, job.s.indexOf(':', ct.start)).trimEnd();
      addEdit(job, ct.start, ct.end, foldField(name, withCharset(unfold(ct.raw), enc.charset), headerEol));
    } else {
      missing.push(foldField('Content-Type', `${node.type}; charset=${enc.charset}`, headerEol));
    }
  }
  if (newEncoding) {
    const cte = firstField(node.header, 'content-transfer-encoding');
    if (cte) {
      const name = job.s.slice(cte.start, job.s.indexOf(':', cte.start)).trimEnd();
      addEdit(job, cte.start, cte.end, `${name}: ${newEncoding}${headerEol}`);
    } else {
      missing.push(`Content-Transfer-Encoding: ${newEncoding}${headerEol}`);
    }
  }
  if (missing.length) {
    insertLines(job, node.header.end, missing.join(''));
  }
  return { disclaimer: added.length > 0, headersChanged: enc.charset !== null || newEncoding !== null };
}

function validate(opts: ModifyOptions): void {
  for (const h of opts.addHeaders ?? []) {
    if (!isFieldName(h.name) || RESERVED_FIELDS.has(h.name.toLowerCase())) {
      throw new TypeError(`modifyMessage: cannot add header field ${JSON.stringify(h.name)}`);
    }
  }
  for (const name of opts.removeHeaders ?? []) {
    if (!isFieldName(name) || RESERVED_FIELDS.has(name.toLowerCase())) {
      throw new TypeError(`modifyMessage: cannot remove header field ${JSON.stringify(name)}`);
    }
  }
}

function run(bytes: Buffer, opts: ModifyOptions, headersOnly: boolean): ModifyResult {
  const s = bytes.toString('latin1');
  const eol = lineBreakOf(s, 0, s.length, '\r\n');
  const tree = walkMessage(s);
  const root = tree.root;
  const job: Job = { bytes, s, eol, edits: [], notes: new Set(tree.notes) };
  if (!root.header.terminated) {
    job.notes.add('no_body');
  }
  const bodyUsable = root.header.terminated && !tree.notes.has('ambiguous_structure') && !headersOnly;

  const textParts = bodyUsable ? bodyTextParts(root, []) : [];
  const decoded = new Map<MimeNode, Buffer>();
  for (const part of textParts) {
    decoded.set(part, transferDecode(bytes.subarray(part.bodyStart, part.bodyEnd), transferKind(part.encoding)));
  }
  const signatures = findSignatures(root, decoded);
  const mode = opts.rewrite?.mode ?? 'off';
  const protect = signatures.length > 0 && (opts.protectSigned ?? mode === 'unsigned');

  // header fields: remove spoofed copies, add ours on top
  const added = (opts.addHeaders ?? []).map((h) => ({ name: h.name, value: headerValue(h.value) }));
  const drop = new Set([
    ...added.map((h) => h.name.toLowerCase()),
    ...(opts.removeHeaders ?? []).map((n) => n.toLowerCase()),
  ]);
  for (const f of root.header.fields) {
    if (drop.has(f.key)) {
      addEdit(job, f.start, f.end, '');
    }
  }
  if (added.length) {
    addEdit(job, 0, 0, added.map((h) => foldField(h.name, h.value, eol)).join(''));
  }

  // subject
  let subjectChanged = false;
  let subjectSkipped: ModifyResult['subjectSkipped'] = null;
  const rootInserts: string[] = [];
  if (opts.subject && opts.subject.text.trim()) {
    const covered = signatures.includes('smime') || signatures.includes('pgp') || dkimSignsSubject(root.header.fields);
    if (protect && covered) {
      subjectSkipped = 'signed';
    } else {
      const fields = root.header.fields.filter((f) => f.key === 'subject');
      if (!fields.length) {
        rootInserts.push(newSubject(opts.subject.text, eol));
        subjectChanged = true;
      }
      for (const f of fields) {
        const change = tagSubject(f, s, opts.subject.mode, opts.subject.text, eol);
        if (change.field === null) {
          subjectSkipped = 'already-tagged';
          continue;
        }
        addEdit(job, f.start, f.end, Buffer.from(change.field, 'latin1'));
        subjectChanged = true;
      }
      if (subjectChanged) {
        subjectSkipped = null;
      }
    }
  }

  // body: disclaimer and links
  const wantDisclaimer = Boolean(opts.disclaimer && (opts.disclaimer.text || opts.disclaimer.html));
  let rewriteSkipped: ModifyResult['rewriteSkipped'] = null;
  if (!opts.rewrite || mode === 'off') {
    rewriteSkipped = 'off';
  } else if (protect) {
    rewriteSkipped = 'signed';
  } else if (!bodyUsable && root.header.terminated) {
    rewriteSkipped = 'unparsable';
  }
  let disclaimerSkipped: ModifyResult['disclaimerSkipped'] = null;
  const targets = new Set(bodyUsable ? disclaimerParts(root) : []);
  if (wantDisclaimer) {
    if (protect) {
      disclaimerSkipped = 'signed';
    } else if (!bodyUsable && root.header.terminated) {
      disclaimerSkipped = 'unparsable';
    } else if (!targets.size) {
      disclaimerSkipped = 'no-body-part';
    }
  }
  const rewriter =
    rewriteSkipped === null && opts.rewrite
      ? new LinkRewriter(opts.rewrite.bypassDomains ?? [], opts.rewrite.wrap, opts.rewrite.isOwnLink, MAX_LISTED_URLS)
      : null;
  let disclaimerCount = 0;
  let rootHeadersChanged = false;
  for (const part of textParts) {
    const data = decoded.get(part) as Buffer;
    const disclaimer = disclaimerSkipped === null && wantDisclaimer && targets.has(part) ? opts.disclaimer! : null;
    if (!rewriter && !disclaimer) {
      continue;
    }
    const outcome = modifyPart(job, part, data, { rewriter, disclaimer });
    if (outcome?.disclaimer) {
      disclaimerCount++;
    }
    if (outcome?.headersChanged && part === root) {
      rootHeadersChanged = true;
    }
  }
  if (wantDisclaimer && disclaimerSkipped === null && disclaimerCount === 0 && targets.size) {
    // every target already carried it, or none could take it
    disclaimerSkipped = 'no-body-part';
  }
  if (rootHeadersChanged && !firstField(root.header, 'mime-version')) {
    rootInserts.push(`MIME-Version: 1.0${eol}`);
  }
  if (rootInserts.length) {
    insertLines(job, root.header.end, rootInserts.join(''));
  }
  if (rewriter?.truncated) {
    job.notes.add('url_list_truncated');
  }

  const out = assemble(job);
  return {
    bytes: out,
    changed: out !== bytes && !out.equals(bytes),
    subjectChanged,
    disclaimerParts: disclaimerCount,
    rewrittenUrls: rewriter ? rewriter.rewritten : [],
    rewriteSkipped,
    subjectSkipped,
    disclaimerSkipped,
    signatures,
    notes: [...job.notes],
  };
}

/**
 * Applies the subject tag, header fields, disclaimer and URL rewriting of an Outbreak Filters
 * modification to a whole message. Never throws on message input: an internal failure falls
 * back to header changes only (note 'internal_error'). It throws on invalid options (a header
 * name that is not a field name, or one the modification writes itself) and passes through
 * whatever `wrap` or `isOwnLink` throw, so that a broken click-time service fails the stage
 * instead of delivering a threat with its links unwrapped.
 */
export function modifyMessage(bytes: Buffer, opts: ModifyOptions): ModifyResult {
  validate(opts);
  try {
    return run(bytes, opts, false);
  } catch (err) {
    if (err instanceof CallbackError) {
      throw err.cause;
    }
    try {
      const r = run(bytes, opts, true);
      r.notes.push('internal_error');
      return r;
    } catch {
      return {
        bytes,
        changed: false,
        subjectChanged: false,
        disclaimerParts: 0,
        rewrittenUrls: [],
        rewriteSkipped: opts.rewrite && opts.rewrite.mode !== 'off' ? 'unparsable' : 'off',
        subjectSkipped: null,
        disclaimerSkipped: opts.disclaimer ? 'unparsable' : null,
        signatures: [],
        notes: ['internal_error'],
      };
    }
  }
}
