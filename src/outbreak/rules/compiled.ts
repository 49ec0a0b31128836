// Compiled conditions of published outbreak rules and the per-message view they are evaluated against.
import { registrableDomain } from '../../mime/urls.ts';
import type { ParsedMessage } from '../../mime/types.ts';
import { type MessageFacts, type ThreatCategory } from '../types.ts';
import {
  type Glob,
  PhraseAutomaton,
  compileGlob,
  headerFromAddress,
  normalizeHost,
  normalizeText,
  testGlob,
  urlPathOf,
} from './match.ts';
import type { Condition, FileMatch, RuleType, UrlMatch } from './schema.ts';

// ---------------------------------------------------------------------------------------------------------------
// Compiled conditions

export interface FileMatcher {
  ext: Set<string> | null;
  types: Set<string> | null;
  /** "application/" for "application/*" */
  typePrefixes: string[] | null;
  substrings: string[] | null;
  globs: Glob[] | null;
  min: number;
  max: number;
  sha: Set<string> | null;
}

export interface UrlMatcher {
  hosts: Set<string> | null;
  /** ".evil.test" entries, stored without the dot */
  hostSuffixes: string[] | null;
  domains: Set<string> | null;
  paths: Glob[] | null;
  exactUrls: Set<string> | null;
  urlGlobs: Glob[] | null;
}

interface SenderMatcher {
  addresses: Set<string>;
  domains: Set<string>;
  suffixes: string[];
}

export type Node =
  | { k: 'all'; c: Node[] }
  | { k: 'any'; c: Node[] }
  | { k: 'not'; c: Node }
  | { k: 'file'; member: boolean; m: FileMatcher }
  | { k: 'url'; m: UrlMatcher }
  | { k: 'sender'; m: SenderMatcher }
  | { k: 'subject' | 'body'; ids: number[] }
  | { k: 'av'; below: number };

export interface CompiledRule {
  id: string;
  level: number;
  category: ThreatCategory;
  type: RuleType;
  description: string;
  expiresAt: number;
  root: Node;
}

const optSet = (xs: string[] | undefined, f: (s: string) => string): Set<string> | null =>
  xs ? new Set(xs.map(f)) : null;

/** Shared between the rules of one bundle: phrase ids index the automaton. */
export class PhraseTable {
  readonly phrases: string[] = [];
  readonly originals: string[] = [];
  private readonly ids = new Map<string, number>();

  id(phrase: string): number {
    const norm = normalizeText(phrase.trim());
    let id = this.ids.get(norm);
    if (id === undefined) {
      id = this.phrases.length;
      this.ids.set(norm, id);
      this.phrases.push(norm);
      this.originals.push(phrase.trim());
    }
    return id;
  }
}

function compileFile(f: FileMatch): FileMatcher {
  const names = f.name?.map((n) => n.toLowerCase());
  const wildName = (n: string) => n.includes('*') || n.includes('?');
  const types = f.trueType?.map((t) => t.toLowerCase());
  const exactTypes = types?.filter((t) => !t.endsWith('/*'));
  const prefixTypes = types?.filter((t) => t.endsWith('/*')).map((t) => t.slice(0, -1));
  return {
    ext: optSet(f.extension, (e) => e.replace(/^\./, '').toLowerCase()),
    types: exactTypes?.length ? new Set(exactTypes) : null,
    typePrefixes: prefixTypes?.length ? prefixTypes : null,
    substrings: names?.some((n) => !wildName(n)) ? names.filter((n) => !wildName(n)) : null,
    globs: names?.some(wildName) ? names.filter(wildName).map((n) => compileGlob(n, true)) : null,
    min: f.size?.min ?? 0,
    max: f.size?.max ?? Infinity,
    sha: optSet(f.sha256, (h) => h.toLowerCase()),
  };
}

function compileUrl(u: UrlMatch): UrlMatcher {
  const hosts = u.host?.filter((h) => !h.startsWith('.')).map(normalizeHost);
  const suffixes = u.host?.filter((h) => h.startsWith('.')).map((h) => normalizeHost(h.slice(1)));
  const exact = u.url?.filter((x) => !x.includes('*')).map((x) => x.toLowerCase());
  const globs = u.url?.filter((x) => x.includes('*')).map((x) => compileGlob(x, false));
  return {
    hosts: hosts?.length ? new Set(hosts) : null,
    hostSuffixes: suffixes?.length ? suffixes : null,
    domains: optSet(u.domain, normalizeHost),
    paths: u.path ? u.path.map((p) => compileGlob(p, false)) : null,
    exactUrls: exact?.length ? new Set(exact) : null,
    urlGlobs: globs?.length ? globs : null,
  };
}

