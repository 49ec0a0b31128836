// The catalogue of adaptive rules (DESIGN §4.2): stable ids, fixed levels, categories and what each
// one means. Levels follow confidence: one weak signal 1–2, strong or combined signals 3–4,
// near-certain malware delivery 4–5. A rule fires at most once per message.
import type { RuleHit, ThreatCategory } from '../types.ts';

export interface AdaptiveRule {
  id: string;
  level: number;
  category: ThreatCategory;
  type: RuleHit['type'];
  description: string;
}

function rule(
  id: string,
  level: number,
  category: ThreatCategory,
  type: RuleHit['type'],
  description: string,
): AdaptiveRule {
  return Object.freeze({ id, level, category, type, description });
}

export const RULES = {
  // --- attachments (viral)
  EXECUTABLE_DISGUISED: rule(
    'ADAPTIVE_EXECUTABLE_DISGUISED',
    5,
    'malware',
    'attachment',
    'Attachment or archive member is a native executable by its magic bytes but is named as something else',
  ),
  ARCHIVE_EXECUTABLE: rule(
    'ADAPTIVE_ARCHIVE_EXECUTABLE',
    4,
    'malware',
    'attachment',
    'Archive contains an executable, script, shortcut or disk image',
  ),
  DOUBLE_EXTENSION: rule(
    'ADAPTIVE_DOUBLE_EXTENSION',
    4,
    'malware',
    'attachment',
    'File name hides an executable extension behind a document one (invoice.pdf.exe)',
  ),
  DANGEROUS_FILE_TYPE: rule(
    'ADAPTIVE_DANGEROUS_FILE_TYPE',
    4,
    'malware',
    'attachment',
    'Attachment is an executable, script, shortcut, disk image (iso, img, vhd, vhdx) or device configuration profile',
  ),
  ENCRYPTED_ARCHIVE_WITH_PASSWORD: rule(
    'ADAPTIVE_ENCRYPTED_ARCHIVE_WITH_PASSWORD',
    4,
    'malware',
    'attachment',
    'Password-protected archive whose password is given in the message (keeps it away from anti-virus)',
  ),
  FILENAME_DISGUISE: rule(
    'ADAPTIVE_FILENAME_DISGUISE',
    3,
    'malware',
    'attachment',
    'Attachment name is disguised: right-to-left override, invisible characters or a run of spaces before the extension',
  ),
  TRUE_TYPE_MISMATCH: rule(
    'ADAPTIVE_TRUE_TYPE_MISMATCH',
    3,
    'malware',
    'attachment',
    'Attachment content type (magic bytes) contradicts its file extension',
  ),
  MACRO_DOCUMENT: rule(
    'ADAPTIVE_MACRO_DOCUMENT',
    3,
    'malware',
    'attachment',
    'Macro-enabled Office document (docm, xlsm, pptm… or a vbaProject.bin inside)',
  ),
  ENCRYPTED_ARCHIVE: rule(
    'ADAPTIVE_ENCRYPTED_ARCHIVE',
    3,
    'malware',
    'attachment',
    'Password-protected (encrypted) archive that cannot be scanned',
  ),
  INTERNET_SHORTCUT: rule(
    'ADAPTIVE_INTERNET_SHORTCUT',
    2,
    'malware',
    'attachment',
    'Internet shortcut (.url) in a reply to an earlier message: a dangerous file type, weighed with the other signs rather than alone',
  ),
  HTML_ATTACHMENT: rule(
    'ADAPTIVE_HTML_ATTACHMENT',
    2,
    'phish',
    'attachment',
    'HTML or SVG attachment: a local page that can show a login form and post what is typed',
  ),
  DECLARED_TYPE_MISMATCH: rule(
    'ADAPTIVE_DECLARED_TYPE_MISMATCH',
    1,
    'other',
    'attachment',
    'Declared Content-Type of an attachment contradicts its file name',
  ),

  // --- HTML content
  HTML_PASSWORD_FORM: rule(
    'ADAPTIVE_HTML_PASSWORD_FORM',
    4,
    'phish',
    'content',
    'HTML content with a form asking for a password',
  ),
  HTML_CREDENTIAL_FORM: rule(
    'ADAPTIVE_HTML_CREDENTIAL_FORM',
    3,
    'phish',
    'content',
    'HTML content with a form asking for credentials, a PIN or card details',
  ),
  HIDDEN_TEXT: rule(
    'ADAPTIVE_HIDDEN_TEXT',
    1,
    'other',
    'content',
    'HTML hides a large amount of text from the reader (display:none, zero font size…)',
  ),

  // --- URLs
  URL_PUNYCODE_BRAND: rule(
    'ADAPTIVE_URL_PUNYCODE_BRAND',
    4,
    'phish',
    'url',
    'Link host is an internationalised (punycode) look-alike of a well-known brand',
  ),
  URL_USERINFO_DECEPTIVE: rule(
    'ADAPTIVE_URL_USERINFO_DECEPTIVE',
    4,
    'phish',
    'url',
    'Link puts a domain name before "@" so the real host hides behind it (http://bank.example@evil.test/)',
  ),
  URL_USERINFO: rule('ADAPTIVE_URL_USERINFO', 3, 'phish', 'url', 'Link carries user info ("user@host") in its address'),
  URL_IP_HOST: rule(
    'ADAPTIVE_URL_IP_HOST',
    3,
    'phish',
    'url',
    'HTML link (or clicked link) points to a public IP address instead of a host name',
  ),
  URL_IP_HOST_TEXT: rule(
    'ADAPTIVE_URL_IP_HOST_TEXT',
    1,
    'other',
    'url',
    "Link to a public IP address the reader can see (plain text), or a few among many links to the sender's own site: a weak sign alone",
  ),
  LINK_TEXT_MISMATCH: rule(
    'ADAPTIVE_LINK_TEXT_MISMATCH',
    3,
    'phish',
    'url',
    "Link's visible text names a different domain than the one it leads to",
  ),
  URL_IDN_DISGUISED: rule(
    'ADAPTIVE_URL_IDN_DISGUISED',
    2,
    'phish',
    'url',
    'Link host is internationalised and mixes scripts or look-alike letters, or is written in styled letters a browser rewrites',
  ),
  URL_BRAND_IN_HOST: rule(
    'ADAPTIVE_URL_BRAND_IN_HOST',
    2,
    'phish',
    'url',
    "Link host carries a well-known brand's name on a domain the brand does not own",
  ),
  URL_SHORTENER: rule(
    'ADAPTIVE_URL_SHORTENER',
    2,
    'phish',
    'url',
    'Link goes through a URL shortener that hides its destination',
  ),
  URL_FREE_HOSTING: rule(
    'ADAPTIVE_URL_FREE_HOSTING',
    2,
    'phish',
    'url',
    'Link goes to free hosting, a cloud storage bucket or a form service where anyone can publish a page',
  ),
  URL_HAS_RECIPIENT: rule(
    'ADAPTIVE_URL_HAS_RECIPIENT',
    2,
    'phish',
    'url',
    "Link carries the recipient's address encoded (base64) or in its fragment: a page pre-filled for this victim",
  ),
  URL_SUSPICIOUS_TLD: rule(
    'ADAPTIVE_URL_SUSPICIOUS_TLD',
    1,
    'other',
    'url',
    'Link goes to a top-level domain with a high abuse rate',
  ),

  // --- sender
  DISPLAY_NAME_ADDRESS: rule(
    'ADAPTIVE_DISPLAY_NAME_ADDRESS',
    2,
    'phish',
    'sender',
    "From display name shows an e-mail address other than the real sender's",
  ),
  BRAND_FREE_MAIL: rule(
    'ADAPTIVE_BRAND_FREE_MAIL',
    3,
    'phish',
    'sender',
    'From display name names a well-known brand but the address is a free mailbox or a shared platform domain',
  ),
  DISGUISED_TEXT: rule(
    'ADAPTIVE_DISGUISED_TEXT',
    3,
    'phish',
    'sender',
    'Subject or display name disguised with invisible characters, foreign marks or look-alike letters (PayPaI, Amаzon), or body words mixing scripts',
  ),
  SENDER_BRAND_LOOKALIKE: rule(
    'ADAPTIVE_SENDER_BRAND_LOOKALIKE',
    2,
    'phish',
    'sender',
    "Sender domain fuses a well-known brand's name with other words (paypal-secure.com) and the brand does not own it",
  ),
  DISPLAY_NAME_BRAND: rule(
    'ADAPTIVE_DISPLAY_NAME_BRAND',
    2,
    'phish',
    'sender',
    'From display name names a well-known brand, or a domain, that does not own the sender address',
  ),
  FROM_MALFORMED: rule(
    'ADAPTIVE_FROM_MALFORMED',
    2,
    'phish',
    'sender',
    'From header is malformed in a way mail clients never write (invalid domain syntax, unquoted comma, several mailboxes)',
  ),
  REPLY_TO_FREE_MAIL: rule(
    'ADAPTIVE_REPLY_TO_FREE_MAIL',
    2,
    'scam',
    'sender',
    'Reply-To diverts answers to a free mailbox different from the sender',
  ),
  SERVICE_NAME_FREE_MAIL: rule(
    'ADAPTIVE_SERVICE_NAME_FREE_MAIL',
    1,
    'phish',
    'sender',
    'Display name poses as a service desk, bank or billing team but sends from a free mailbox',
  ),
  SHARED_PLATFORM_SENDER: rule(
    'ADAPTIVE_SHARED_PLATFORM_SENDER',
    1,
    'phish',
    'sender',
    'Sender address is on a shared platform domain anyone can get (onmicrosoft.com, firebaseapp.com…)',
  ),
  RANDOM_SENDER: rule(
    'ADAPTIVE_RANDOM_SENDER',
    1,
    'other',
    'sender',
    'Sender address looks machine-generated (random letters and digits, random capitals, chains of one-letter labels)',
  ),
  DISPLAY_NAME_CODE: rule(
    'ADAPTIVE_DISPLAY_NAME_CODE',
    1,
    'phish',
    'sender',
    'From display name carries a long reference number, as notices posing as a bank or an agency do',
  ),
  SUBJECT_PADDED: rule(
    'ADAPTIVE_SUBJECT_PADDED',
    2,
    'other',
    'sender',
    'Subject pushes a trailing token out of sight behind a long run of spaces (a per-copy tag that defeats fingerprinting)',
  ),
  RANDOM_TOKEN_SUBJECT: rule(
    'ADAPTIVE_RANDOM_TOKEN_SUBJECT',
    1,
    'other',
    'sender',
    'Subject ends in a random token of mixed-case letters and digits (defeats fingerprinting)',
  ),
  STYLED_TEXT: rule(
    'ADAPTIVE_STYLED_TEXT',
    1,
    'other',
    'sender',
    'Subject or display name written in styled, small-capital or spaced-out letters to dodge filters',
  ),
  RECIPIENT_ADDRESS_QUOTED: rule(
    'ADAPTIVE_RECIPIENT_ADDRESS_QUOTED',
    1,
    'phish',
    'sender',
    'Subject, display name or greeting addresses the recipient by their e-mail address instead of a name',
  ),
  SENDER_SUSPICIOUS_TLD: rule(
    'ADAPTIVE_SENDER_SUSPICIOUS_TLD',
    1,
    'other',
    'sender',
    'Sender domain is under a top-level domain with a high abuse rate',
  ),

  // --- lure language
  CREDENTIAL_LURE: rule(
    'ADAPTIVE_CREDENTIAL_LURE',
    2,
    'phish',
    'content',
    "Account or payment threat language (verify your account, unusual sign-in, mailbox full…) with a link, form or local page leading away from the sender's domain",
  ),
  DELIVERY_LURE: rule(
    'ADAPTIVE_DELIVERY_LURE',
    1,
    'phish',
    'content',
    'Parcel held, delivery failed or fee due language',
  ),
  PRIZE_LURE: rule('ADAPTIVE_PRIZE_LURE', 1, 'scam', 'content', 'Prize, reward or gift language'),
  MONEY_LURE: rule(
    'ADAPTIVE_MONEY_LURE',
    1,
    'scam',
    'content',
    'Easy money or crypto language (a balance to withdraw, airdrops, lottery…)',
  ),
  ADVANCE_FEE_LURE: rule(
    'ADAPTIVE_ADVANCE_FEE_LURE',
    1,
    'scam',
    'content',
    'Advance-fee language (next of kin, business proposal, a share of a fund…)',
  ),
  AUTHORITY_LURE: rule(
    'ADAPTIVE_AUTHORITY_LURE',
    1,
    'phish',
    'content',
    'Court, tax office or fine language (tax refund, court notice, unpaid toll…)',
  ),
  CALLBACK_LURE: rule(
    'ADAPTIVE_CALLBACK_LURE',
    2,
    'scam',
    'content',
    'Callback scam: a charge or renewal to dispute by calling a phone number given in the message',
  ),
  VICE_LURE: rule(
    'ADAPTIVE_VICE_LURE',
    1,
    'other',
    'content',
    'Gambling, sex or pill-selling language: the staples of spam runs',
  ),
  SHOUTING: rule(
    'ADAPTIVE_SHOUTING',
    1,
    'other',
    'content',
    'Subject or body written largely in capitals, as bulk advertising is',
  ),
  URGENCY: rule(
    'ADAPTIVE_URGENCY',
    1,
    'other',
    'content',
    'Deadline pressure language (within 24 hours, final notice…)',
  ),

  // --- combinations
  BRAND_LURE: rule(
    'ADAPTIVE_BRAND_LURE',
    3,
    'phish',
    'sender',
    'Display name, sender domain or subject names a brand the sender is not, and the message uses account, delivery, authority, callback, money or prize lures',
  ),
  ADVANCE_FEE_FRAUD: rule(
    'ADAPTIVE_ADVANCE_FEE_FRAUD',
    3,
    'scam',
    'content',
    'Advance-fee fraud: such language with answers diverted to a free mailbox, or several of its tells at once',
  ),
  FREE_MAIL_LURE: rule(
    'ADAPTIVE_FREE_MAIL_LURE',
    3,
    'phish',
    'sender',
    'A free-mail or shared-platform sender writes as a business (brand named, document attached, service name or reference number) with account, delivery, authority or callback lures, or attaches a document to a money lure',
  ),
  HTML_ATTACHMENT_LURE: rule(
    'ADAPTIVE_HTML_ATTACHMENT_LURE',
    3,
    'phish',
    'attachment',
    'HTML or SVG attachment presented as a business document (invoice, order, payment, statement, voicemail…), or with a lure from a free mailbox',
  ),
  CREDENTIAL_LURE_LINK: rule(
    'ADAPTIVE_CREDENTIAL_LURE_LINK',
    3,
    'phish',
    'content',
    "Account or payment threat language with links, a form or a local page that all lead away from the sender's domain",
  ),
  MULTIPLE_SIGNALS: rule(
    'ADAPTIVE_MULTIPLE_SIGNALS',
    3,
    'phish',
    'content',
    'Several independent suspicious signals: at least two other rules, one of them technical (not just wording), weighing at least 3 together',
  ),
  MANY_SIGNALS: rule(
    'ADAPTIVE_MANY_SIGNALS',
    4,
    'phish',
    'content',
    'Many independent suspicious signals: at least two other rules, one of them technical, weighing at least 6 together',
  ),
} as const;

export type RuleKey = keyof typeof RULES;
