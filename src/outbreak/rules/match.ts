// Matching primitives of published outbreak rules: globs, host and text normalisation, and the phrase
// automaton that finds every subject/body phrase of a bundle in one pass.
import { domainToASCII } from 'node:url';
import { RULE_LIMITS } from './schema.ts';

// ---------------------------------------------------------------------------------------------------------------
// Matching primitives

/**
 * Glob match, both sides already lower case. `*` matches any run (including "/"), `?` one character when
 * `question` is set. Two pointers with a single resumable star position: at most O(pattern × text) steps, where a
 * regex with several `.*` can backtrack polynomially deeper on hostile input.
 */
export function globMatch(pattern: string, text: string, question: boolean): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    const pc = p < pattern.length ? pattern.charCodeAt(p) : -1;
    if (pc === 42) {
      star = p++;
      resume = t;
    } else if (pc !== -1 && (pc === text.charCodeAt(t) || (question && pc === 63))) {
      p++;
      t++;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern.charCodeAt(p) === 42) p++;
  return p === pattern.length;
}

export interface Glob {
  pattern: string;
  /** literal text before the first wildcard: a cheap early reject */
  prefix: string;
  question: boolean;
}

export function compileGlob(pattern: string, question: boolean): Glob {
  const p = pattern.toLowerCase().replace(/\*{2,}/g, '*');
  const wild = question ? /[*?]/ : /\*/;
  const m = wild.exec(p);
  return { pattern: p, prefix: m ? p.slice(0, m.index) : p, question };
}

export function testGlob(g: Glob, text: string): boolean {
  return text.startsWith(g.prefix) && globMatch(g.pattern, text, g.question);
}

/** Lower case, no trailing dot, internationalised names in punycode so both spellings compare equal. */
export function normalizeHost(host: string): string {
  let h = host.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (/[^\x00-\x7f]/.test(h)) h = domainToASCII(h) || h;
  return h;
}

/** Text as phrases see it: lower case, every run of white space one space. */
export function normalizeText(s: string): string {
  return s.toLowerCase().replace(/\s+/g, ' ');
}

export function truncate(s: string): string {
  return s.length > RULE_LIMITS.maxEvidence ? s.slice(0, RULE_LIMITS.maxEvidence - 1) + '…' : s;
}

/** Path of an http(s) URL, lower case, "\" read as "/" like browsers do; "/" when the URL has none. */
export function urlPathOf(url: string): string {
  const m = /^https?:[/\\]*/i.exec(url);
  if (!m) return '/';
  let i = m[0].length;
  while (i < url.length) {
    const c = url.charCodeAt(i);
    if (c === 0x2f || c === 0x5c) break;
    if (c === 0x3f || c === 0x23) return '/';
    i++;
  }
  if (i >= url.length) return '/';
  let end = i;
  while (end < url.length && url.charCodeAt(end) !== 0x3f && url.charCodeAt(end) !== 0x23) end++;
  return url.slice(i, end).replace(/\\/g, '/').toLowerCase();
}

export function headerFromAddress(from: string | null): string | null {
  if (!from) return null;
  const angle = /<([^<>]*)>[^<>]*$/.exec(from);
  const candidate = angle ? angle[1] : from.split(/\s+/).find((w) => w.includes('@'));
  const addr = candidate?.trim().toLowerCase();
  return addr && addr.includes('@') ? addr : null;
}

let foldTable: Uint16Array | null = null;
const SPACE = 0xffff;

/**
 * Per UTF-16 code unit: its lower-case form (when that is one code unit), or SPACE for white space — what
 * normalizeText does, as a table, so messages can be scanned without building lower-cased copies.
 */
function fold(): Uint16Array {
  if (foldTable) return foldTable;
  const t = new Uint16Array(0x10000);
  for (let c = 0; c < 0x10000; c++) {
    const lower = String.fromCharCode(c).toLowerCase();
    t[c] = lower.length === 1 ? lower.charCodeAt(0) : c;
  }
  // what \s matches in a JavaScript regular expression
  for (const c of [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff]) {
    t[c] = SPACE;
  }
  for (let c = 0x2000; c <= 0x200a; c++) t[c] = SPACE;
  return (foldTable = t);
}

// a dense transition table costs nodes × alphabet entries; past this, transitions stay in per-node maps
const DENSE_TABLE_BUDGET = 4_000_000;

/**
 * Multi-phrase search (Aho–Corasick) so a message is scanned once for all phrases of a bundle instead of once per
 * phrase. Characters are folded (lower case, white space runs as one space) while scanning; the alphabet is the
 * characters that occur in phrases, every other character is class 0 and sends the automaton back to its root.
 * Small enough automata get a full transition table: one array read per character of the message.
 * Exported for tests; `denseBudget` only exists so they can exercise the map-based fallback.
 */