function compileSender(entries: string[]): SenderMatcher {
  const m: SenderMatcher = { addresses: new Set(), domains: new Set(), suffixes: [] };
  for (const raw of entries) {
    const e = raw.toLowerCase();
    const at = e.lastIndexOf('@');
    if (at > 0) {
      m.addresses.add(e.slice(0, at + 1) + normalizeHost(e.slice(at + 1)));
    } else {
      const d = at === 0 ? e.slice(1) : e;
      if (d.startsWith('.')) m.suffixes.push(normalizeHost(d.slice(1)));
      else m.domains.add(normalizeHost(d));
    }
  }
  return m;
}

export function compileNode(c: Condition, phrases: PhraseTable): Node {
  if ('all' in c) return { k: 'all', c: c.all.map((x) => compileNode(x, phrases)) };
  if ('any' in c) return { k: 'any', c: c.any.map((x) => compileNode(x, phrases)) };
  if ('not' in c) return { k: 'not', c: compileNode(c.not, phrases) };
  if ('attachment' in c) return { k: 'file', member: false, m: compileFile(c.attachment) };
  if ('member' in c) return { k: 'file', member: true, m: compileFile(c.member) };
  if ('url' in c) return { k: 'url', m: compileUrl(c.url) };
  if ('sender' in c) return { k: 'sender', m: compileSender(c.sender) };
  if ('subject' in c) return { k: 'subject', ids: c.subject.map((p) => phrases.id(p)) };
  if ('body' in c) return { k: 'body', ids: c.body.map((p) => phrases.id(p)) };
  return { k: 'av', below: c.avSignatureOlderThan };
}

// ---------------------------------------------------------------------------------------------------------------
// Per-message view

export interface FileView {
  /** whole name, lower case */
  name: string;
  /** after the last / or \, lower case */
  base: string;
  ext: string;
  type: string | null;
  size: number;
  sha: string | null;
  evidence: string;
}

interface UrlView {
  url: string;
  lc: string;
  host: string;
  domain: string | null;
  path: string;
}

interface SenderView {
  address: string;
  domain: string;
}

export interface Evidence {
  text: string;
  kind: RuleType;
  viral: boolean;
}

function baseName(name: string): string {
  const slash = Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\'));
  return slash >= 0 ? name.slice(slash + 1) : name;
}

export class MessageView {
  readonly files: FileView[] = [];
  readonly members: FileView[] = [];
  readonly urls: UrlView[] = [];
  readonly senders: SenderView[] = [];
  readonly av: number | null;
  private readonly parsed: ParsedMessage;
  private readonly automaton: PhraseAutomaton | null;
  private readonly table: PhraseTable;
  private subjectText: string | null = null;
  private bodyText: string | null = null;
  private subjectFound: Set<number> | null = null;
  private bodyFound: Set<number> | null = null;

  constructor(facts: MessageFacts, table: PhraseTable, automaton: PhraseAutomaton | null) {
    const parsed = facts.parsed;
    this.parsed = parsed;
    this.table = table;
    this.automaton = automaton;
    this.av = facts.avSignatureVersion;
    for (const a of parsed.attachments) {
      const name = a.name.toLowerCase();
      this.files.push({
        name,
        base: baseName(name),
        ext: a.extension.toLowerCase(),
        type: a.trueType?.toLowerCase() ?? null,
        size: a.size,
        sha: a.sha256.toLowerCase(),
        evidence: a.name || `sha256:${a.sha256}`,
      });
      for (const m of a.members) {
        const mname = m.name.toLowerCase();
        this.members.push({
          name: mname,
          base: baseName(mname),
          ext: m.extension.toLowerCase(),
          type: m.trueType?.toLowerCase() ?? null,
          size: m.size,
          sha: m.sha256?.toLowerCase() ?? null,
          evidence: `${a.name || a.partPath}/${m.name}`,
        });
      }
    }
    for (const u of parsed.urls) {
      const host = normalizeHost(u.host);
      const domain = u.domain ?? registrableDomain(u.host);
      this.urls.push({
        url: u.url,
        lc: u.url.toLowerCase(),
        host,
        domain: domain ? normalizeHost(domain) : null,
        path: urlPathOf(u.url),
      });
    }
    const addSender = (address: string | null): void => {
      if (!address || this.senders.some((s) => s.address === address)) return;
      const at = address.lastIndexOf('@');
      const domain = at >= 0 ? normalizeHost(address.slice(at + 1)) : '';
      this.senders.push({ address: at >= 0 ? address.slice(0, at + 1) + domain : address, domain });
    };
    addSender(facts.sender ? facts.sender.toLowerCase() : null);
    addSender(headerFromAddress(parsed.from));
  }

  private subject(): string {
    return (this.subjectText ??= normalizeText(this.parsed.subject ?? ''));
  }

