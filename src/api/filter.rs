//! The dashboard's filter: what the URL's query string holds, so a view can
//! be shared. Shared by every admin view and the CSV export.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Every field optional; dates are UTC days, both inclusive. Without dates
/// a view covers the last 30 days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub tier: Option<String>,
    pub complexity: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub user: Option<String>,
    /// A ticket reference (`T-8F3A2B1C`) or id.
    pub ticket: Option<String>,
    /// `key=value` of a custom property (`X-Triage-Property-key`).
    pub property: Option<String>,
    /// `hit`, `miss`, `bypass` or `none`.
    pub cache: Option<String>,
    /// `up`, `down`, `any` or `none`.
    pub feedback: Option<String>,
}

/// Query keys, in the order they are written.
pub const KEYS: [&str; 11] =
    ["from", "to", "tier", "complexity", "model", "provider", "user", "ticket", "property", "cache", "feedback"];

impl CallFilter {
    /// Reads `key=value` pairs (a URL's query); unknown keys and empty
    /// values are ignored, bad dates too (validation happens on the server).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut f = CallFilter::default();
        for (k, v) in pairs {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let s = Some(v.to_string());
            match k {
                "from" => f.from = v.parse().ok(),
                "to" => f.to = v.parse().ok(),
                "tier" => f.tier = s,
                "complexity" => f.complexity = s,
                "model" => f.model = s,
                "provider" => f.provider = s,
                "user" => f.user = s,
                "ticket" => f.ticket = s,
                "property" => f.property = s,
                "cache" => f.cache = s,
                "feedback" => f.feedback = s,
                _ => {}
            }
        }
        f
    }

    pub fn get(&self, key: &str) -> Option<String> {
        match key {
            "from" => self.from.map(|d| d.to_string()),
            "to" => self.to.map(|d| d.to_string()),
            "tier" => self.tier.clone(),
            "complexity" => self.complexity.clone(),
            "model" => self.model.clone(),
            "provider" => self.provider.clone(),
            "user" => self.user.clone(),
            "ticket" => self.ticket.clone(),
            "property" => self.property.clone(),
            "cache" => self.cache.clone(),
            "feedback" => self.feedback.clone(),
            _ => None,
        }
    }

    /// `tier=budget&model=…`, URL-encoded, set fields only.
    pub fn to_query(&self) -> String {
        KEYS.iter().filter_map(|k| self.get(k).map(|v| format!("{k}={}", encode(&v)))).collect::<Vec<_>>().join("&")
    }

    /// This filter with one field replaced (or cleared with `None`).
    pub fn with(&self, key: &str, value: Option<String>) -> Self {
        let mut pairs: Vec<(String, String)> =
            KEYS.iter().filter(|k| **k != key).filter_map(|k| self.get(k).map(|v| (k.to_string(), v))).collect();
        if let Some(v) = value {
            pairs.push((key.to_string(), v));
        }
        CallFilter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// Percent-encoding for a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_query_string() {
        let f = CallFilter {
            from: NaiveDate::from_ymd_opt(2026, 11, 1),
            tier: Some("budget".into()),
            property: Some("plan=pro & more".into()),
            ..CallFilter::default()
        };
        let q = f.to_query();
        assert_eq!(q, "from=2026-11-01&tier=budget&property=plan%3Dpro%20%26%20more");
        let decoded: Vec<(String, String)> = q
            .split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), url_decode(v))
            })
            .collect();
        assert_eq!(CallFilter::from_pairs(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str()))), f);
    }

    #[test]
    fn with_replaces_one_field() {
        let f = CallFilter { tier: Some("budget".into()), model: Some("m".into()), ..CallFilter::default() };
        assert_eq!(f.with("tier", None), CallFilter { model: Some("m".into()), ..CallFilter::default() });
        assert_eq!(f.with("tier", Some("premium".into())).tier.as_deref(), Some("premium"));
        assert_eq!(CallFilter::from_pairs([("from", "yesterday"), ("x", "1"), ("tier", " ")]), CallFilter::default());
    }

    fn url_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
}
