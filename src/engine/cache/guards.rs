//! Guards for the semantic cache: two questions can be close in embedding
//! space and still ask different things ("can I cancel" / "can I not
//! cancel", order 1234 / order 5678). A hit is refused when the two differ
//! in any of the things below, however high their cosine.

use std::collections::BTreeSet;

/// What must match between a question and a cached one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signature {
    pub negated: bool,
    /// Numbers, ids like `ORD-1234`, amounts, dates, versions.
    pub numbers: BTreeSet<String>,
    pub emails: BTreeSet<String>,
    /// Capitalised words not at a sentence start (products, brands, places).
    pub names: BTreeSet<String>,
    /// Content words (lower case, stop words removed), in order.
    pub words: Vec<String>,
    /// "from … to …", "but", "than", "instead of" (and their French,
    /// Spanish, Italian, German forms): word order carries meaning.
    pub directional: bool,
}

/// Negations, in the languages support traffic arrives in.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "without", "cannot", "cant", "dont", "doesnt", "didnt", "wont", "isnt", "arent", "wasnt",
    "werent", "shouldnt", "couldnt", "wouldnt", "havent", "hasnt", "hadnt", "nor", "unable", "none", "nothing",
    // es, pt, fr, it, de, nl
    "nunca", "nada", "ningún", "ninguna", "não", "nao", "nem", "ne", "pas", "jamais", "aucun", "aucune", "non", "mai",
    "nessun", "nicht", "kein", "keine", "keinen", "nie", "niet", "geen",
];

/// Opposites: when one question has one word of a pair and the other the
/// other, they ask different things ("opt in" / "opt out").
const ANTONYMS: &[(&str, &str)] = &[
    ("in", "out"),
    ("on", "off"),
    ("up", "down"),
    ("over", "under"),
    ("raise", "lower"),
    ("increase", "decrease"),
    ("higher", "lower"),
    ("more", "less"),
    ("add", "remove"),
    ("add", "delete"),
    ("open", "close"),
    ("opened", "closed"),
    ("enable", "disable"),
    ("activate", "deactivate"),
    ("lock", "unlock"),
    ("block", "unblock"),
    ("freeze", "unfreeze"),
    ("start", "stop"),
    ("subscribe", "unsubscribe"),
    ("send", "receive"),
    ("sent", "received"),
    ("sending", "receiving"),
    ("upload", "download"),
    ("uploading", "downloading"),
    ("incoming", "outgoing"),
    ("inbound", "outbound"),
    ("import", "export"),
    ("buy", "sell"),
    ("bought", "sold"),
    ("deposit", "withdraw"),
    ("credit", "debit"),
    ("overcharged", "undercharged"),
    ("early", "late"),
    ("earlier", "later"),
    ("before", "after"),
    ("first", "last"),
    ("next", "previous"),
    ("next", "last"),
    ("old", "new"),
    ("extend", "shorten"),
    ("longer", "shorter"),
    ("faster", "slower"),
    ("fast", "slow"),
    ("cheaper", "expensive"),
    ("backup", "restore"),
    ("show", "hide"),
    ("public", "private"),
    ("join", "leave"),
    ("upgrade", "downgrade"),
    ("upgraden", "downgraden"),
    ("checkin", "checkout"),
    ("physical", "virtual"),
    ("domestic", "international"),
    ("mobile", "desktop"),
    ("paper", "paperless"),
    ("accept", "reject"),
    ("approve", "decline"),
    ("win", "lose"),
    ("gain", "loss"),
    ("import", "export"),
    ("minimum", "maximum"),
    ("min", "max"),
    ("go", "come"),
    ("give", "take"),
    ("lend", "borrow"),
    ("pay", "charge"),
    ("payer", "payee"),
    ("sender", "recipient"),
    ("back", "restore"),
    ("arrive", "ship"),
    ("arrive", "shipped"),
    ("delivered", "shipped"),
    ("request", "send"),
    ("seller", "customer"),
    ("buyer", "seller"),
    ("download", "see"),
    ("download", "view"),
];

