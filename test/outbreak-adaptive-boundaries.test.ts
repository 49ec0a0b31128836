// Word boundaries of the adaptive rules' phrase patterns (issue 15): every pattern is closed on both
// sides, so a keyword inside a longer word never matches ("card issue" is not "card issuer"). The test
// is generic: it expands every exported pattern into the phrases it stands for (each alternative at
// least once), checks each phrase matches, then runs the pattern over the phrase with its last word
// continued by a letter and its first word preceded by one; neither may match at that edge. Stems
// written as `[a-z]*` ("bloquead[a-z]*") are meant to take any ending and are left out of the first
// check. Brand names and service-desk words are checked as the phrase lists they are.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LURE_PATTERNS } from '../src/outbreak/adaptive/content.ts';
import { BUSINESS_DOCUMENT } from '../src/outbreak/adaptive/check-combinations.ts';
import {
  AUTOMATED_SUBJECT,
  BRAND_NAME_PATTERNS,
  SERVICE_NAME,
  UNDISCLOSED_RECIPIENTS,
  findBrand,
} from '../src/outbreak/adaptive/check-sender.ts';
import { BRANDS, SERVICE_WORDS } from '../src/outbreak/adaptive/lists.ts';

// ------------------------------------------------------------------------------------------------
// a small expander for the regular-expression subset the phrase patterns use: literals, escapes,
// classes, groups, alternation, lookarounds (which add nothing) and quantifiers

interface Phrase {
  text: string;
  /** the phrase ends in a stem that takes any ending (`[a-z]*`) */
  openEnd: boolean;
}

const MAX_PHRASES = 400;

class Expander {
  private i = 0;
  private readonly src: string;
  constructor(src: string) {
    this.src = src;
  }

  all(): Phrase[] {
    const out = this.alternation();
    assert.equal(this.i, this.src.length, `unparsed rest of /${this.src}/ at ${this.i}`);
    return out;
  }

  private alternation(): Phrase[] {
    const out: Phrase[] = [...this.sequence()];
    while (this.src[this.i] === '|') {
      this.i++;
      out.push(...this.sequence());
    }
    return out.slice(0, MAX_PHRASES);
  }

  /** Items of a sequence are zipped, not multiplied: every alternative of every item appears at least once. */
  private sequence(): Phrase[] {
    const items: Phrase[][] = [];
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') {
      items.push(this.quantified());
    }
    const n = Math.min(MAX_PHRASES, Math.max(1, ...items.map((x) => x.length)));
    const out: Phrase[] = [];
    for (let k = 0; k < n; k++) {
      let text = '';
      let openEnd = false;
      for (const list of items) {
        const p = list[k % list.length];
        if (p.openEnd) {
          openEnd = true;
        } else if (p.text !== '') {
          // letters after a stem are still part of its open ending
          openEnd = openEnd && /^[a-z]+$/.test(p.text);
        }
        text += p.text;
      }
      out.push({ text, openEnd });
    }
    return out;
  }

  private quantified(): Phrase[] {
    const atom = this.atom();
    const q = /^(?:\?|\*|\+|\{(\d+)(?:,(\d*))?\})\??/.exec(this.src.slice(this.i));
    if (!q) {
      return atom;
    }
    this.i += q[0].length;
    const op = q[0][0];
    if (op === '?') {
      return [{ text: '', openEnd: false }, ...atom];
    }
    if (op === '*') {
      // a stem: any ending
      return [{ text: '', openEnd: true }];
    }
    const min = op === '+' ? 1 : Number(q[1]);
    const variable = op === '+' || q[2] !== String(min);
    // ".{0,40}" between two words stands for at least the space that separates them
    const times = Math.max(min, 1);
    // a repeated letter ("[a-z]{2,8}": a ticker) is a word of any length: open like a stem
    return atom.map((p) => ({ text: p.text.repeat(times), openEnd: variable && /^[a-z]$/.test(p.text) }));
  }

  private atom(): Phrase[] {
    const c = this.src[this.i];
    if (c === '(') {
      const look = /^\(\?(?:<?[=!])/.exec(this.src.slice(this.i));
      const nonCapturing = this.src.startsWith('(?:', this.i);
      this.i += look ? look[0].length : nonCapturing ? 3 : 1;
      const inner = this.alternation();
      assert.equal(this.src[this.i], ')');
      this.i++;
      return look ? [{ text: '', openEnd: false }] : inner;
    }
    if (c === '[') {
      const end = this.src.indexOf(']', this.i + 2);
      const body = this.src.slice(this.i + 1, end);
      this.i = end + 1;
      return [{ text: classSample(body), openEnd: false }];
    }
    if (c === '\\') {
      const e = this.src[this.i + 1];
      this.i += 2;
      const sample: Record<string, string> = { b: '', B: '', s: ' ', d: '1', W: ' ', w: 'a' };
      return [{ text: sample[e] ?? e, openEnd: false }];
    }
    this.i++;
    if (c === '^' || c === '$') {
      return [{ text: '', openEnd: false }];
    }
    return [{ text: c === '.' ? ' ' : c, openEnd: false }];
  }
}

function classSample(body: string): string {
  assert.ok(!body.startsWith('^'), `negated class [${body}] not expected in a phrase pattern`);
  if (body.startsWith('\\')) {
    return ({ s: ' ', d: '1', W: ' ', w: 'a' } as Record<string, string>)[body[1]] ?? body[1];
  }
  return body[0];
}

