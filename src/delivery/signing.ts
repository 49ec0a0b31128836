// DKIM signing (RFC 6376; Ed25519 RFC 8463) and ARC sealing (RFC 8617) of delivered mail, at send time.
//
// Why at send time and not as a durable modification: the signature header fields are a pure function
// of the durable bytes (the spool file or the modified copy CopyModifier made durable), the key and
// the signing time — and the signing time is the copy's receipt time (t=), not "now". RSA PKCS#1 v1.5
// and Ed25519 signatures are deterministic, so every attempt, on any restart, prepends exactly the same
// header fields to exactly the same bytes. A crash can never leave a signature over other bytes behind
// (nothing is written), no accepted message waits for an extra fsync, and a rotated key applies to the
// mail still queued.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createSeal, dkimSign } from 'mailauth';
import type { Config } from '../config/schema.ts';
import { DEFAULT_SIGNED_HEADERS } from '../config/outbound-schema.ts';
import { readCopyStart } from '../flow/copies.ts';
import { authResultsField } from '../senderauth/headers.ts';

/** What the queue knows of where a delivery job came from (its copy's envelope). */
export interface JobOrigin {
  listener: string;
  direction: 'incoming' | 'outgoing';
  /** the gateway wrote it (DSN, alert, digest …) */
  generated?: string;
  /** a policy changed its bytes (CopyModifier): ARC sealing applies */
  modified?: boolean;
  /**
   * our Authentication-Results value (senderAuth stage), put on top at send time: the durable bytes are
   * the message as it arrived, so no second copy is written just for this header
   */
  authResults?: string;
}

/** The bytes of one job: in memory, or a byte range of a spool file. */
export interface MessageSource {
  bytes: Buffer | null;
  file: string;
  bodyOffset: number;
  size: number;
  receivedAt: number;
}

export interface SigningKey {
  domain: string;
  selector: string;
  /** PEM */
  pem: string;
  type: 'ed25519' | 'rsa';
  headers: string[];
}

export interface SignResult {
  /**
   * header fields to put in front of the message (each ending in CRLF; ARC set, DKIM-Signature, our
   * Authentication-Results); empty: nothing to add
   */
  prefix: Buffer;
  /** for tracking: "dkim d=… s=… ed25519-sha256", "arc i=1 d=… cv=none" */
  notes: string[];
}

/** Loads a DKIM private key and checks it is usable (Ed25519, or RSA of at least 1024 bits). */
export function loadSigningKey(file: string): {
  pem: string;
  type: 'ed25519' | 'rsa';
  key: KeyObject;
  warning?: string;
} {
  const pem = readFileSync(file, 'utf8');
  const key = createPrivateKey(pem);
  const type = key.asymmetricKeyType;
  if (type !== 'ed25519' && type !== 'rsa') throw new Error(`${file}: a ${type} key; DKIM takes Ed25519 or RSA`);
  if (type === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 1024)
    throw new Error(`${file}: RSA keys shorter than 1024 bits are not allowed (RFC 8301)`);
  const mode = statSync(file).mode & 0o777;
  const warning = mode & 0o077 ? `${file} is readable by others (mode ${mode.toString(8)}); chmod 600 it` : undefined;
  return { pem, type, key, ...(warning ? { warning } : {}) };
}

/** The header section of a message (up to the empty line), at most `max` bytes of it. */
export async function readHead(src: MessageSource, max = 256 * 1024): Promise<Buffer> {
  const buf = await readCopyStart(src, max);
  const end = buf.indexOf('\r\n\r\n');
  return end >= 0 ? buf.subarray(0, end + 2) : buf;
}

/** Unfolded header fields of a header section, in order, names lower-cased. */
export function headerFields(head: Buffer): Array<{ name: string; value: string }> {
  const out: Array<{ name: string; value: string }> = [];
  for (const line of head.toString('latin1').split('\r\n')) {
    if (!line) continue;
    if ((line[0] === ' ' || line[0] === '\t') && out.length) out[out.length - 1].value += ' ' + line.trim();
    else {
      const colon = line.indexOf(':');
      if (colon > 0) out.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
    }
  }
  return out;
}

