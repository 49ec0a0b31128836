// SMTP replies the gateway sends, as named constants (RFC 5321 §4.2, enhanced codes per RFC 3463).
// smtp-server adds the enhanced status code itself; only the session turns these into socket text.

export interface SmtpReply {
  code: number;
  text: string;
}

export const Replies = {
  rejectedByHat: { code: 554, text: 'Access denied: your host is not allowed to send mail here' },
  tempfailByHat: { code: 421, text: 'Service temporarily unavailable for your host, try again later' },
  tooManyConnections: { code: 421, text: 'Too many concurrent connections from your address, try again later' },
  relayDenied: { code: 550, text: 'Relaying denied: recipient domain is not accepted here' },
  tooManyRecipients: { code: 452, text: 'Too many recipients for this message' },
  recipientRateExceeded: { code: 452, text: 'Too many recipients from your address this hour, try again later' },
  tooManyMessages: { code: 421, text: 'Too many messages in this session, reconnect to send more' },
  messageTooBig: { code: 552, text: 'Message exceeds the size limit for your host' },
  bareLineEnding: {
    code: 550,
    text: 'Message refused: bare CR or LF in message data (RFC 5321 §2.3.8); line endings must be CRLF',
  },
  spoolFailure: { code: 451, text: 'Local error while storing the message, try again later' },
  badSender: { code: 553, text: 'Sender address rejected: invalid address' },
  badRecipient: { code: 553, text: 'Recipient address rejected: invalid address' },
} as const satisfies Record<string, SmtpReply>;

export class SmtpReplyError extends Error {
  readonly responseCode: number;
  constructor(reply: SmtpReply) {
    super(reply.text);
    this.responseCode = reply.code;
  }
}
