// Config section for the end-user quarantine (DESIGN §9, issue 13): recipients reach their own held
// incoming messages in the policy quarantines an administrator opened to them (`quarantine.policy[].endUsers`)
// through a signed link in a periodic digest, a link they ask for, or an IMAP sign-in. Never the virus or
// Outbreak quarantine. Part of the one schema in schema.ts.
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';

export const endUserQuarantineSchema = z
  .object({
    enabled: z
      .boolean()
      .default(false)
      .describe('Let recipients see and act on their own held messages (in quarantines whose endUsers is not none)'),
    url: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        'The web UI address recipients reach, put in digest links (e.g. https://quarantine.example.com); unset: the admin port',
      ),
    linkLifetime: duration
      .default('14d')
      .describe('How long a link in a digest or a requested link signs its recipient in'),
    sessionTimeout: duration.default('1h').describe('An end-user session unused this long ends'),
    requestLink: z
      .boolean()
      .default(true)
      .describe(
        'A recipient may ask for a new link by entering their address: it is mailed to that address only, and the page says the same whatever the address',
      ),
    digest: z
      .object({
        enabled: z.boolean().default(true).describe('Mail each recipient a list of their newly held messages'),
        every: duration.default('1d').describe('How often digests go out (only to recipients with new held messages)'),
        from: z
          .string()
          .regex(/^[^\s@<>]+@[^\s@<>]+$/, 'an address such as quarantine@example.com')
          .optional()
          .describe('Sender of the digests; unset: quarantine@<hostname>'),
        subject: z
          .string()
          .regex(/^[\x20-\x7e]{1,200}$/, 'US-ASCII printable characters, at most 200')
          .default('Messages held for you')
          .describe('Subject of the digests'),
        maxMessages: z.number().int().min(1).max(1000).default(100).describe('Most messages listed in one digest'),
      })
      .strict()
      .prefault({})
      .describe('The periodic digest, sent through the gateway’s own queue'),
    imap: z
      .object({
        host: z.string().min(1).describe('IMAP server checking end users’ mailbox passwords'),
        port: z.number().int().min(1).max(65535).default(993).describe('IMAP port'),
        secure: z.boolean().default(true).describe('TLS from the start (993); false: STARTTLS when offered'),
        rejectUnauthorized: z.boolean().default(true).describe('Verify the server certificate'),
        domain: z
          .string()
          .optional()
          .describe(
            'Domain added to a user name without @ (their address is user@domain); unset: sign in with the address',
          ),
      })
      .strict()
      .optional()
      .describe('Sign-in with mailbox credentials (checked by an IMAP LOGIN); unset: links only'),
  })
  .strict()
  .prefault({})
  .describe('The end-user quarantine (docs/web-ui.md)');
