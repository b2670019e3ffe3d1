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
    /// Words that flip or narrow a request's meaning.
    pub qualifiers: BTreeSet<&'static str>,
    /// The message says "from … to …", "than", "instead of": word order
    /// carries meaning ("business to economy" is not "economy to business").
    pub directional: bool,
    /// Content words in order (for directional messages).
    pub words: Vec<String>,
}

const STOPWORDS: &[&str] = &[
    "a", "an", "the", "my", "your", "our", "i", "me", "we", "you", "it", "is", "are", "be", "can", "could", "do",
    "does", "how", "what", "when", "where", "which", "who", "why", "to", "from", "of", "in", "on", "for", "at", "by",
    "with", "and", "or", "please", "hi", "hello", "want", "would", "like", "need", "than", "into", "instead",
];

const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "never",
    "without",
    "cannot",
    "can't",
    "cant",
    "don't",
    "dont",
    "doesn't",
    "doesnt",
    "didn't",
    "didnt",
    "won't",
    "wont",
    "isn't",
    "isnt",
    "aren't",
    "wasn't",
    "shouldn't",
    "couldn't",
    "wouldn't",
    "haven't",
    "hasn't",
    "nor",
    "unable",
    "stop",
    "stopped",
    "unsubscribe",
    "disable",
    "deactivate",
    "remove",
    "cancel",
    "cancelled",
    "canceled",
    "refuse",
    "deny",
    "denied",
    "declined",
    "fail",
    "failed",
    "fails",
    "close",
    "closed",
    "delete",
    "lost",
    "stolen",
];

/// Words whose presence changes what a support answer must say.
const QUALIFIERS: &[&str] = &[
    "before",
    "after",
    "first",
    "last",
    "next",
    "previous",
    "old",
    "new",
    "international",
    "domestic",
    "business",
    "personal",
    "joint",
    "child",
    "today",
    "tomorrow",
    "yesterday",
    "weekend",
    "monthly",
    "yearly",
    "annual",
    "more",
    "less",
    "increase",
    "decrease",
    "upgrade",
    "downgrade",
    "physical",
    "virtual",
    "card",
    "account",
    "transfer",
    "refund",
    "return",
    "exchange",
    "password",
    "pin",
    "email",
    "phone",
    "address",
];

/// Flips meaning; "cancel", "remove" and "close" count as polarity because
/// "how do I add X" and "how do I remove X" must never share an answer.
fn is_negation(word: &str) -> bool {
    NEGATIONS.contains(&word) || word.ends_with("n't")
}

pub fn signature(text: &str) -> Signature {
    let mut s = Signature::default();
    let mut negations = 0;
    let mut sentence_start = true;
    for raw in text.split_whitespace() {
        let trimmed = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '\'' && c != '-');
        let lower = trimmed.to_lowercase().replace('\u{2019}', "'");
        if lower.contains('@') && lower.contains('.') {
            s.emails.insert(lower.clone());
        } else if lower.chars().any(|c| c.is_ascii_digit()) {
            // 1,234.50 and $1234.5 are the same number
            let canonical: String = lower.chars().filter(|c| c.is_alphanumeric() || *c == '.').collect();
            s.numbers.insert(canonical.trim_end_matches('.').to_string());
        } else if is_negation(&lower) {
            negations += 1;
        } else if let Some(q) = QUALIFIERS.iter().find(|q| **q == lower) {
            s.qualifiers.insert(q);
        } else if !sentence_start
            && trimmed.chars().next().is_some_and(char::is_uppercase)
            && trimmed.chars().count() > 1
            && trimmed != "I"
        {
            s.names.insert(lower.clone());
        }
        sentence_start = raw.ends_with(['.', '?', '!', ':']);
    }
    s.negated = negations % 2 == 1;
    let lower = format!(" {} ", text.to_lowercase());
    s.directional = (lower.contains(" from ") && lower.contains(" to "))
        || [" than ", " instead of ", " into ", " vs ", " versus ", " rather "].iter().any(|m| lower.contains(m));
    if s.directional {
        s.words = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty() && !STOPWORDS.contains(w))
            .map(str::to_string)
            .collect();
    }
    s
}

/// Whether the words both messages share come in a different order.
fn reordered(a: &[String], b: &[String]) -> bool {
    let common_a: Vec<&String> = a.iter().filter(|w| b.contains(w)).collect();
    let common_b: Vec<&String> = b.iter().filter(|w| a.contains(w)).collect();
    common_a != common_b
}

/// Why two questions must not share an answer, if they must not.
pub fn conflict(a: &Signature, b: &Signature) -> Option<&'static str> {
    if a.negated != b.negated {
        Some("negation differs")
    } else if a.numbers != b.numbers {
        Some("numbers or ids differ")
    } else if a.emails != b.emails {
        Some("email addresses differ")
    } else if a.names != b.names {
        Some("names differ")
    } else if a.qualifiers != b.qualifiers {
        Some("qualifiers differ")
    } else if a.directional && b.directional && reordered(&a.words, &b.words) {
        Some("word order differs")
    } else {
        None
    }
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
        assert_eq!(clash("What are your opening hours?", "When are you open?"), None);
    }

    #[test]
    fn negation_is_caught() {
        assert_eq!(clash("Can I get a refund?", "Can I not get a refund?"), Some("negation differs"));
        assert_eq!(clash("My card works abroad", "My card doesn’t work abroad"), Some("negation differs"));
        assert_eq!(clash("How do I add a user?", "How do I remove a user?"), Some("negation differs"));
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
    }

    #[test]
    fn products_and_qualifiers_are_caught() {
        assert_eq!(clash("Does the app support Android?", "Does the app support iOS?"), Some("names differ"));
        assert_eq!(clash("How do I close my account?", "How do I open my account?"), Some("negation differs"));
        assert_eq!(clash("Fees for an international transfer?", "Fees for a transfer?"), Some("qualifiers differ"));
    }
}
