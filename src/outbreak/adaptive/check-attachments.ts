// Adaptive rules on attachments (dangerous and disguised types, archives, macros, HTML attachments) and on
// the HTML content.
import type { AttachmentInfo } from '../../mime/types.ts';
import {
  ARCHIVE_EXTENSIONS,
  DANGEROUS_ATTACHMENT_EXTENSIONS,
  DISK_IMAGE_EXTENSIONS,
  DOCUMENT_EXTENSIONS,
  EXECUTABLE_EXTENSIONS,
  EXECUTABLE_TRUE_TYPES,
  EXPECTED_TRUE_TYPES,
  HTML_ATTACHMENT_EXTENSIONS,
  MACRO_EXTENSIONS,
} from './lists.ts';
import { findDisguise, hasInvisible } from './text.ts';
import { Hits, MAX_ATTACHMENTS, MAX_MEMBERS, header, type Context } from './context.ts';

// ---------------------------------------------------------------------------------------------
// attachments

/** Extensions of a file name, last first, lower case ("a.pdf.exe" → ["exe", "pdf"]). */
function extensions(name: string): string[] {
  let base = name;
  const slash = Math.max(base.lastIndexOf('/'), base.lastIndexOf('\\'));
  if (slash >= 0) {
    base = base.slice(slash + 1);
  }
  base = base.replace(/[\s.]+$/, '');
  const parts = base.split('.');
  if (parts.length < 2) {
    return [];
  }
  return parts
    .slice(1)
    .reverse()
    .map((p) => p.trim().toLowerCase());
}

function isDoubleExtension(name: string): boolean {
  const ext = extensions(name);
  return ext.length >= 2 && EXECUTABLE_EXTENSIONS.has(ext[0]) && DOCUMENT_EXTENSIONS.has(ext[1]);
}

/** A single compressed program: "report.scr.xz", "setup.exe.gz" (the archive may not be listable). */
function isCompressedExecutable(name: string): boolean {
  const ext = extensions(name);
  return ext.length >= 2 && ARCHIVE_EXTENSIONS.has(ext[0]) && EXECUTABLE_EXTENSIONS.has(ext[1]);
}

const PADDED_EXTENSION = /\s{4}\.?[a-z0-9]{1,5}$|_{6,}\.[a-z0-9]{1,5}$/i;
const GENERIC_TYPES =
  /^(?:application\/(?:octet-stream|x-unknown|binary|unknown|force-download|x-download|download)|binary\/|text\/plain$)/;
