// Text helpers for the adaptive rules: folding (what a reader sees, for phrase and brand matching),
// spotting disguised text (invisible characters, look-alike letters from other scripts, styled
// letters), and one linear pass over HTML that yields the visible text, hidden text, forms and
// images. Every function here is linear in its (capped) input: no regular expression with nested
// or overlapping quantifiers runs on message content.
import { decodeEntities } from '../../mime/urls.ts';

/** True when `s` contains any invisible or formatting character (for file names, where none belongs). */
export function hasInvisible(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const cp = s.codePointAt(i)!;
    if (isInvisible(cp)) {
      return true;
    }
    if (cp > 0xffff) {
      i++;
    }
  }
  return false;
}

/** `s` without its invisible and formatting characters. */
function stripInvisible(s: string): string {
  if (!hasInvisible(s)) {
    return s;
  }
  let out = '';
  for (const ch of s) {
    if (!isInvisible(ch.codePointAt(0)!)) {
      out += ch;
    }
  }
  return out;
}

/** Letters of other scripts that look like Latin ones (the usual homoglyphs), and digits posing as letters. */
const CONFUSABLES: Readonly<Record<string, string>> = {
  // Cyrillic
  а: 'a',
  в: 'b',
  е: 'e',
  ё: 'e',
  є: 'e',
  з: '3',
  і: 'i',
  ї: 'i',
  ј: 'j',
  к: 'k',
  м: 'm',
  н: 'h',
  о: 'o',
  р: 'p',
  с: 'c',
  т: 't',
  у: 'y',
  х: 'x',
  ѕ: 's',
  ԁ: 'd',
  ԛ: 'q',
  ԝ: 'w',
  һ: 'h',
  ӏ: 'l',
  ɡ: 'g',
  ɑ: 'a',
  ı: 'i',
  // Greek
  α: 'a',
  β: 'b',
  ε: 'e',
  ι: 'i',
  κ: 'k',
  ν: 'v',
  ο: 'o',
  ρ: 'p',
  τ: 't',
  υ: 'u',
  χ: 'x',
  // Armenian
  օ: 'o',
  ս: 'u',
  ո: 'n',
  հ: 'h',
  ց: 'g',
};

const CONFUSABLE_CLASS = new RegExp(`[${Object.keys(CONFUSABLES).join('')}]`, 'gu');
const MARKS = /\p{M}/gu;
const SPACES = /\s+/g;
const UNDERSCORES = /_+/g;
const NON_ASCII = /[^\x00-\x7f]/;

function confusable(c: string): string {
  return CONFUSABLES[c] ?? c;
}

/**
 * What a reader sees, for matching: invisible characters dropped, compatibility forms (styled
 * mathematical letters, full-width forms, ligatures) unfolded, look-alike letters mapped to Latin,
 * accents removed, lower case, whitespace collapsed. Capped at `max` characters of input.
 */
export function fold(s: string, max = 4096): string {
  if (s.length > max) {
    s = s.slice(0, max);
  }
  if (!NON_ASCII.test(s)) {
    // nothing to unfold: the common case, and much cheaper
    return s.toLowerCase().replace(UNDERSCORES, ' ').replace(SPACES, ' ').trim();
  }
  return stripInvisible(s)
    .normalize('NFKC')
    .toLowerCase()
    .replace(CONFUSABLE_CLASS, confusable)
    .normalize('NFD')
    .replace(MARKS, '')
    .replace(UNDERSCORES, ' ')
    .replace(SPACES, ' ')
    .trim();
}

/** A host or domain reduced to what it looks like: folded, and 0/1 read as o/l, "rn" as "m", "vv" as "w". */
export function skeleton(s: string): string {
  return fold(s, 512).replace(/0/g, 'o').replace(/1/g, 'l').replace(/rn/g, 'm').replace(/vv/g, 'w');
}

function isLatinLetter(cp: number): boolean {
  return (
    (cp >= 0x41 && cp <= 0x5a) ||
    (cp >= 0x61 && cp <= 0x7a) ||
    (cp >= 0xc0 && cp <= 0x24f && cp !== 0xd7 && cp !== 0xf7)
  );
}

function isLookalikeScript(cp: number): boolean {
  // Greek, Cyrillic (with supplement), Armenian
  return (cp >= 0x370 && cp <= 0x3ff) || (cp >= 0x400 && cp <= 0x52f) || (cp >= 0x531 && cp <= 0x58f);
}

