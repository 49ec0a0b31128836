// The DNS resolver every subsystem shares (`dns`): which servers to ask and how long one query may take.
// Part of the one schema in schema.ts; src/dns/resolver.ts builds resolvers from it.
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';

/** "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:5353" */
const dnsServer = z
  .string()
  .regex(
    /^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?|[0-9a-f:]+|\[[0-9a-f:]+\]:\d{1,5})$/i,
    'an IP address, optionally with a port: "192.0.2.53", "127.0.0.1:5353", "[2001:db8::53]:53"',
  );

export const dnsSchema = z
  .object({
    servers: z
      .array(dnsServer)
      .default([])
      .describe("DNS servers to ask, in order; empty: the system's resolvers (/etc/resolv.conf)"),
    timeout: duration
      .default('2s')
      .describe('Longest wait for one DNS query (all tries); past it the query counts as failed'),
    tries: z.number().int().min(1).max(5).default(2).describe('Attempts per query and server before giving up'),
    listCacheTtl: duration
      .default('5m')
      .describe(
        'How long a DNS blocklist or allowlist answer (listed or not) is kept; the record TTL when shorter (at least 30s)',
      ),
  })
  .strict()
  .prefault({})
  .describe('DNS resolution: servers, timeouts and caches for reputation lists (and other lookups)');

export type DnsConfig = z.infer<typeof dnsSchema>;