  private body(): string {
    // NUL never occurs in a phrase, so no phrase can span the two bodies
    return (this.bodyText ??= normalizeText(this.parsed.text) + '\u0000' + normalizeText(this.parsed.html));
  }

  subjectPhrases(): Set<number> {
    if (!this.subjectFound) {
      this.subjectFound = new Set();
      this.automaton!.scan(this.parsed.subject ?? '', this.subjectFound);
    }
    return this.subjectFound;
  }

  bodyPhrases(): Set<number> {
    if (!this.bodyFound) {
      // two scans, so no phrase spans the end of the text and the start of the HTML
      this.bodyFound = new Set();
      this.automaton!.scan(this.parsed.text, this.bodyFound);
      this.automaton!.scan(this.parsed.html, this.bodyFound);
    }
    return this.bodyFound;
  }

  hasPhrase(where: 'subject' | 'body', id: number): boolean {
    if (this.automaton) return (where === 'subject' ? this.subjectPhrases() : this.bodyPhrases()).has(id);
    return (where === 'subject' ? this.subject() : this.body()).includes(this.table.phrases[id]);
  }
}

function fileMatches(m: FileMatcher, f: FileView): boolean {
  if (m.sha && (f.sha === null || !m.sha.has(f.sha))) return false;
  if (m.ext && !m.ext.has(f.ext)) return false;
  if (f.size < m.min || f.size > m.max) return false;
  if (m.types || m.typePrefixes) {
    const t = f.type;
    if (t === null) return false;
    if (!(m.types?.has(t) || m.typePrefixes?.some((p) => t.startsWith(p)))) return false;
  }
  if (m.substrings || m.globs) {
    if (!(m.substrings?.some((s) => f.name.includes(s)) || m.globs?.some((g) => testGlob(g, f.base)))) return false;
  }
  return true;
}

function hostHasSuffix(host: string, suffix: string): boolean {
  return host === suffix || (host.endsWith(suffix) && host.charCodeAt(host.length - suffix.length - 1) === 0x2e);
}

function urlMatches(m: UrlMatcher, u: UrlView): boolean {
  if (m.hosts || m.hostSuffixes) {
    if (!(m.hosts?.has(u.host) || m.hostSuffixes?.some((s) => hostHasSuffix(u.host, s)))) return false;
  }
  if (m.domains && (u.domain === null || !m.domains.has(u.domain))) return false;
  if (m.paths && !m.paths.some((g) => testGlob(g, u.path))) return false;
  if (m.exactUrls || m.urlGlobs) {
    if (!(m.exactUrls?.has(u.lc) || m.urlGlobs?.some((g) => testGlob(g, u.lc)))) return false;
  }
  return true;
}

function senderMatches(m: SenderMatcher, s: SenderView): boolean {
  return (
    m.addresses.has(s.address) ||
    (s.domain !== '' && (m.domains.has(s.domain) || m.suffixes.some((x) => hostHasSuffix(s.domain, x))))
  );
}

/** Evaluates a node; when `out` is given, the evidence of a match is appended to it (and only of a match). */
export function evalNode(n: Node, v: MessageView, table: PhraseTable, out: Evidence[] | null): boolean {
  switch (n.k) {
    case 'all': {
      const mark = out?.length ?? 0;
      for (const c of n.c) {
        if (!evalNode(c, v, table, out)) {
          if (out) out.length = mark;
          return false;
        }
      }
      return true;
    }
    case 'any':
      for (const c of n.c) if (evalNode(c, v, table, out)) return true;
      return false;
    case 'not':
      return !evalNode(n.c, v, table, null);
    case 'file':
      for (const f of n.member ? v.members : v.files) {
        if (fileMatches(n.m, f)) {
          out?.push({ text: f.evidence, kind: 'attachment', viral: true });
          return true;
        }
      }
      return false;
    case 'url':
      for (const u of v.urls) {
        if (urlMatches(n.m, u)) {
          out?.push({ text: u.url, kind: 'url', viral: false });
          return true;
        }
      }
      return false;
    case 'sender':
      for (const s of v.senders) {
        if (senderMatches(n.m, s)) {
          out?.push({ text: s.address, kind: 'sender', viral: false });
          return true;
        }
      }
      return false;
    case 'subject':
    case 'body':
      for (const id of n.ids) {
        if (v.hasPhrase(n.k, id)) {
          out?.push({ text: table.originals[id], kind: 'content', viral: false });
          return true;
        }
      }
      return false;
    case 'av':
      if (v.av !== null && v.av < n.below) {
        out?.push({ text: `anti-virus signature version ${v.av}`, kind: 'content', viral: false });
        return true;
      }
      return false;
  }
}
