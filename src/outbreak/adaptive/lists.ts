// Static lists the adaptive rules use: risky file types, URL shorteners, free hosting, free mail
// providers, TLDs abused far above their share, and the brands most often impersonated. The lists are
// general knowledge (public phishing reports, registrar abuse statistics), not drawn from any corpus.
// Everything is lower case; domains are registrable domains (public suffix + 1) unless noted.
//
// The lists are data, in lists/*.json (attachments, domains, brands), read once when this module loads.
import { readFileSync } from 'node:fs';

const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./lists/${name}`, import.meta.url), 'utf8')) as T;

const attachments = load<{
  executableExtensions: string[];
  diskImageExtensions: string[];
  /** dangerous besides executables and disk images: Apple configuration profiles (install certificates,
   * VPNs, mail accounts, proxies), OneNote notebooks (the 2023 replacement for macros) */
  otherDangerousExtensions: string[];
  executableTrueTypes: string[];
  documentExtensions: string[];
  macroExtensions: string[];
  htmlAttachmentExtensions: string[];
  archiveExtensions: string[];
  expectedTrueTypes: Record<string, string[]>;
}>('attachments.json');
const domains = load<{
  urlShorteners: string[];
  freeHosting: string[];
  freemailDomains: string[];
  sharedSenderDomains: string[];
  suspiciousTlds: string[];
  clickTrackers: string[];
}>('domains.json');
const brands = load<{ brands: Brand[]; serviceWords: string[] }>('brands.json');

/** Executables and scripts that run when opened on Windows (or with a double click elsewhere). */
export const EXECUTABLE_EXTENSIONS: ReadonlySet<string> = new Set(attachments.executableExtensions);

/** Disk images: mounted with a double click, they carry executables past mark-of-the-web. */
export const DISK_IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(attachments.diskImageExtensions);

/** Attachment types that are dangerous by themselves (DESIGN §4.2: disk images, shortcuts, scripts). */
export const DANGEROUS_ATTACHMENT_EXTENSIONS: ReadonlySet<string> = new Set([
  ...EXECUTABLE_EXTENSIONS,
  ...DISK_IMAGE_EXTENSIONS,
  ...attachments.otherDangerousExtensions,
]);

/** True types (magic bytes, file-type's names) of native executables. */
export const EXECUTABLE_TRUE_TYPES: ReadonlySet<string> = new Set(attachments.executableTrueTypes);

/** Decoy extensions: what a victim expects to open safely. */
export const DOCUMENT_EXTENSIONS: ReadonlySet<string> = new Set(attachments.documentExtensions);

/** Office formats that carry VBA macros by definition. */
export const MACRO_EXTENSIONS: ReadonlySet<string> = new Set(attachments.macroExtensions);

/** Attachment extensions whose content is HTML or active SVG: a local page that can post credentials. */
export const HTML_ATTACHMENT_EXTENSIONS: ReadonlySet<string> = new Set(attachments.htmlAttachmentExtensions);

/** Archive extensions (listed by the parser when zip/gzip; others are opaque). */
export const ARCHIVE_EXTENSIONS: ReadonlySet<string> = new Set(attachments.archiveExtensions);

/**
 * What true types (file-type names) an extension may legitimately have. Only extensions listed here
 * are checked; an unknown true type (null) never contradicts.
 */
export const EXPECTED_TRUE_TYPES: Readonly<Record<string, readonly string[]>> = attachments.expectedTrueTypes;

/** URL shorteners and link-in-bio redirectors: the destination is hidden from the reader. */
export const URL_SHORTENERS: ReadonlySet<string> = new Set(domains.urlShorteners);

/**
 * Free hosting, cloud buckets, site builders and form services: anyone can publish a page there in a
 * minute, so a login page on them is never the real one. Matched on the registrable domain, or on
 * the host suffix for entries with a dot beyond the registrable domain (storage.googleapis.com).
 */
export const FREE_HOSTING: ReadonlySet<string> = new Set(domains.freeHosting);

/**
 * Click trackers of mailing services and link protection of mail gateways: newsletters route every
 * link through them, so the visible address and the tracker's host differ by design.
 */
export const CLICK_TRACKERS: ReadonlySet<string> = new Set(domains.clickTrackers);

/** Free mailbox providers: anyone can open an address there under any display name. */
export const FREEMAIL_DOMAINS: ReadonlySet<string> = new Set(domains.freemailDomains);

/**
 * Platforms whose customers get a subdomain or a default address: mail "from" them says nothing of
 * who sent it (onmicrosoft.com is every Microsoft 365 tenant's initial domain).
 */
export const SHARED_SENDER_DOMAINS: ReadonlySet<string> = new Set(domains.sharedSenderDomains);

/**
 * Top-level domains with abuse rates far above the average in public registrar abuse statistics
 * (cheap or free registration, little vetting). A weak signal: plenty of honest sites live there.
 */
export const SUSPICIOUS_TLDS: ReadonlySet<string> = new Set(domains.suspiciousTlds);

export interface Brand {
  /** canonical name (shown in evidence) */
  name: string;
  /** phrases that name the brand, matched as whole words in folded text */
  names: readonly string[];
  /** host tokens that name the brand inside a domain (letters and digits only) */
  tokens: readonly string[];
  /** registrable domains the brand really sends from / hosts on; any domain whose first label is a token also counts */
  domains: readonly string[];
}

/**
 * Brands phishing impersonates most (global and the large regional ones). Names that are ordinary
 * words or given names (Chase, Target, Orange, Visa, Prime) are only matched with their qualifier.
 */
export const BRANDS: readonly Brand[] = brands.brands;

/** Generic words a display name uses to pose as a service desk (combined with free mail they are a tell). */
export const SERVICE_WORDS: readonly string[] = brands.serviceWords;
