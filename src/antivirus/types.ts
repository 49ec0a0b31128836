// What the anti-virus stage reports about a message (DESIGN §5); the policy layer decides.
export interface AntivirusResult {
  verdict: 'clean' | 'infected' | 'unscannable';
  /** virus names (infected) */
  names: string[];
  /** why it could not be scanned (unscannable) */
  reason: 'size_limit' | 'encrypted' | 'error' | 'timeout' | 'unavailable' | null;
  detail: string;
  /** attachments found infected one by one (only looked for when the policy strips) */
  infectedParts: Array<{ partPath: string; name: string; names: string[] }>;
  /** clamd's signature version when known */
  signatureVersion: number | null;
}