/// Kinds of value: when both questions name a value of the same kind and
/// the values differ ("Monday morning" / "Monday afternoon"), they differ.
const KINDS: &[&[&str]] = &[
    &[
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "weekend",
        "weekday",
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo",
        "lundi",
        "mardi",
        "mercredi",
        "jeudi",
        "vendredi",
        "samedi",
        "dimanche",
        "lunedì",
        "martedì",
        "mercoledì",
        "giovedì",
        "venerdì",
        "sabato",
        "domenica",
        "montag",
        "dienstag",
        "mittwoch",
        "donnerstag",
        "freitag",
        "samstag",
        "sonntag",
        "segunda",
        "terça",
        "quarta",
        "quinta",
        "sexta",
    ],
    &[
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ],
    &[
        "morning",
        "afternoon",
        "evening",
        "night",
        "noon",
        "midnight",
        "am",
        "pm",
        "tarde",
        "noche",
        "matin",
        "soir",
        "mattina",
        "pomeriggio",
        "sera",
        "abends",
        "morgens",
    ],
    &[
        "today",
        "tomorrow",
        "yesterday",
        "tonight",
        "hoy",
        "mañana",
        "ayer",
        "demain",
        "hier",
        "aujourdhui",
        "domani",
        "dopodomani",
        "oggi",
        "ieri",
        "morgen",
        "heute",
        "gestern",
        "amanhã",
        "hoje",
        "ontem",
        "this",
        "next",
        "last",
        "ago",
        "week",
        "weekend",
        "month",
        "months",
        "year",
        "years",
        "quarter",
        "days",
        "weeks",
    ],
    &["b", "c", "d", "e", "f", "g", "h", "j", "k", "n", "o", "p", "q", "r", "t", "u", "v", "w", "x", "y", "z"],
    &[
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "twenty",
        "hundred", "thousand", "half", "quarter", "double", "single", "twice", "once", "both",
    ],
    &[
        "free",
        "basic",
        "standard",
        "pro",
        "plus",
        "premium",
        "business",
        "personal",
        "economy",
        "family",
        "enterprise",
        "starter",
        "max",
        "ultra",
        "lite",
        "base",
    ],
    &["xs", "s", "m", "l", "xl", "xxl", "small", "medium", "large", "regular"],
    &[
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "annual",
        "annually",
        "week",
        "month",
        "year",
        "quarterly",
        "mensuelle",
        "annuelle",
        "mensual",
        "anual",
    ],
    &[
        "delivery",
        "shipping",
        "billing",
        "entrega",
        "cobrança",
        "envío",
        "facturación",
        "livraison",
        "facturation",
        "consegna",
        "fatturazione",
        "lieferung",
        "rechnung",
        "home",
        "work",
    ],
    &[
        "cost", "price", "fee", "fees", "long", "time", "date", "when", "address", "much", "temps", "coûte", "coût",
        "prix", "tiempo", "cuesta", "costo", "precio", "tempo", "quanto", "kosten", "dauert", "zeit",
    ],
    &["username", "email", "password", "pin", "name", "phone", "number", "address"],
    &["cache", "history", "cookies", "data", "passwords"],
    &["date", "address", "time", "method", "location"],
];

/// Lower case, straight quotes, and apostrophes dropped ("don't" → "dont").
fn normalize_word(w: &str) -> String {
    w.to_lowercase().replace(['\u{2019}', '\u{2018}', '\''], "")
}

/// Words that carry no meaning of their own in a support question.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "my", "your", "our", "their", "i", "me", "we", "you", "it", "its", "is", "are", "am_", "be",
    "been", "was", "were", "can", "could", "do", "does", "did", "how", "what", "whats", "when", "where", "which",
    "who", "why", "to", "from", "of", "for", "at", "by", "with", "and", "or", "but", "please", "hi", "hello", "hey",
    "there", "thanks", "thank", "thx", "help", "want", "would", "like", "need", "just", "so", "if", "this", "that",
    "these", "those", "im", "ive", "id", "possible", "way", "get", "have", "has", "will", "should", "any_", "some",
    "about", "than", "instead", "still", "yet", "also", "too", "very", "really", "much", "many",
];

