//! The shared vocabulary of Triage, compiled for both the server and the
//! browser: how hard a message is, which tier answers it, what the cache did.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The requests list counts matches up to this many and shows "N+" beyond:
/// an exact count of a broad filter over a month of calls is a scan of the
/// month (a 100,000 cap cost ~200 ms on a million calls; this one ~25 ms).
pub const REQUESTS_COUNT_CAP: i64 = 10_000;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { kind: stringify!($name), value: s.to_string() }),
                }
            }
        }
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

string_enum! {
    /// How much model a message needs (see `../shared/eval/RUBRIC.md`).
    Complexity {
        Simple => "simple",
        Medium => "medium",
        Complex => "complex",
    }
}

string_enum! {
    /// A pool of candidate models of one price class.
    Tier {
        Budget => "budget",
        Balanced => "balanced",
        Premium => "premium",
    }
}

string_enum! {
    /// What the response cache did for a call.
    CacheStatus {
        /// No cache was consulted (not cacheable, or caching is off).
        None => "none",
        Hit => "hit",
        Miss => "miss",
        Bypass => "bypass",
    }
}

string_enum! {
    /// Outcome of one upstream attempt.
    CallStatus {
        Ok => "ok",
        Error => "error",
        /// The caller went away before the answer was complete.
        Cancelled => "cancelled",
    }
}

impl Complexity {
    /// The tier a message of this complexity goes to, before ticket history
    /// and escalation signals adjust it.
    pub fn default_tier(self) -> Tier {
        match self {
            Complexity::Simple => Tier::Budget,
            Complexity::Medium => Tier::Balanced,
            Complexity::Complex => Tier::Premium,
        }
    }
}

impl Tier {
    /// The next tier up, or `None` at the top.
    pub fn up(self) -> Option<Tier> {
        match self {
            Tier::Budget => Some(Tier::Balanced),
            Tier::Balanced => Some(Tier::Premium),
            Tier::Premium => None,
        }
    }
}

/// A ticket's short, human-readable reference (for a handoff to a person).
pub fn ticket_ref(id: &uuid::Uuid) -> String {
    let hex = id.simple().to_string().to_uppercase();
    format!("T-{}", &hex[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        for c in Complexity::ALL {
            assert_eq!(c.as_str().parse::<Complexity>().unwrap(), *c);
        }
        for t in Tier::ALL {
            assert_eq!(t.to_string().parse::<Tier>().unwrap(), *t);
        }
        assert!("huge".parse::<Tier>().is_err());
    }

    #[test]
    fn tiers_are_ordered_by_price_class() {
        assert!(Tier::Budget < Tier::Balanced && Tier::Balanced < Tier::Premium);
        assert_eq!(Tier::Budget.up(), Some(Tier::Balanced));
        assert_eq!(Tier::Premium.up(), None);
        assert_eq!(Complexity::Complex.default_tier(), Tier::Premium);
    }

    #[test]
    fn ticket_ref_is_short_and_stable() {
        let id = uuid::Uuid::parse_str("8f3a2b1c-0000-4000-8000-000000000000").unwrap();
        assert_eq!(ticket_ref(&id), "T-8F3A2B1C");
    }
}