export class PhraseAutomaton {
  readonly size: number;
  /** code unit → character class; 0 = in no phrase */
  private readonly classOf: Uint16Array;
  private readonly next: Array<Map<number, number>> = [new Map()];
  private readonly output: number[] = [-1];
  private readonly fail: Int32Array;
  /** nearest node on the fail chain that ends a phrase, 0 when none */
  private readonly dict: Int32Array;
  private readonly dense: Int32Array | null = null;
  private readonly classes: number;
  private readonly seen: Uint32Array;
  private epoch = 0;

  /** `phrases` as normalizeText leaves them (lower case, single spaces, trimmed) */
  constructor(phrases: readonly string[], denseBudget = DENSE_TABLE_BUDGET) {
    this.size = phrases.length;
    const table = fold();
    const alphabet = new Map<number, number>();
    for (const p of phrases) {
      for (let i = 0; i < p.length; i++) {
        const c = table[p.charCodeAt(i)];
        if (!alphabet.has(c)) alphabet.set(c, alphabet.size + 1);
      }
    }
    this.classes = alphabet.size + 1;
    this.classOf = new Uint16Array(0x10000);
    for (let c = 0; c < 0x10000; c++) this.classOf[c] = alphabet.get(table[c]) ?? 0;

    phrases.forEach((phrase, id) => {
      let node = 0;
      for (let i = 0; i < phrase.length; i++) {
        const k = this.classOf[phrase.charCodeAt(i)];
        let to = this.next[node].get(k);
        if (to === undefined) {
          to = this.next.length;
          this.next.push(new Map());
          this.output.push(-1);
          this.next[node].set(k, to);
        }
        node = to;
      }
      this.output[node] = id;
    });
    const n = this.next.length;
    this.fail = new Int32Array(n);
    this.dict = new Int32Array(n);
    this.seen = new Uint32Array(n);
    const order: number[] = [0];
    for (let q = 0; q < order.length; q++) {
      const node = order[q];
      for (const [k, child] of this.next[node]) {
        if (node !== 0) {
          let f = this.fail[node];
          while (f !== 0 && !this.next[f].has(k)) f = this.fail[f];
          this.fail[child] = this.next[f].get(k) ?? 0;
        }
        const fc = this.fail[child];
        this.dict[child] = this.output[fc] >= 0 ? fc : this.dict[fc];
        order.push(child);
      }
    }
    if (n * this.classes <= denseBudget) {
      const classes = this.classes;
      const dense = new Int32Array(n * classes);
      // breadth-first, so a node's fail target (shallower) already has its full row
      for (const node of order) {
        const row = node * classes;
        const failRow = this.fail[node] * classes;
        for (let k = 1; k < classes; k++) {
          const to = this.next[node].get(k);
          dense[row + k] = to !== undefined ? to : node === 0 ? 0 : dense[failRow + k];
        }
      }
      this.dense = dense;
    }
  }

  /** Adds to `found` the ids of the phrases that occur in `text`; the automaton starts afresh for each call. */
  scan(text: string, found: Set<number>): void {
    if (this.size === 0) return;
    if (++this.epoch === 0xffffffff) {
      this.seen.fill(0);
      this.epoch = 1;
    }
    const epoch = this.epoch;
    const table = fold();
    const classOf = this.classOf;
    const dense = this.dense;
    const classes = this.classes;
    const output = this.output;
    const dict = this.dict;
    const seen = this.seen;
    let previousSpace = false;
    let s = 0;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      // the second and later characters of a white space run are skipped: the run reads as one space
      if (table[code] === SPACE) {
        if (previousSpace) continue;
        previousSpace = true;
      } else previousSpace = false;
      const k = classOf[code];
      if (k === 0) {
        s = 0;
        continue;
      }
      if (dense) s = dense[s * classes + k];
      else s = this.step(s, k);
      if (s === 0) continue;
      // a node already reported in this scan had its whole dictionary chain reported with it
      let o = output[s] >= 0 ? s : dict[s];
      while (o !== 0 && seen[o] !== epoch) {
        seen[o] = epoch;
        found.add(output[o]);
        o = dict[o];
      }
    }
  }

  private step(s: number, k: number): number {
    let to = this.next[s].get(k);
    while (to === undefined && s !== 0) {
      s = this.fail[s];
      to = this.next[s].get(k);
    }
    return to ?? 0;
  }
}
