// Lure language: the phrases phishing and scams are written around (account threats, parcels held
// for a fee, prizes, easy money, deadlines), in the languages most phishing is written in. Patterns
// run on folded text (lower case, no accents, look-alikes mapped, whitespace collapsed) and are
// simple alternations with bounded gaps, so each is linear in the text.

export type LureKind =
  'credential' | 'delivery' | 'prize' | 'money' | 'advance' | 'authority' | 'callback' | 'vice' | 'urgency';

export interface LurePattern {
  kind: LureKind;
  re: RegExp;
}

/**
 * Every pattern is closed on both sides: its first word must not continue a longer word and its last
 * word must not run on into one ("card issue" is not "card issuer", "you won" not "you wonder"); a
 * plural "s" is allowed. Stems meant to match any ending say so with `[a-z]*` ("bloquead[a-z]*").
 */
export const OPEN_BEFORE = '(?<![a-z0-9])';
export const CLOSE_AFTER = 's?(?![a-z])';

const P = (kind: LureKind, source: string): LurePattern => ({
  kind,
  // a pattern opening with its own guard (\b, a lookbehind) keeps it: the regex engine scans faster for it
  re: new RegExp(`${/^(?:\\b|\(\?<)/.test(source) ? '' : OPEN_BEFORE}(?:${source})${CLOSE_AFTER}`, 'g'),
});