/** Invisible and formatting characters that have no business inside words of a header. */
function isInvisible(cp: number): boolean {
  return (
    cp === 0xad ||
    cp === 0x34f ||
    cp === 0x61c ||
    cp === 0x115f ||
    cp === 0x1160 ||
    cp === 0x17b4 ||
    cp === 0x17b5 ||
    (cp >= 0x180b && cp <= 0x180f) ||
    (cp >= 0x200b && cp <= 0x200f) ||
    (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2060 && cp <= 0x206f) ||
    cp === 0x3164 ||
    (cp >= 0xfe00 && cp <= 0xfe0f) ||
    cp === 0xfeff ||
    cp === 0xffa0 ||
    (cp >= 0xe0000 && cp <= 0xe0fff)
  );
}

function isMark(cp: number): boolean {
  return (
    (cp >= 0x300 && cp <= 0x36f) ||
    (cp >= 0x483 && cp <= 0x489) ||
    (cp >= 0x591 && cp <= 0x5c7) ||
    (cp >= 0x610 && cp <= 0x61a) ||
    (cp >= 0x64b && cp <= 0x65f) ||
    (cp >= 0x711 && cp <= 0x74a) ||
    (cp >= 0x7a6 && cp <= 0x7b0) ||
    (cp >= 0x1ab0 && cp <= 0x1aff) ||
    (cp >= 0x1dc0 && cp <= 0x1dff) ||
    (cp >= 0x20d0 && cp <= 0x20ff) ||
    (cp >= 0xfe20 && cp <= 0xfe2f)
  );
}

export interface Disguise {
  /** what was found, for evidence */
  kind:
    | 'invisible characters'
    | 'foreign combining marks'
    | 'mixed-script word'
    | 'styled letters'
    | 'spaced-out letters'
    | 'right-to-left override';
  /** 3 for invisible characters, marks, mixed scripts and overrides; 1 for styled letters alone */
  strength: number;
}

/**
 * Finds text written to look like something else: invisible characters or non-Latin combining marks
 * between Latin letters ("Mi\u{e0139}cr\u{e0139}osoft", "a\u073fl\u073fert"), words mixing Latin with
 * Cyrillic/Greek/Armenian look-alikes ("Amаzon"), a right-to-left override, or styled mathematical
 * letters (𝗟𝗔𝗦𝗧). Invisible characters next to emoji (joiners, variation selectors) do not count.
 */
export function findDisguise(s: string, max = 2048): Disguise | null {
  if (s.length > max) {
    s = s.slice(0, max);
  }
  let styled = 0;
  let prevLetterLatin = false;
  // state of the current word (run of letters and marks)
  let wordLatin = false;
  let wordOther = false;
  let pendingInvisible = false;
  for (let i = 0; i < s.length; i++) {
    const cp = s.codePointAt(i)!;
    if (cp > 0xffff) {
      i++;
    }
    if (cp === 0x202e || cp === 0x202d || cp === 0x2066 || cp === 0x2067 || cp === 0x2068) {
      return { kind: 'right-to-left override', strength: 3 };
    }
    if ((cp >= 0x1d400 && cp <= 0x1d7ff) || (cp >= 0x1d00 && cp <= 0x1d2b) || SMALL_CAPITALS.has(cp)) {
      // mathematical alphanumerics, small capitals
      styled++;
      continue;
    }
    if (isInvisible(cp)) {
      if (prevLetterLatin) {
        pendingInvisible = true;
      }
      continue;
    }
    if (isMark(cp)) {
      if (prevLetterLatin && !(cp >= 0x300 && cp <= 0x36f)) {
        return { kind: 'foreign combining marks', strength: 3 };
      }
      continue;
    }
    const latin = isLatinLetter(cp);
    if (latin && pendingInvisible) {
      return { kind: 'invisible characters', strength: 3 };
    }
    pendingInvisible = false;
    const other = !latin && isLookalikeScript(cp);
    if (latin || other) {
      wordLatin ||= latin;
      wordOther ||= other;
      if (wordLatin && wordOther) {
        return { kind: 'mixed-script word', strength: 3 };
      }
    } else if (cp < 0x80 || !LETTER.test(String.fromCodePoint(cp))) {
      wordLatin = false;
      wordOther = false;
    }
    prevLetterLatin = latin;
  }
  if (styled >= 3) {
    return { kind: 'styled letters', strength: 1 };
  }
  if (spacedLetters(s)) {
    return { kind: 'spaced-out letters', strength: 1 };
  }
  return null;
}

/** Latin small capitals outside the phonetic-extensions block (ɢ ɪ ɴ ʀ ʏ ʙ ʜ ʟ ꜱ). */
const SMALL_CAPITALS: ReadonlySet<number> = new Set([0x262, 0x26a, 0x274, 0x280, 0x28f, 0x299, 0x29c, 0x29f, 0xa731]);

const LETTER = /\p{L}/u;

function isLetterAt(chars: readonly string[], i: number): boolean {
  const c = chars[i];
  return c !== undefined && LETTER.test(c);
}

