// Address helpers without I/O.

/** Domain part of an address, lower-case; "" for the null sender or a local-only name. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0
    ? ''
    : address
        .slice(at + 1)
        .toLowerCase()
        .replace(/\.$/, '');
}

/**
 * Matches an address against entries of an access table: "user@dom" (exact), "dom" (domain),
 * ".dom" (subdomains of dom), "@dom" (domain).
 */
export function addressMatches(address: string, entries: readonly string[]): boolean {
  const addr = address.toLowerCase();
  const dom = domainOf(addr);
  for (const raw of entries) {
    const e = raw.toLowerCase();
    if (e.includes('@') && !e.startsWith('@')) {
      if (e === addr) return true;
    } else if (e.startsWith('.')) {
      if (dom.endsWith(e)) return true;
    } else if (dom === (e.startsWith('@') ? e.slice(1) : e)) return true;
  }
  return false;
}