/** The domain of the (first) header From address, lower-case; null when there is none. */
export function fromDomain(fields: Array<{ name: string; value: string }>): string | null {
  const from = fields.find((f) => f.name === 'from')?.value;
  if (!from) return null;
  const angle = /<([^<>]*)>/.exec(from);
  const addr = angle ? angle[1] : (/[^\s,;:"()<>]+@[^\s,;:"()<>]+/.exec(from)?.[0] ?? '');
  const at = addr.lastIndexOf('@');
  return at < 0
    ? null
    : addr
        .slice(at + 1)
        .toLowerCase()
        .replace(/\.$/, '') || null;
}

/**
 * The hook between sender authentication and ARC sealing: the results of the incoming check, as the
 * payload of an ARC-Authentication-Results ("authserv-id; dkim=pass …"), read from the message's topmost
 * Authentication-Results with our authserv-id. Used when the job does not carry the result itself
 * (JobOrigin.authResults): a modified copy written by an earlier version held the field in its bytes.
 * null: no check ran on this message.
 */
export function incomingAuthResults(fields: Array<{ name: string; value: string }>, authservId: string): string | null {
  for (const f of fields) {
    if (f.name !== 'authentication-results') continue;
    const id = f.value.split(';')[0].trim().split(/\s+/)[0].toLowerCase();
    if (id === authservId.toLowerCase()) return f.value.replace(/\s+/g, ' ').trim();
  }
  return null;
}

function source(src: MessageSource, prefix?: Buffer): Readable | Buffer {
  if (src.bytes) return prefix?.length ? Buffer.concat([prefix, src.bytes]) : src.bytes;
  const file = createReadStream(src.file, {
    start: src.bodyOffset,
    end: src.bodyOffset + src.size - 1,
    highWaterMark: 256 * 1024,
  });
  if (!prefix?.length) return file;
  return Readable.from(
    (async function* () {
      yield prefix;
      yield* file;
    })(),
  );
}

/** The configured keys, loaded once at start; signs and seals delivery jobs. */
export class OutboundSigner {
  private readonly config: Config;
  private readonly keys = new Map<string, SigningKey>();
  readonly warnings: string[] = [];

  constructor(config: Config, dataDir: string) {
    this.config = config;
    const dkim = config.outbound.dkim;
    for (const [domain, d] of Object.entries(dkim.domains)) {
      const file = path.resolve(dataDir, d.keyFile);
      const k = loadSigningKey(file);
      if (k.warning) this.warnings.push(k.warning);
      this.keys.set(domain.toLowerCase(), {
        domain: domain.toLowerCase(),
        selector: d.selector,
        pem: k.pem,
        type: k.type,
        headers: d.headers ?? dkim.headers ?? DEFAULT_SIGNED_HEADERS,
      });
    }
  }

  get enabled(): boolean {
    return this.keys.size > 0;
  }

  /** The key for a domain: the domain itself, else its nearest parent domain with a key. */
  keyFor(domain: string | null): SigningKey | null {
    let d = domain ?? '';
    while (d) {
      const k = this.keys.get(d);
      if (k) return k;
      const dot = d.indexOf('.');
      d = dot < 0 ? '' : d.slice(dot + 1);
    }
    return null;
  }

  private signs(origin: JobOrigin): boolean {
    const dkim = this.config.outbound.dkim;
    if (origin.generated) return dkim.generated;
    return (
      dkim.directions.includes(origin.direction) && (!dkim.listeners.length || dkim.listeners.includes(origin.listener))
    );
  }

  private seals(origin: JobOrigin): boolean {
    const arc = this.config.outbound.arc;
    return arc.enabled && !!origin.modified && !origin.generated && arc.directions.includes(origin.direction);
  }

