// SMTP replies the gateway sends, as named constants (RFC 5321 §4.2, enhanced codes per RFC 3463).
// smtp-server adds the enhanced status code itself; only the session turns these into socket text.
// Texts are US-ASCII only (RFC 5321 §4.2 reply lines are 7-bit; test/smtp-details checks every one).

export interface SmtpReply {
  code: number;
  text: string;
  /**
   * RFC 3463 enhanced status code, when smtp-server's default for the reply code would be wrong
   * (its table maps 452 to 4.2.2 "mailbox full", 550 to 5.1.1 "bad mailbox"). The session writes it
   * in place of the default; see withEnhancedCodes().
   */
  enhanced?: string;
}

export const Replies = {
  rejectedByHat: { code: 554, text: 'Access denied: your host is not allowed to send mail here' },
  tempfailByHat: { code: 421, text: 'Service temporarily unavailable for your host, try again later' },
  tooManyConnections: { code: 421, text: 'Too many concurrent connections from your address, try again later' },
  // RFC 3463 5.7.1 "delivery not authorized": the mailbox may well exist, this host just won't relay to it.
  relayDenied: { code: 550, text: 'Relaying denied: recipient domain is not accepted here', enhanced: '5.7.1' },
  tooManyRecipients: { code: 452, text: 'Too many recipients for this message' },
  recipientRateExceeded: { code: 452, text: 'Too many recipients from your address this hour, try again later' },
  tooManyMessages: { code: 421, text: 'Too many messages in this session, reconnect to send more' },
  messageTooBig: { code: 552, text: 'Message exceeds the size limit for your host' },
  bareLineEnding: {
    code: 550,
    text: 'Message refused: bare CR or LF in message data (RFC 5321 section 2.3.8); line endings must be CRLF',
  },
  nulInData: {
    code: 554,
    text: 'Message refused: message contains NUL bytes',
    enhanced: '5.6.0',
  },
  dataTimeout: {
    code: 451,
    text: 'Message transfer took too long, closing connection; try again later',
    enhanced: '4.4.2',
  },
  dataTooSlow: {
    code: 451,
    text: 'Message transfer too slow, closing connection; try again later',
    enhanced: '4.4.2',
  },
  // RFC 6531 §3.5: a non-ASCII address in a session without SMTPUTF8.
  utf8SenderNeedsSmtputf8: {
    code: 553,
    text: 'Sender address has non-ASCII characters: SMTPUTF8 is required',
    enhanced: '5.6.7',
  },
  utf8RecipientNeedsSmtputf8: {
    code: 553,
    text: 'Recipient address has non-ASCII characters: SMTPUTF8 is required',
    enhanced: '5.6.7',
  },
  spoolFailure: { code: 451, text: 'Local error while storing the message, try again later' },
  insufficientStorage: {
    code: 452,
    text: 'Insufficient system storage, try again later',
    enhanced: '4.3.1',
  },
  badSender: { code: 553, text: 'Sender address rejected: invalid address' },
  senderBlocked: { code: 550, text: 'Sender blocked by the security team', enhanced: '5.7.1' },
  badRecipient: { code: 553, text: 'Recipient address rejected: invalid address' },
  // Recipient validation against a directory (smtp/ldap-accept.ts) and its harvest limits.
  unknownRecipient: { code: 550, text: 'Recipient address rejected: no such user here', enhanced: '5.1.1' },
  directoryUnavailable: {
    code: 451,
    text: 'Recipient cannot be verified now (directory unavailable), try again later',
    enhanced: '4.4.3',
  },
  tooManyUnknownRecipients: {
    code: 421,
    text: 'Too many unknown recipients in this session, closing connection',
    enhanced: '4.7.0',
  },
  unknownRecipientRateExceeded: {
    code: 452,
    text: 'Too many unknown recipients from your address this hour, try again later',
    enhanced: '4.7.1',
  },
} as const satisfies Record<string, SmtpReply>;

export class SmtpReplyError extends Error {
  readonly responseCode: number;
  constructor(reply: SmtpReply) {
    // The enhanced code travels at the start of the text; withEnhancedCodes() moves it into place.
    super(reply.enhanced ? `${reply.enhanced} ${reply.text}` : reply.text);
    this.responseCode = reply.code;
  }
}

const EMBEDDED_ENHANCED = /^([245]\.\d{1,3}\.\d{1,3}) (.*)$/s;

/**
 * Wraps an smtp-server connection's send(): a reply text that starts with its own enhanced status
 * code is sent with that code instead of the library's default for the reply code (or without any,
 * when the client did not ask for ENHANCEDSTATUSCODES with EHLO).
 */
export function withEnhancedCodes(conn: {
  send: (code: number, data?: unknown, context?: unknown) => unknown;
  _useEnhancedStatusCodes?: () => boolean;
}): void {
  const send = conn.send.bind(conn);
  conn.send = (code: number, data?: unknown, context?: unknown) => {
    const m = typeof data === 'string' ? EMBEDDED_ENHANCED.exec(data) : null;
    if (!m) return send(code, data, context);
    const useEnhanced = conn._useEnhancedStatusCodes?.() ?? true;
    return send(code, useEnhanced ? `${m[1]} ${m[2]}` : m[2], false);
  };
}
