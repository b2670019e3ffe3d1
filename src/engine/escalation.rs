//! Signals in a conversation that the answers so far are not enough: the
//! customer repeats the question, says the answer didn't help, or asks for
//! a person. Each one moves the next answer up a tier.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Asked for a human, an agent, a manager.
    WantsHuman,
    /// Said the previous answer didn't help (only after an answer).
    NotHelped,
    /// Sent (nearly) the same question again.
    Repeated,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::WantsHuman => "asked for a human",
            Signal::NotHelped => "said the answer didn't help",
            Signal::Repeated => "repeated the question",
        }
    }
}

const WANTS_HUMAN: &[&str] = &[
    "talk to a human",
    "speak to a human",
    "speak with a human",
    "talk with a human",
    "talk to a person",
    "speak to a person",
    "speak with a person",
    "talk to someone",
    "speak to someone",
    "speak with someone",
    "real person",
    "real human",
    "human agent",
    "live agent",
    "live person",
    "live chat with",
    "a representative",
    "customer service rep",
    "your supervisor",
    "a supervisor",
    "your manager",
    "a manager",
    "not a bot",
    "stop the bot",
    "connect me to support",
    "transfer me",
];

const NOT_HELPED: &[&str] = &[
    "didn't help",
    "did not help",
    "doesn't help",
    "does not help",
    "not helpful",
    "no help",
    "didn't work",
    "did not work",
    "didn't fix",
    "did not fix",
    "still not working",
    "still doesn't work",
    "still does not work",
    "still broken",
    "still the same",
    "still having",
    "still getting",
    "still can't",
    "still cannot",
    "same problem",
    "same issue",
    "same error",
    "that's not what i asked",
    "not what i asked",
    "you already said",
    "you didn't answer",
    "that is wrong",
    "that's wrong",
    "useless",
];

/// The strongest signal in `latest`, given the customer's earlier turns in
/// this conversation (oldest first) and whether any answer was given yet.
pub fn detect(earlier_user_turns: &[&str], latest: &str, answered_before: bool) -> Option<Signal> {
    let text = normalize(latest);
    if WANTS_HUMAN.iter().any(|p| text.contains(p)) {
        return Some(Signal::WantsHuman);
    }
    if !answered_before {
        // "doesn't work" in a first message describes the problem itself
        return None;
    }
    if NOT_HELPED.iter().any(|p| text.contains(p)) {
        return Some(Signal::NotHelped);
    }
    let words = word_set(&text);
    if words.len() >= 3 && earlier_user_turns.iter().any(|t| jaccard(&words, &word_set(&normalize(t))) >= 0.8) {
        return Some(Signal::Repeated);
    }
    None
}

/// Lower case, curly quotes straightened, whitespace collapsed.
fn normalize(text: &str) -> String {
    let lower = text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    lower.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn word_set(text: &str) -> HashSet<&str> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'').filter(|w| !w.is_empty()).collect()
}

fn jaccard(a: &HashSet<&str>, b: &HashSet<&str>) -> f32 {
    let union = a.union(b).count();
    if union == 0 { 0.0 } else { a.intersection(b).count() as f32 / union as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_for_a_person_escalates_even_first() {
        assert_eq!(detect(&[], "Can I talk to a human please?", false), Some(Signal::WantsHuman));
        assert_eq!(detect(&[], "I want a REAL PERSON", false), Some(Signal::WantsHuman));
    }

    #[test]
    fn complaints_count_only_after_an_answer() {
        assert_eq!(detect(&[], "My login didn't work after the reset", false), None);
        assert_eq!(detect(&["reset my password"], "That didn’t help at all", true), Some(Signal::NotHelped));
        assert_eq!(detect(&["x"], "still getting the same error", true), Some(Signal::NotHelped));
    }

    #[test]
    fn the_same_question_again_is_a_repeat() {
        let earlier = ["How do I change my billing address?"];
        assert_eq!(detect(&earlier, "how do I change my billing address", true), Some(Signal::Repeated));
        assert_eq!(detect(&earlier, "How do I change my shipping speed?", true), None);
        // too short to tell a repeat from a reply
        assert_eq!(detect(&["ok thanks"], "ok thanks", true), None);
    }

    #[test]
    fn ordinary_follow_ups_are_not_signals() {
        assert_eq!(detect(&["Where is my order?"], "It was order 1234, placed Monday", true), None);
        assert_eq!(detect(&[], "What does the agent field in the API mean?", false), None);
    }
}