  /**
   * The header fields to put in front of this job's bytes: a DKIM-Signature when the sending domain has a
   * key, then an ARC set over the signed message when a policy modified it. Throws when a configured
   * signature cannot be made (the queue defers: mail that should be signed never leaves unsigned).
   */
  async sign(src: MessageSource, sender: string, origin: JobOrigin | undefined): Promise<SignResult> {
    // Our Authentication-Results sits right above the message as it arrived (RFC 8601 §5: above the
    // trace fields), under any signature we add: signatures and seals cover it like the rest.
    const results = origin?.authResults ? authResultsField(origin.authResults) : Buffer.alloc(0);
    const none = { prefix: results, notes: [] };
    if (!origin || !this.keys.size) return none;
    const dkimOn = this.signs(origin);
    const arcOn = this.seals(origin);
    if (!dkimOn && !arcOn) return none;
    const fields = headerFields(await readHead(src));
    const signTime = new Date(src.receivedAt);
    const notes: string[] = [];
    let prefix = results;
    if (dkimOn) {
      const senderDomain = sender.includes('@') ? sender.slice(sender.lastIndexOf('@') + 1).toLowerCase() : null;
      const key = this.keyFor(fromDomain(fields)) ?? this.keyFor(senderDomain);
      if (key) {
        const r = await dkimSign(source(src, prefix), {
          canonicalization: 'relaxed/relaxed',
          signTime,
          signatureData: [
            {
              signingDomain: key.domain,
              selector: key.selector,
              privateKey: key.pem,
              // From is always signed (RFC 6376 §5.4)
              headerList: key.headers.includes('from') ? key.headers : ['from', ...key.headers],
            },
          ],
        } as Parameters<typeof dkimSign>[1]);
        if (r.errors.length || !r.signatures) {
          const why = r.errors.map((e) => e.err.message).join('; ') || 'no signature made';
          throw new Error(`DKIM signing for ${key.domain} failed: ${why}`);
        }
        prefix = Buffer.concat([Buffer.from(r.signatures), prefix]);
        notes.push(`dkim d=${key.domain} s=${key.selector} ${key.type === 'rsa' ? 'rsa' : 'ed25519'}-sha256`);
      }
    }
    if (arcOn) {
      const arc = this.config.outbound.arc;
      const key = this.keys.get(arc.domain!.toLowerCase())!;
      const authservId = arc.authservId ?? this.config.senderAuth.authservId ?? this.config.hostname;
      const chain = fields.filter((f) => f.name === 'arc-seal').length;
      const incoming = origin.authResults
        ? origin.authResults.replace(/\s+/g, ' ').trim()
        : incomingAuthResults(fields, authservId);
      // The chain status of an existing chain comes from the incoming check; without one it is unknown,
      // and a seal must not claim a status (RFC 8617 §5.1.1): leave such a message unsealed.
      const cv = chain === 0 ? 'none' : (/\barc=(pass|fail)\b/i.exec(incoming ?? '')?.[1]?.toLowerCase() ?? null);
      if (!cv) notes.push(`arc skipped: ${chain} ARC set(s) and no arc= result from the incoming check`);
      else {
        const authResults = incoming ?? `${authservId}; arc=none`;
        const sealed = await createSeal(source(src, prefix), {
          seal: { signingDomain: key.domain, selector: key.selector, privateKey: key.pem, cv, authResults, signTime },
        });
        if (!sealed.headers.length) {
          const why = sealed.errors.map((e) => e.err.message).join('; ') || 'no seal made';
          throw new Error(`ARC sealing for ${key.domain} failed: ${why}`);
        }
        prefix = Buffer.concat([Buffer.from(sealed.headers.join('\r\n') + '\r\n'), prefix]);
        notes.push(`arc i=${chain + 1} d=${key.domain} s=${key.selector} cv=${cv}`);
      }
    }
    return { prefix, notes };
  }
}