const DECLARED_FAMILY: Readonly<Record<string, RegExp>> = {
  pdf: /pdf/,
  doc: /ms-?word|msword|officedocument|opendocument|rtf/,
  docx: /word|officedocument|zip/,
  xls: /excel|officedocument|spreadsheet/,
  xlsx: /excel|officedocument|spreadsheet|zip/,
  ppt: /powerpoint|officedocument|presentation/,
  pptx: /powerpoint|officedocument|presentation|zip/,
  jpg: /^image\//,
  jpeg: /^image\//,
  png: /^image\//,
  gif: /^image\//,
  ics: /calendar/,
  zip: /zip|compressed/,
  html: /html/,
  htm: /html/,
};
/** "Password: 7741", "the password is x7Kq": a password handed over in the message. */
const PASSWORD_WORDS =
  /\b(?:password|passwort|kennwort|senha|contrase.a|mot de passe|wachtwoord|parola|pwd|pass(?:code)?)\b(?:\s*[:=-]|\s+(?:is|ist|est|e|é|es))\s*["'“«]?[^\s"'”»]{3,}/i;

/** Internet shortcuts: they open a web page (or a remote share) rather than run code themselves. */
const SHORTCUT_EXTENSIONS: ReadonlySet<string> = new Set(['url', 'website']);

export function attachmentRules(ctx: Context, hits: Hits): void {
  let members = 0;
  // a reply in a thread (In-Reply-To or References): a correspondent sharing a link as a shortcut
  const reply = header(ctx.parsed, 'in-reply-to') !== null || header(ctx.parsed, 'references') !== null;
  for (const att of ctx.parsed.attachments.slice(0, MAX_ATTACHMENTS)) {
    const name = att.name;
    const ext = att.extension;
    const trueType = att.trueType;
    const label = name || att.declaredType;

    const disguise = name ? filenameDisguise(name) : null;
    if (disguise) {
      hits.add('FILENAME_DISGUISE', `${name} (${disguise})`, true);
    }
    if (name && isDoubleExtension(name)) {
      hits.add('DOUBLE_EXTENSION', name, true);
    }
    if (name && isCompressedExecutable(name)) {
      hits.add('ARCHIVE_EXECUTABLE', name, true);
    }
    if (trueType && EXECUTABLE_TRUE_TYPES.has(trueType) && !EXECUTABLE_EXTENSIONS.has(ext)) {
      hits.add('EXECUTABLE_DISGUISED', `${label} is ${trueType}`, true);
    } else if (SHORTCUT_EXTENSIONS.has(ext) && reply && !(trueType && EXECUTABLE_TRUE_TYPES.has(trueType))) {
      hits.add('INTERNET_SHORTCUT', label, true);
    } else if (DANGEROUS_ATTACHMENT_EXTENSIONS.has(ext) || (trueType && EXECUTABLE_TRUE_TYPES.has(trueType))) {
      hits.add('DANGEROUS_FILE_TYPE', label, true);
    }
    if (MACRO_EXTENSIONS.has(ext)) {
      hits.add('MACRO_DOCUMENT', label, true);
    }
    if (att.encrypted) {
      const password = PASSWORD_WORDS.exec(ctx.bodyText);
      if (password) {
        hits.add('ENCRYPTED_ARCHIVE_WITH_PASSWORD', `${label}; body says "${password[0]}"`, true);
      } else {
        hits.add('ENCRYPTED_ARCHIVE', label, true);
      }
    }
    if (HTML_ATTACHMENT_EXTENSIONS.has(ext) || (att.declaredType === 'text/html' && name)) {
      hits.add('HTML_ATTACHMENT', label, true);
    }
    if (name && att.size === 0) {
      hits.add('EMPTY_ATTACHMENT', `${name} (0 bytes)`, true);
    }
    checkTrueType(att, hits);
    checkDeclaredType(att, hits);

    for (const m of att.members) {
      if (members++ >= MAX_MEMBERS) {
        break;
      }
      const mext = m.extension;
      const where = `${label} → ${m.name}`;
      if (m.trueType && EXECUTABLE_TRUE_TYPES.has(m.trueType) && !EXECUTABLE_EXTENSIONS.has(mext)) {
        hits.add('EXECUTABLE_DISGUISED', `${where} is ${m.trueType}`, true);
      }
      if (
        EXECUTABLE_EXTENSIONS.has(mext) ||
        DISK_IMAGE_EXTENSIONS.has(mext) ||
        (m.trueType !== null && EXECUTABLE_TRUE_TYPES.has(m.trueType))
      ) {
        hits.add('ARCHIVE_EXECUTABLE', where, true);
      }
      if (isDoubleExtension(m.name)) {
        hits.add('DOUBLE_EXTENSION', where, true);
      }
      if (MACRO_EXTENSIONS.has(mext) || m.name.toLowerCase().endsWith('vbaproject.bin')) {
        hits.add('MACRO_DOCUMENT', where, true);
      }
      const mdisguise = filenameDisguise(m.name);
      if (mdisguise) {
        hits.add('FILENAME_DISGUISE', `${where} (${mdisguise})`, true);
      }
    }
  }
}

/** Why a file name is disguised, or null: look-alike tricks, any invisible character, a padded extension. */
function filenameDisguise(name: string): string | null {
  const d = findDisguise(name, 512);
  if (d && d.strength >= 3) {
    return d.kind;
  }
  if (hasInvisible(name.length > 512 ? name.slice(0, 512) : name)) {
    return 'invisible characters';
  }
  return PADDED_EXTENSION.test(name) ? 'padded extension' : null;
}

function checkTrueType(att: AttachmentInfo, hits: Hits): void {
  const trueType = att.trueType;
  if (!trueType || !att.extension || EXECUTABLE_TRUE_TYPES.has(trueType)) {
    return;
  }
  const expected = EXPECTED_TRUE_TYPES[att.extension];
  if (expected === undefined) {
    return;
  }
  if (expected.length === 0) {
    // text formats: only a binary container or program contradicts them
    if (!trueType.startsWith('text/') && trueType !== 'application/xml' && !trueType.startsWith('image/svg')) {
      hits.add('TRUE_TYPE_MISMATCH', `${att.name} is ${trueType}`, true);
    }
    return;
  }
  if (!expected.includes(trueType)) {
    hits.add('TRUE_TYPE_MISMATCH', `${att.name} is ${trueType}`, true);
  }
}

function checkDeclaredType(att: AttachmentInfo, hits: Hits): void {
  const family = DECLARED_FAMILY[att.extension];
  const declared = att.declaredType.toLowerCase();
  if (!family || GENERIC_TYPES.test(declared) || !declared.includes('/')) {
    return;
  }
  if (!family.test(declared)) {
    hits.add('DECLARED_TYPE_MISMATCH', `${att.name} sent as ${declared}`, true);
  }
}

// ---------------------------------------------------------------------------------------------
// HTML content

/** Visible characters (not spaces) below which an HTML body with pictures is a picture of a message. */
const IMAGE_ONLY_MAX_CHARS = 100;

function visibleChars(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length && n < IMAGE_ONLY_MAX_CHARS; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x20 && c !== 0xa0 && !(c >= 0x2000 && c <= 0x200f) && c !== 0x034f && c !== 0xfeff) {
      n++;
    }
  }
  return n;
}

export function htmlRules(ctx: Context, hits: Hits): void {
  const html = ctx.html;
  if (!html) {
    return;
  }
  if (html.passwordFields > 0) {
    hits.add('HTML_PASSWORD_FORM', `${html.passwordFields} password field(s)`);
  } else if (html.forms > 0 && html.secretInputs > 0) {
    hits.add('HTML_CREDENTIAL_FORM', `${html.forms} form(s) asking for secrets`);
  }
  // a picture of a message: next to no words in the HTML or beside it (a signature or a pasted
  // screenshot in a reply still comes with the text of the reply)
  if (
    html.images > 0 &&
    visibleChars(html.text) < IMAGE_ONLY_MAX_CHARS &&
    visibleChars(ctx.parsed.text) < IMAGE_ONLY_MAX_CHARS
  ) {
    hits.add('IMAGE_ONLY', `${html.images} image(s), ${visibleChars(html.text)} characters of text`);
  }
  if (html.hiddenChars >= 300) {
    hits.add('HIDDEN_TEXT', `${html.hiddenChars} hidden characters`);
  }
}