export const LURE_PATTERNS: readonly LurePattern[] = [
  // --- account / credential threats (en)
  P(
    'credential',
    String.raw`\b(?:verify|confirm|validate|update|reactivate|re-activate|unlock|restore|secure|upgrade)\s(?:your|the|my)\s(?:account|identity|e-?mail|mailbox|information|info|details|credentials|password|wallet|payment|billing|apple id|profile|login|subscription)`,
  ),
  P(
    'credential',
    String.raw`\b(?:unusual|suspicious|unauthori[sz]ed|unrecogni[sz]ed|irregular|fraudulent)\s(?:sign[ .-]?in|log[ -]?in|login|activity|access|attempt|transaction|payment|charge|purchase)`,
  ),
  P(
    'credential',
    String.raw`\b(?:account|mailbox|wallet|password|subscription|membership|apple id|profile|access|card)\s(?:has been|have been|was|is|will be|is being|is currently|has|got)\s(?:temporarily\s|permanently\s|now\s)?(?:suspended|locked|limited|disabled|deactivated|closed|blocked|restricted|terminated|deleted|compromised|on hold|expired|expiring|frozen|flagged|paused|revoked|breached)`,
  ),
  P(
    'credential',
    String.raw`\b(?:password|mailbox|storage|quota|e-?mail account)\s(?:will\s|is\s|has\s|have\s)?(?:expire|expires|expired|expiring|full|exceeded|almost full|over quota)`,
  ),
  P(
    'credential',
    String.raw`\b(?:payment|billing|card)\s(?:has\s)?(?:failed|declined|unsuccessful|was declined|could not be processed|problem|issue)`,
  ),
  P('credential', String.raw`\bupdate\s(?:your\s)?(?:payment|billing|card)\s(?:method|details|information|info)`),
  P(
    'credential',
    String.raw`\bto avoid (?:suspension|termination|deactivation|closure|interruption|losing|permanent|being locked)`,
  ),
  P(
    'credential',
    String.raw`\b(?:security|account) (?:alert|notice|warning|verification|update required)|\bupdate required`,
  ),
  P(
    'credential',
    String.raw`\b(?:sign[ -]?in|login|log[ -]?in) (?:attempt|from (?:a )?new device|was detected|details)`,
  ),
  P(
    'credential',
    String.raw`\b(?:photos?|files?|videos?|data) (?:will be|are being|would be) (?:deleted|removed|lost)`,
  ),
  P(
    'credential',
    String.raw`\b(?:(?:seed|recovery|secret|mnemonic) phrase|(?:verify|validate|sync|synchroni[sz]e|reconnect|restore|revalidate) (?:your )?(?:wallet|metamask|ledger|trust wallet))`,
  ),
  // --- pt
  P(
    'credential',
    String.raw`\b(?:sua conta|seu cadastro|seu cpf|sua cnh|seus dados|seu acesso|seu cartao|sua senha|seu pix)\b.{0,40}?\b(?:bloquead|suspens|cancelad|expir|irregular|pendente|desativad|restrit|vencid)[a-z]*`,
  ),
  P(
    'credential',
    String.raw`\b(?:atualize|regularize|confirme|valide|verifique|acesse|desbloqueie|reative)\s(?:seus dados|sua conta|seu cadastro|agora|o link|seu acesso|sua senha)`,
  ),
  // --- de
  P(
    'credential',
    String.raw`\b(?:ihr|dein|ihre|deine) (?:konto|zugang|account|postfach|karte|passwort|kundenkonto)\b.{0,40}?\b(?:gesperrt|eingeschrankt|deaktiviert|gekundigt|blockiert|abgelaufen|verifiziert werden|bestatigt werden|aktualisiert werden)`,
  ),
  P('credential', String.raw`\b(?:bestatigen|verifizieren|aktualisieren|entsperren) sie (?:ihr|ihre|jetzt)`),
  // --- fr
  P(
    'credential',
    String.raw`\bvotre (?:compte|carte|abonnement|acces|dossier|mot de passe)\b.{0,40}?\b(?:suspendu|bloque|expire|desactive|limite|restreint|resilie)[a-z]*`,
  ),
  P(
    'credential',
    String.raw`\b(?:verifier|confirmer|mettre a jour|reactiver) (?:vos|votre) (?:informations|identite|compte|coordonnees|donnees)`,
  ),
  // --- es
  P(
    'credential',
    String.raw`\b(?:su|tu) (?:cuenta|tarjeta|suscripcion|contrasena|acceso)\b.{0,40}?\b(?:suspendid|bloquead|expirad|desactivad|limitad|restringid)[a-z]*`,
  ),
  P(
    'credential',
    String.raw`\b(?:verifique|confirme|actualice|verifica|confirma|actualiza) (?:su|sus|tu|tus) (?:cuenta|datos|identidad|informacion)`,
  ),
  // --- nl / it
  P(
    'credential',
    String.raw`\b(?:uw|je|jouw) (?:account|rekening|pas|abonnement|wachtwoord|toegang)\b.{0,40}?\b(?:geblokkeerd|opgeschort|verlopen|gedeactiveerd|beperkt|verwijderd)`,
  ),
  P(
    'credential',
    String.raw`\b(?:il tuo|il suo|la tua|la sua) (?:account|conto|carta|abbonamento)\b.{0,40}?\b(?:sospes|bloccat|scadut|limitat)[a-z]*`,
  ),

  // --- parcels held for a fee
  P(
    'delivery',
    String.raw`\b(?:package|parcel|shipment|delivery|order|item)\b.{0,30}?\b(?:on hold|is pending|pending delivery|held|suspended|failed|unable to deliver|could not be delivered|awaiting|returned to sender|undeliverable)`,
  ),
  P('delivery', String.raw`\b(?:customs|shipping|redelivery|delivery|clearance) (?:fee|charge|duty|payment)`),
  P(
    'delivery',
    String.raw`\b(?:encomenda|pacote|mercadoria|objeto|pedido|remessa)\b.{0,30}?\b(?:retid|taxad|pendente|devolvid|aguardando|bloquead|tributad)[a-z]*`,
  ),
  P('delivery', String.raw`\b(?:taxa|tarifa|imposto) (?:alfandegaria|de importacao|de entrega|de envio)`),
  P(
    'delivery',
    String.raw`\b(?:paket|sendung|lieferung)\b.{0,30}?\b(?:zuruckgehalten|ausstehend|nicht zugestellt|wartet|angehalten)`,
  ),
  P('delivery', String.raw`\bcolis\b.{0,30}?\b(?:en attente|bloque|retenu|non livre|en suspens)`),

  // --- prizes and rewards
  P(
    'prize',
    String.raw`\b(?:congratulations|you(?:'ve| have)? (?:won|been selected|been chosen)|you are (?:our|the|a) (?:lucky )?winner|claim (?:your|the) (?:reward|prize|gift|bonus|tokens|airdrop|refund)|free spins|selected to receive|reward (?:is )?(?:waiting|pending|ready)|exclusive reward)`,
  ),
  P('prize', String.raw`\b(?:gluckwunsch|gewonnen|gewinnspiel|gutschein|freispiele|pramie wartet|ausgewahlt)`),
  P('prize', String.raw`\b(?:parabens|premio|sorteio|voce ganhou|resgate (?:seu|sua|agora))`),
  P('prize', String.raw`\b(?:felicitations|vous avez gagne|bon d'achat|gagnant|cadeau (?:offert|gratuit))`),
  P('prize', String.raw`\b(?:gefeliciteerd|gewonnen|cadeaukaart|cadeaubon|felicidades|has ganado|premio)`),

  // --- easy money and advance-fee fraud
  P(
    'money',
    String.raw`\b(?:bitcoin|btc|usdt|ethereum|crypto ?wallet|airdrop|staking rewards?|withdraw (?:your|the) (?:funds|balance|money)|unclaimed (?:funds|assets|balance)|compensation (?:fund|payment)|lottery|western union|moneygram|investment (?:opportunity|plan)|guaranteed (?:profit|return))`,
  ),
  P('money', String.raw`\b\d+(?:[.,]\d+)? million (?:us )?(?:dollars|usd|euros?|pounds)`),
  P(
    'money',
    String.raw`\b(?:saldo|resgate|restituicao|transferencia|credito|beneficio|cashback|pontos)\b.{0,30}?\b(?:liberad|disponive|pendente|aprovad|a receber|expira)[a-z]*`,
  ),
  P('money', String.raw`\b(?:valores a receber|liberacao pendente|resgate (?:o seu|seu|sua|seus)|voce tem pontos)`),
  P(
    'money',
    String.raw`\b(?:xrp|steth|nfts?|pi coins?|tokens? (?:allocation|airdrop|claim|distribution|rewards?)|claim (?:your )?(?:\$[a-z]{2,8}|tokens?|coins?|nfts?)|(?:crypto|token|coin) (?:giveaway|airdrop|allocation))`,
  ),
  P('money', String.raw`(?<=^|[\s(])\+ ?(?:[$€£] ?)?\d[\d,.]{2,12} ?(?:[$€£]|usd|usdt|btc|eth|eur)`),
  P(
    'money',
    String.raw`\b(?:mining|balance|account|wallet)\W{1,3}(?:has|with|of)?\W{0,3}\d+(?:[.,]\d+)?\W{0,3}(?:btc|eth|usdt|\$)`,
  ),

  // --- advance-fee fraud (419): a stranger with money to share
  P(
    'advance',
    String.raw`\b(?:next of kin|inheritance (?:fund|claim|transfer)|(?:the|a|named) beneficiary|my late (?:husband|father|client|wife)|(?:dying|sick) bed|barrister|consignment (?:box|boxes)|diplomat(?:ic)? (?:bag|courier)|business (?:proposal|venture|cooperation)|confidential (?:business|transaction|proposal)|(?:donate|donation of) (?:the sum|\$|us\$|usd)|the sum of (?:\$|us\$|usd|eur|£)|\d{1,2} ?(?:%|percent) of the (?:total |said )?(?:fund|sum|money|amount)|reply (?:to|via) my (?:private|personal) (?:e-?mail|address)|dear (?:friend|beneficiary|sir/madam)|i am (?:a |an )?(?:banker|lawyer|attorney|widow) (?:with|at|from|of))`,
  ),
  P(
    'advance',
    String.raw`\b(?:mutually beneficial|probate|(?:oil|gold|crude|business|lucrative|contract) (?:deal|contract|proposal|proposition|offer) (?:to discuss|for you|with you)|private (?:proposition|proposal|transaction)|(?:is|if) this (?:e-?mail|address) (?:is )?(?:still )?(?:valid|active|in use)|(?:selected|chosen) to receive (?:a |the )?(?:\$|us\$|usd|eur|£)?\s?\d|charity (?:foundation|donation)|(?:donation|grant) (?:from|of) (?:the|our|my) (?:foundation|charity)|acknowledge (?:the )?receipt of this (?:e-?mail|message|letter)|kindly (?:reply|respond|get back|contact)|oferta delicada|(?:buscar|solicitar) sua cooperacao|proposta (?:de negocio|comercial) (?:confidencial|lucrativa))`,
  ),
  P(
    'advance',
    String.raw`\b(?:investor|fund manager|loan) (?:offer|opportunity)|\b(?:loan|funding) at (?:\d+|low) ?%|\b(?:project|business) funding`,
  ),

  // --- authorities: courts, tax offices, fines
  P(
    'authority',
    String.raw`\b(?:tax refund|tax return (?:is )?(?:ready|pending)|court (?:notice|hearing|order|summons)|subpoena|legal action|lawsuit (?:against|filed)|arrest warrant|(?:unpaid|outstanding) (?:fine|toll|invoice|tax)|(?:notificacao|intimacao|citacao) (?:judicial|extrajudicial)|processo (?:trabalhista|judicial)|tribunal regional|receita federal|infracao de transito|multa (?:de transito|pendente)|steuererstattung|remboursement d'impot|amende (?:impayee|forfaitaire))`,
  ),

  // --- callback scams: a bill you never ran up and a number to call to cancel it
  P(
    'callback',
    String.raw`\b(?:if you (?:did not|didn't|do not|don't) (?:authori[sz]e|make|place|recogni[sz]e|request|initiate)|to (?:cancel|dispute|stop) (?:this|the|your) (?:order|purchase|transaction|payment|charge|renewal|subscription)|(?:want|wish) to cancel|get a (?:full )?refund|(?:call|contact|reach) (?:us|our|the) (?:toll[- ]free|billing|support|helpline|help desk|customer (?:care|service|support))|(?:toll[- ]free|helpline|hotline|support|billing) (?:number|no\.?|line))`,
  ),

  // --- gambling, sex and pills: the staples of spam runs
  P(
    'vice',
    String.raw`\b(?:casino|free spins|freispiele|gratis spins|giros gratis|tours gratuits|jackpot|no deposit (?:bonus|required)|welcome bonus|willkommensbonus|sportsbook|betting bonus)`,
  ),
  P(
    'vice',
    String.raw`\b(?:hot (?:singles|women|girls|moms|milfs)|(?:lonely|local|horny|mature|russian|ukrainian|asian) (?:singles|women|girls|wives|ladies)|singles (?:near you|in your area|bij jou)|meet (?:hot |beautiful )?(?:singles|women|girls)|sex ?(?:date|chat|dating|partner)|horny|naughty (?:date|girls|chat)|seks|sexdate)`,
  ),
  P(
    'vice',
    String.raw`\b(?:viagra|cialis|levitra|without (?:a )?prescription|erectile|erection|penis|potenzmittel|male enhancement|weight loss (?:pill|gummies|formula)|keto (?:gummies|pills|diet))`,
  ),

  // --- deadlines
  P(
    'urgency',
    String.raw`\b(?:urgent|immediately|final (?:notice|warning|reminder)|last (?:chance|warning|reminder|notice)|expires? (?:today|soon|in \d)|act now|within (?:24|48|72|12) (?:hours|hrs|h)|limited time|right away|before it(?:'s| is) too late|(?:immediate |urgent )?action (?:is )?required)`,
  ),
  P(
    'urgency',
    String.raw`\b(?:urgente|imediatamente|ultimo aviso|ultima chance|em ate (?:24|48|72) horas|prazo final|acao necessaria)`,
  ),
  P(
    'urgency',
    String.raw`\b(?:dringend|sofort|letzte (?:chance|warnung|mahnung)|innerhalb von (?:24|48|72) stunden|handlung erforderlich|aktion erforderlich)`,
  ),
  P('urgency', String.raw`\b(?:urgence|immediatement|dernier (?:avis|rappel)|derniere chance|sous (?:24|48|72) ?h)`),
];