pub fn signature(text: &str) -> Signature {
    let mut s = Signature::default();
    let mut negations = 0;
    let mut sentence_start = true;
    for raw in text.split_whitespace() {
        let trimmed = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '\'' && c != '-');
        let lower = normalize_word(trimmed);
        if lower.contains('@') && lower.contains('.') {
            s.emails.insert(lower.clone());
        } else if lower.chars().any(|c| c.is_ascii_digit()) {
            // 1,234.50 and $1234.5 are the same number
            let canonical: String = lower.chars().filter(|c| c.is_alphanumeric() || *c == '.').collect();
            let canonical = canonical.trim_end_matches('.').to_string();
            s.words.push(canonical.clone());
            s.numbers.insert(canonical);
        } else {
            let negation = NEGATIONS.contains(&lower.as_str())
                || is_contraction(&lower)
                || lower.split('-').any(|p| NEGATIONS.contains(&p))
                // French "n'est … pas", Italian "n'ho"
                || raw.to_lowercase().starts_with("n'");
            if negation {
                negations += 1;
                // where the negation sits matters: "can't X but can Y"
                s.words.push("¬".into());
            } else if !sentence_start
                && trimmed.chars().next().is_some_and(char::is_uppercase)
                && trimmed.chars().count() > 1
            {
                s.names.insert(lower.replace('-', ""));
            }
            for part in lower.split('-').filter(|p| !p.is_empty()) {
                if !STOPWORDS.contains(&part) && !NEGATIONS.contains(&part) {
                    s.words.push(part.to_string());
                }
            }
        }
        sentence_start = raw.ends_with(['.', '?', '!', ':']);
    }
    s.negated = negations > 0;
    // "ne … pas" is one negation, written twice
    s.words.dedup();
    let lower = format!(" {} ", text.to_lowercase());
    s.directional = [
        " to ",
        " but ",
        " than ",
        " instead ",
        " into ",
        " vs ",
        " versus ",
        " rather ",
        " à ",
        " au ",
        " al ",
        " a mi ",
        " a la ",
        " al piano ",
        " zu ",
        " nach ",
        " mais ",
        " pero ",
        " ma ",
    ]
    .iter()
    .any(|m| lower.contains(m));
    s
}

/// "don't", "isn't", "can't" with the apostrophe dropped.
fn is_contraction(w: &str) -> bool {
    [
        "dont", "doesnt", "didnt", "wont", "isnt", "arent", "wasnt", "werent", "cant", "couldnt", "shouldnt",
        "wouldnt", "havent", "hasnt", "hadnt", "aint", "mustnt", "neednt",
    ]
    .contains(&w)
}

/// "refundable" / "non-refundable", "lock" / "unlock", "charged" /
/// "overcharged": one word is the other with a meaning-flipping prefix.
fn prefixed(a: &str, b: &str) -> bool {
    let flips = ["un", "non", "dis", "in", "im", "ir", "il", "over", "under", "de", "re", "mis", "anti", "pre", "post"];
    let (long, short) = if a.len() > b.len() { (a, b) } else { (b, a) };
    short.len() >= 3 && flips.iter().any(|p| long.strip_prefix(p) == Some(short))
}