function phrasesOf(re: RegExp): Phrase[] {
  return new Expander(re.source).all().filter((p) => p.text.trim() !== '');
}

/** Where `re` matches `s`: [start, end] of every match. */
function matchSpans(re: RegExp, s: string): Array<[number, number]> {
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
  return [...s.matchAll(g)].map((m) => [m.index, m.index + m[0].length]);
}

/**
 * Checks one pattern: each phrase it stands for matches; continuing the phrase's last word
 * ("issue" → "issueq") or starting its first word later ("verify" → "qverify") leaves no match
 * that ends or starts at that word's edge.
 */
function checkClosed(name: string, re: RegExp): number {
  const phrases = phrasesOf(re);
  assert.ok(phrases.length > 0, `${name}: no phrases expanded from /${re.source}/`);
  let checked = 0;
  for (const { text, openEnd } of phrases) {
    // (an earlier alternative may take the start, as "urgent" does in "urgent action required")
    const spans = matchSpans(re, text);
    assert.ok(
      spans.some(([a]) => a === 0) && spans.some(([, b]) => b === text.length),
      `${name}: /${re.source.slice(0, 80)}…/ should match its own phrase "${text}"`,
    );
    if (!openEnd && /[a-z]$/.test(text)) {
      const longer = `${text}q`;
      const bad = matchSpans(re, longer).find(([, b]) => b === text.length || b === longer.length);
      assert.equal(bad, undefined, `${name}: "${text}" matches inside the longer word of "${longer}"`);
      checked++;
    }
    if (/^[a-z]/.test(text)) {
      const longer = `q${text}`;
      const bad = matchSpans(re, longer).find(([a]) => a === 0 || a === 1);
      assert.equal(bad, undefined, `${name}: "${text}" matches inside the longer word of "${longer}"`);
    }
  }
  return checked;
}

// ------------------------------------------------------------------------------------------------

test('the expander reads a phrase pattern into every phrase it stands for', () => {
  const texts = phrasesOf(/\b(?:payment|card)\s(?:has\s)?(?:failed|issue)/).map((p) => p.text);
  assert.deepEqual(texts, ['payment failed', 'card has issue']);
  assert.deepEqual(phrasesOf(/\bbloquead[a-z]*/), [{ text: 'bloquead', openEnd: true }]);
});

test('every lure pattern is closed on both sides: a word that merely starts with its keyword does not match', () => {
  let checked = 0;
  for (const [i, { kind, re }] of LURE_PATTERNS.entries()) {
    checked += checkClosed(`lure pattern ${i} (${kind})`, re);
  }
  // hundreds of keywords, not a handful of examples
  assert.ok(checked > 300, `only ${checked} phrases checked`);
});

test('the reported false positive: "card issuer" is not a payment problem', () => {
  const payment = LURE_PATTERNS.filter(({ re }) => re.source.includes('card'));
  assert.ok(payment.length > 0);
  for (const { re } of payment) {
    assert.deepEqual(matchSpans(re, 'please contact your card issuer for details'), []);
  }
});

test('the business-document words of HTML attachment lures are whole words', () => {
  checkClosed('business document', BUSINESS_DOCUMENT);
  assert.equal(BUSINESS_DOCUMENT.exec('accountant minutes'), null);
  assert.equal(BUSINESS_DOCUMENT.exec('billboard'), null);
  assert.ok(BUSINESS_DOCUMENT.exec('scanned invoices 2025'));
});

test('the bounce and auto-reply subjects that exempt a null sender, and the undisclosed-recipients words, are whole words', () => {
  checkClosed('automated subject', AUTOMATED_SUBJECT);
  checkClosed('undisclosed recipients', UNDISCLOSED_RECIPIENTS);
  // a subject only starting with such a word is an ordinary subject
  assert.equal(AUTOMATED_SUBJECT.exec('out of officeware: new desks'), null);
  assert.equal(AUTOMATED_SUBJECT.exec('returned mailers get a discount'), null);
  assert.ok(AUTOMATED_SUBJECT.exec('automatic reply: quarterly figures'));
  assert.equal(UNDISCLOSED_RECIPIENTS.exec('undisclosedrecipientsfan@example.org'), null);
  assert.ok(UNDISCLOSED_RECIPIENTS.exec('<undisclosed.recipients@mail.example.net>'));
});

test('every brand name and every service-desk word matches only as a whole word', () => {
  for (const { brand, re, phrase } of BRAND_NAME_PATTERNS) {
    assert.ok(re.test(phrase), `${brand.name}: "${phrase}"`);
    assert.ok(!re.test(`${phrase}q`), `${brand.name}: "${phrase}q" matched`);
    assert.ok(!re.test(`q${phrase}`), `${brand.name}: "q${phrase}" matched`);
  }
  assert.equal(
    BRAND_NAME_PATTERNS.length,
    BRANDS.reduce((n, b) => n + b.names.length, 0),
  );
  // a longer word naming no brand names none
  assert.equal(findBrand('paypalq and xmicrosoft'), null);
  for (const word of SERVICE_WORDS) {
    assert.ok(SERVICE_NAME.test(word), word);
    assert.ok(!SERVICE_NAME.test(`${word}q`), `${word}q matched`);
    assert.ok(!SERVICE_NAME.test(`q${word}`), `q${word} matched`);
  }
});