export interface LureFindings {
  /** number of distinct patterns matched per kind */
  counts: Record<LureKind, number>;
  /** first matched phrase per kind (for evidence) */
  evidence: Partial<Record<LureKind, string>>;
}

/** Distinct phrases counted per pattern at most. */
const MAX_PER_PATTERN = 3;

/** Finds lure phrases in folded text (see fold()): distinct phrases per kind, and the first of each kind. */
export function findLures(folded: string): LureFindings {
  const counts: Record<LureKind, number> = {
    credential: 0,
    delivery: 0,
    prize: 0,
    money: 0,
    advance: 0,
    authority: 0,
    callback: 0,
    vice: 0,
    urgency: 0,
  };
  const evidence: Partial<Record<LureKind, string>> = {};
  for (const { kind, re } of LURE_PATTERNS) {
    re.lastIndex = 0;
    const seen = new Set<string>();
    let m: RegExpExecArray | null;
    while (seen.size < MAX_PER_PATTERN && (m = re.exec(folded)) !== null) {
      const phrase = m[0].trim();
      if (m[0].length === 0) {
        re.lastIndex++;
      }
      if (!seen.has(phrase)) {
        seen.add(phrase);
        counts[kind]++;
        evidence[kind] ??= phrase.slice(0, 80);
      }
    }
  }
  return { counts, evidence };
}