/// Why two questions must not share an answer, if they must not.
pub fn conflict(a: &Signature, b: &Signature) -> Option<&'static str> {
    let negations = |s: &Signature| s.words.iter().filter(|w| w.as_str() == "¬").count();
    if a.negated != b.negated || negations(a) != negations(b) {
        return Some("negation differs");
    }
    if a.numbers != b.numbers {
        return Some("numbers or ids differ");
    }
    if a.emails != b.emails {
        return Some("email addresses differ");
    }
    let in_b = |w: &String| b.words.contains(w) || b.names.contains(w);
    let in_a = |w: &String| a.words.contains(w) || a.names.contains(w);
    if a.names.iter().any(|n| !in_b(n)) || b.names.iter().any(|n| !in_a(n)) {
        return Some("names differ");
    }
    let only_a: Vec<&String> = a.words.iter().filter(|w| !b.words.contains(w)).collect();
    let only_b: Vec<&String> = b.words.iter().filter(|w| !a.words.contains(w)).collect();
    let has = |side: &[&String], w: &str| side.iter().any(|x| x.as_str() == w);
    if ANTONYMS.iter().any(|(x, y)| (has(&only_a, x) && has(&only_b, y)) || (has(&only_a, y) && has(&only_b, x))) {
        return Some("opposite words");
    }
    for kind in KINDS {
        let va: BTreeSet<&str> = a.words.iter().map(String::as_str).filter(|w| kind.contains(w)).collect();
        let vb: BTreeSet<&str> = b.words.iter().map(String::as_str).filter(|w| kind.contains(w)).collect();
        if !va.is_empty() && !vb.is_empty() && va != vb {
            return Some("different values of one kind");
        }
    }
    if only_a.iter().any(|x| only_b.iter().any(|y| prefixed(x, y))) {
        return Some("a word is negated by a prefix");
    }
    // the words both share, in a different order: "from A to B" / "from B to A"
    let common_a: Vec<&String> = a.words.iter().filter(|w| b.words.contains(w)).collect();
    let common_b: Vec<&String> = b.words.iter().filter(|w| a.words.contains(w)).collect();
    if a.directional && b.directional && common_a != common_b {
        return Some("word order differs");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clash(a: &str, b: &str) -> Option<&'static str> {
        conflict(&signature(a), &signature(b))
    }

    #[test]
    fn paraphrases_pass() {
        assert_eq!(clash("How do I reset my password?", "how can I reset my password"), None);
        assert_eq!(clash("Password reset: how do I do it?", "How do I reset my password?"), None);
        assert_eq!(clash("Is there free Wi-Fi at the hotel?", "Does the hotel have free wifi?"), None);
    }

    #[test]
    fn negation_is_caught() {
        assert_eq!(clash("Can I get a refund?", "Can I not get a refund?"), Some("negation differs"));
        assert_eq!(clash("My card works abroad", "My card doesn’t work abroad"), Some("negation differs"));
        assert_eq!(clash("How do I add a user?", "How do I remove a user?"), Some("opposite words"));
        assert_eq!(clash("Meine Karte funktioniert nicht", "Meine Karte funktioniert"), Some("negation differs"));
    }

    #[test]
    fn ids_amounts_and_emails_are_caught() {
        assert_eq!(clash("Where is order 1234?", "Where is order 5678?"), Some("numbers or ids differ"));
        assert_eq!(clash("Where is order #1234?", "where is order 1234"), None);
        assert_eq!(clash("Refund $1,200.50 please", "Refund $1200.50 please"), None);
        assert_eq!(clash("Send it to a@x.com", "Send it to b@x.com"), Some("email addresses differ"));
    }

    #[test]
    fn direction_is_caught() {
        let a = "Can I change my booking from business class to economy?";
        assert_eq!(clash(a, "Can I change my booking from economy to business class?"), Some("word order differs"));
        assert_eq!(clash(a, "Could I switch my booking from business class to economy"), None);
        assert_eq!(
            clash("I can send emails but not receive them", "I can receive emails but not send them"),
            Some("word order differs")
        );
    }

    #[test]
    fn products_and_qualifiers_are_caught() {
        assert_eq!(clash("Does the app support Android?", "Does the app support iOS?"), Some("names differ"));
        assert_eq!(clash("How do I close my account?", "How do I open my account?"), Some("opposite words"));
        assert_eq!(
            clash("Fees for an international transfer?", "Fees for a domestic transfer?"),
            Some("opposite words")
        );
        assert_eq!(
            clash("Can a technician come Monday morning?", "Can a technician come Monday afternoon?"),
            Some("different values of one kind")
        );
        assert_eq!(
            clash("I have a refundable ticket", "I have a nonrefundable ticket"),
            Some("a word is negated by a prefix")
        );
    }
}
