// Types of the parsed message every pipeline stage reads. The parse stage builds it once, streaming,
// from the spooled bytes; later stages never re-parse the whole message.

/** Bounds on the work an attacker-controlled message can cause. */
export interface ParseLimits {
  /** multipart / message/rfc822 nesting depth; deeper parts are counted but not descended into */
  maxDepth: number;
  /** number of MIME parts analysed; further parts are skipped and flagged */
  maxParts: number;
  /** URLs kept per message; further URLs are dropped and flagged */
  maxUrls: number;
  /** characters of text/html kept per part for URL extraction and phrase rules */
  maxTextChars: number;
  /** archive nesting depth (a zip in a zip in a zip = 3) */
  maxArchiveDepth: number;
  /** archive members listed per message, across all archives */
  maxArchiveMembers: number;
  /** total uncompressed bytes read out of archives per message */
  maxArchiveExpandedBytes: number;
  /** member uncompressed/compressed ratio above which it is flagged as a bomb and not expanded */
  maxCompressionRatio: number;
  /** wall-clock budget for the whole parse in ms; exceeding it raises ParseTimeoutError */
  timeoutMs: number;
}

export const defaultParseLimits: ParseLimits = {
  maxDepth: 20,
  maxParts: 500,
  maxUrls: 1000,
  maxTextChars: 1024 * 1024,
  maxArchiveDepth: 3,
  maxArchiveMembers: 1000,
  maxArchiveExpandedBytes: 64 * 1024 * 1024,
  maxCompressionRatio: 200,
  timeoutMs: 10_000,
};

export interface MimePart {
  /** dotted path like "1.2.1"; the root is "1" */
  path: string;
  contentType: string;
  /** Content-Disposition value, lower case, when present */
  disposition: string | null;
  filename: string | null;
  charset: string | null;
  transferEncoding: string | null;
  /** byte offset of the part's header block in the message */
  headerOffset: number;
  /** byte offset of the part's body in the message */
  bodyOffset: number;
  /** decoded body size in bytes (leaf parts only, 0 for multiparts) */
  decodedSize: number;
  depth: number;
}

export interface ArchiveMember {
  /** member path inside its archive */
  name: string;
  /** lower-case extension of `name` without the dot, or "" */
  extension: string;
  size: number;
  compressedSize: number;
  /** MIME type from magic bytes, or null when unknown or not read */
  trueType: string | null;
  sha256: string | null;
  encrypted: boolean;
  /** 1 for members of an attachment, 2 for members of an archive inside it, ... */
  depth: number;
}

export interface AttachmentInfo {
  partPath: string;
  /** file name from Content-Disposition/Content-Type, or "" when the part has none */
  name: string;
  extension: string;
  declaredType: string;
  /** MIME type from magic bytes (file-type), or null when unknown */
  trueType: string | null;
  size: number;
  sha256: string;
  /** true when the attachment is an archive we could list */
  isArchive: boolean;
  /** archive members (flattened, with depth), empty when not an archive */
  members: ArchiveMember[];
  /** archive is password-protected (any member encrypted) */
  encrypted: boolean;
}

export interface ExtractedUrl {
  url: string;
  /** lower-case host (IDN kept as written, punycode as written) */
  host: string;
  /** registrable domain (public suffix + 1) or null for IP literals / unknown suffixes */
  domain: string | null;
  source: 'text' | 'html';
  /** visible anchor text for HTML links, when any */
  anchorText: string | null;
}

export type ParseAnomaly =
  | 'depth_limit'
  | 'part_limit'
  | 'url_limit'
  | 'text_truncated'
  | 'archive_member_limit'
  | 'archive_expansion_limit'
  | 'archive_bomb'
  | 'archive_depth_limit'
  | 'archive_corrupt'
  | 'malformed_mime';

export interface ParsedMessage {
  /** total bytes of the message as parsed */
  size: number;
  /** top-level header fields in order, unfolded, values undecoded except RFC 2047 words in subject/from */
  headers: Array<{ key: string; value: string }>;
  from: string | null;
  subject: string | null;
  messageId: string | null;
  parts: MimePart[];
  attachments: AttachmentInfo[];
  urls: ExtractedUrl[];
  /** decoded text of text/plain parts, joined, bounded by maxTextChars */
  text: string;
  /** decoded text of text/html parts, joined, bounded by maxTextChars */
  html: string;
  anomalies: ParseAnomaly[];
}

export class ParseTimeoutError extends Error {
  readonly code = 'parse_timeout';
  override readonly name = 'ParseTimeoutError';
}