/** Five or more single letters separated by single spaces ("T r u s t"). Linear. */
function spacedLetters(s: string): boolean {
  const chars = Array.from(s);
  let run = 0;
  for (let i = 0; i < chars.length; i++) {
    const single = isLetterAt(chars, i) && !isLetterAt(chars, i - 1) && !isLetterAt(chars, i + 1);
    if (single && (run === 0 || chars[i - 1] === ' ')) {
      run++;
      if (run >= 5) {
        return true;
      }
    } else if (chars[i] !== ' ' || !isLetterAt(chars, i - 1)) {
      run = single ? 1 : 0;
    }
  }
  return false;
}

export interface HtmlScan {
  /** visible text (tags, comments, style and script removed, entities decoded), capped */
  text: string;
  /** non-space characters of text inside elements styled invisible */
  hiddenChars: number;
  /** number of <form> elements */
  forms: number;
  /** where the first forms post (their action attribute as written; at most MAX_FORM_ACTIONS) */
  formActions: string[];
  /** <input type=password> fields */
  passwordFields: number;
  /** inputs named like credentials (email, user, login, pass…) */
  credentialInputs: number;
  /** inputs asking for a secret (password, PIN, card number, one-time code…) */
  secretInputs: number;
  images: number;
}

const MAX_FORM_ACTIONS = 8;

const VOID_TAGS: ReadonlySet<string> = new Set([
  'area',
  'base',
  'br',
  'col',
  'embed',
  'hr',
  'img',
  'input',
  'link',
  'meta',
  'param',
  'source',
  'track',
  'wbr',
]);

const HIDING_STYLE =
  /display\s*:\s*none(?![a-z-])|visibility\s*:\s*hidden(?![a-z-])|font-size\s*:\s*0(?:\.0+)?(?:px|pt|em|rem|%)?\s*(?:!important\s*)?(?:;|$)|opacity\s*:\s*0(?:\.0+)?\s*(?:;|$)|max-height\s*:\s*0(?:px)?\s*(?:;|$)/i;

const CREDENTIAL_INPUT_NAME = /pass|pwd|senha|login|user|e-?mail|account|\botp\b|\bpin\b|cvv|card/i;
const SECRET_INPUT_NAME =
  /pass|pwd|senha|passwort|kennwort|contrase|mot.?de.?passe|wachtwoord|\bpin\b|cvv|cvc|\botp\b|card.?num|cc.?num|\bssn\b|\bcpf\b/i;

function isSpaceCode(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d;
}

/** Reads the attributes of a tag from `pos` (after its name); returns the position after ">". */
function readAttributes(html: string, pos: number, out: Map<string, string>): number {
  const len = html.length;
  let i = pos;
  while (i < len) {
    let c = html.charCodeAt(i);
    if (isSpaceCode(c) || c === 0x2f) {
      i++;
      continue;
    }
    if (c === 0x3e) {
      return i + 1;
    }
    const nameStart = i;
    while (i < len) {
      c = html.charCodeAt(i);
      if (isSpaceCode(c) || c === 0x3d || c === 0x3e || (c === 0x2f && i > nameStart)) {
        break;
      }
      i++;
    }
    const name = html.slice(nameStart, i).toLowerCase();
    while (i < len && isSpaceCode(html.charCodeAt(i))) {
      i++;
    }
    if (html.charCodeAt(i) !== 0x3d) {
      continue;
    }
    i++;
    while (i < len && isSpaceCode(html.charCodeAt(i))) {
      i++;
    }
    c = html.charCodeAt(i);
    let value: string;
    if (c === 0x22 || c === 0x27) {
      const close = html.indexOf(c === 0x22 ? '"' : "'", i + 1);
      const end = close < 0 ? len : close;
      value = html.slice(i + 1, Math.min(end, i + 1 + 2048));
      i = close < 0 ? len : close + 1;
    } else {
      const start = i;
      while (i < len) {
        c = html.charCodeAt(i);
        if (isSpaceCode(c) || c === 0x3e) {
          break;
        }
        i++;
      }
      value = html.slice(start, Math.min(i, start + 2048));
    }
    if (!out.has(name) && out.size < 32) {
      out.set(name, value);
    }
  }
  return len;
}

function countNonSpace(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isSpaceCode(c) && c !== 0xa0 && c !== 0x200c && c !== 0x200b && c !== 0x34f && c !== 0xad) {
      n++;
    }
  }
  return n;
}

/** Position of the end tag `</tag` at or after `from` (case-insensitive), or the end of input. */
function findEndTag(html: string, tag: string, from: number): number {
  let k = from;
  while ((k = html.indexOf('</', k)) >= 0) {
    if (html.slice(k + 2, k + 2 + tag.length).toLowerCase() === tag) {
      return k;
    }
    k += 2;
  }
  return html.length;
}

