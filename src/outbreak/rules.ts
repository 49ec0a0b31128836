/*
 * Published outbreak rules (DESIGN §4.2): the rule and bundle schema, and one evaluation engine. The code is in
 * rules/: schema.ts (types, validation), match.ts (globs, normalisation, the phrase automaton), compiled.ts
 * (compiled conditions, the per-message view) and engine.ts (the index, compileRules). This module is their
 * public face.
 *
 * A condition is a JSON object with exactly one key:
 *
 *   { "all": [Condition, ...] }      every child matches (1–256 children)
 *   { "any": [Condition, ...] }      at least one child matches
 *   { "not": Condition }             the child does not match
 *
 *   { "attachment": FileMatch }      one attachment satisfies every key of FileMatch
 *   { "member": FileMatch }          one archive member (any depth, zip/gz/… as listed by the parser)
 *                                    satisfies every key of FileMatch
 *     FileMatch = {
 *       "extension": ["exe", ".scr"],           extension of the name, case-insensitive, dot optional
 *       "trueType": ["application/x-msdownload", "application/*"],
 *                                                type from magic bytes: exact, or "major/*"; unknown never matches
 *       "name": ["*.pdf.exe", "invoice"],        with * or ?: a glob over the base name (after the last / or \);
 *                                                without: a substring of the whole name; case-insensitive
 *       "size": { "min": 1024, "max": 65536 },   bytes, inclusive, either bound optional
 *       "sha256": ["<64 hex>"]
 *     }                                          (at least one key)
 *
 *   { "url": UrlMatch }              one URL of the message satisfies every key of UrlMatch
 *     UrlMatch = {
 *       "host": ["evil.test", ".evil.test"],     exact host, or with a leading dot: that host and every subdomain
 *       "domain": ["evil.co.uk"],                registrable domain (public suffix + 1; hosts under a suffix not in
 *                                                the public suffix list, such as .test, have none and never match)
 *       "path": ["/wp-admin/*"],                 glob over the path (no query); only * is a wildcard
 *       "url": ["https://evil.test/login*"]      the whole URL: exact, or a glob when it contains *;
 *     }                                          only * is a wildcard (? is the query separator in URLs)
 *                                                (at least one key; all comparisons case-insensitive; IDN hosts
 *                                                are compared in punycode)
 *
 *   { "sender": ["bad@evil.test", "@evil.test", "evil.test", ".evil.test"] }
 *                                    the envelope sender or the header From address is one of these: a full
 *                                    address; a domain (with or without "@") exactly; or, with a leading dot, the
 *                                    domain and every subdomain of it
 *   { "subject": ["phrase", ...] }   the subject contains one phrase
 *   { "body": ["phrase", ...] }      the text/plain or the raw text/html body contains one phrase
 *                                    (phrases: case-insensitive, runs of white space match any run of white space)
 *   { "avSignatureOlderThan": 27500 }
 *                                    anti-virus ran with a signature version below this; unknown never matches
 *
 * Every list holds 1–10,000 entries; a condition nests at most 16 deep and has at most 256 leaves; globs are at most
 * 512 characters. A condition that would match an empty message (e.g. a lone `not`) is refused: it would flag
 * almost every message.
 *
 * Rules and bundles may carry extra keys (publishers can add metadata without breaking older gateways); they are
 * ignored and reported as warnings. Condition objects are strict: an unknown key there would silently change what a
 * rule matches.
 */
export {
  RULE_LIMITS,
  bundleSchema,
  formatPath,
  inferRuleType,
  parseBundle,
  ruleSchema,
  type Bundle,
  type Condition,
  type FileMatch,
  type Rule,
  type RuleType,
  type UrlMatch,
} from './rules/schema.ts';
export { PhraseAutomaton, globMatch } from './rules/match.ts';
export { compileRules, maxLevel, urlFacts, type CompileOptions, type CompiledRules } from './rules/engine.ts';