/**
 * One linear pass over HTML: visible text (up to `maxText` characters), hidden text, forms,
 * credential inputs and images. Only the first `maxHtml` characters are read.
 */
export function scanHtml(html: string, maxHtml = 512 * 1024, maxText = 32 * 1024): HtmlScan {
  if (html.length > maxHtml) {
    html = html.slice(0, maxHtml);
  }
  const parts: string[] = [];
  let textLen = 0;
  const result: HtmlScan = {
    text: '',
    hiddenChars: 0,
    forms: 0,
    formActions: [],
    passwordFields: 0,
    credentialInputs: 0,
    secretInputs: 0,
    images: 0,
  };
  let hiddenTag: string | null = null;
  let hiddenDepth = 0;
  const len = html.length;
  let i = 0;
  const attrs = new Map<string, string>();
  while (i < len) {
    const lt = html.indexOf('<', i);
    const textEnd = lt < 0 ? len : lt;
    if (textEnd > i) {
      const raw = html.slice(i, textEnd);
      if (hiddenTag !== null) {
        result.hiddenChars += countNonSpace(raw.indexOf('&') >= 0 ? decodeEntities(raw) : raw);
      } else if (textLen < maxText) {
        const t = raw.indexOf('&') >= 0 ? decodeEntities(raw) : raw;
        parts.push(t);
        textLen += t.length;
      }
    }
    if (lt < 0) {
      break;
    }
    // comment, doctype, processing instruction
    const next = html.charCodeAt(lt + 1);
    if (next === 0x21 /* ! */ || next === 0x3f /* ? */) {
      if (html.startsWith('<!--', lt)) {
        const close = html.indexOf('-->', lt + 4);
        i = close < 0 ? len : close + 3;
      } else {
        const close = html.indexOf('>', lt + 2);
        i = close < 0 ? len : close + 1;
      }
      continue;
    }
    const closing = next === 0x2f; /* / */
    let j = lt + (closing ? 2 : 1);
    const nameStart = j;
    while (j < len) {
      const c = html.charCodeAt(j);
      if (!(
        (c >= 0x61 && c <= 0x7a) ||
        (c >= 0x41 && c <= 0x5a) ||
        (c >= 0x30 && c <= 0x39) ||
        c === 0x2d ||
        c === 0x3a
      )) {
        break;
      }
      j++;
    }
    if (j === nameStart) {
      // a lone "<" is text
      if (hiddenTag === null && textLen < maxText) {
        parts.push('<');
        textLen++;
      }
      i = lt + 1;
      continue;
    }
    const tag = html.slice(nameStart, j).toLowerCase();
    if (closing) {
      const close = html.indexOf('>', j);
      i = close < 0 ? len : close + 1;
      if (hiddenTag === tag && --hiddenDepth <= 0) {
        hiddenTag = null;
      }
      if (hiddenTag === null) {
        parts.push(' ');
      }
      continue;
    }
    attrs.clear();
    i = readAttributes(html, j, attrs);
    if (tag === 'style' || tag === 'script' || tag === 'title' || tag === 'noscript') {
      // raw text element: skip to its end tag (title is not part of the body a reader sees)
      i = findEndTag(html, tag, i);
      continue;
    }
    if (tag === 'form') {
      result.forms++;
      const action = attrs.get('action');
      if (action !== undefined && result.formActions.length < MAX_FORM_ACTIONS) {
        result.formActions.push(decodeEntities(action.trim()).slice(0, 2048));
      }
    } else if (tag === 'input') {
      const type = (attrs.get('type') ?? '').toLowerCase();
      if (type === 'password') {
        result.passwordFields++;
        result.credentialInputs++;
        result.secretInputs++;
      } else if (type !== 'hidden' && type !== 'submit' && type !== 'button' && type !== 'image') {
        const name = `${attrs.get('name') ?? ''} ${attrs.get('id') ?? ''} ${attrs.get('placeholder') ?? ''}`;
        if (type === 'email' || CREDENTIAL_INPUT_NAME.test(name)) {
          result.credentialInputs++;
        }
        if (SECRET_INPUT_NAME.test(name)) {
          result.secretInputs++;
        }
      }
    } else if (tag === 'img') {
      result.images++;
    }
    if (hiddenTag !== null) {
      if (tag === hiddenTag) {
        hiddenDepth++;
      }
    } else {
      parts.push(' ');
      const style = attrs.get('style');
      if (!VOID_TAGS.has(tag) && ((style !== undefined && HIDING_STYLE.test(style)) || attrs.has('hidden'))) {
        hiddenTag = tag;
        hiddenDepth = 1;
      }
    }
  }
  let text = parts.join('').replace(SPACES, ' ').trim();
  if (text.length > maxText) {
    text = text.slice(0, maxText);
  }
  result.text = text;
  return result;
}
