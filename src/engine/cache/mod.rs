//! The response cache: answers kept in Postgres, with a bounded in-memory
//! front so a warm exact hit costs no database round trip.
//!
//! - **exact**: key = sha256 of the scope (API key, or the widget) and every
//!   input that shapes the answer (messages, model or `auto` with its routing
//!   options, sampling parameters, tools). Only deterministic requests
//!   (temperature 0) unless `include_nondeterministic`.
//! - **semantic** (opt-in): a ticket's first question, same scope and
//!   system prompt, MiniLM cosine ≥ threshold, and no guard conflict
//!   (`guards`). Embeddings live in Postgres and in a flat in-memory index
//!   (a scan of 100k × 384 floats is about 40M multiply-adds, ~10 ms);
//!   each instance pulls entries other instances stored every few seconds.
//!
//! Purges delete from Postgres and clear every instance's memory through
//! `NOTIFY triage_cache_purge`.

pub mod guards;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::classify::minilm::{MiniLm, cosine};
use super::pricing::Usage;
use super::providers::Role;
use crate::config::CacheConfig;
use crate::domain::Tier;
use crate::store::cache::{self as store, CacheRow};

pub const PURGE_CHANNEL: &str = "triage_cache_purge";

/// What a request asks of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// Neither read nor write the cache.
    pub bypass: bool,
    /// Overrides `cache.semantic` for this request.
    pub semantic: Option<bool>,
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub scope: String,
    pub model: String,
    pub tier: Option<Tier>,
    pub query: String,
    pub system_hash: String,
    pub answer: String,
    pub finish_reason: String,
    pub usage: Usage,
    pub cost_micros: i64,
    pub embedding: Option<Vec<f32>>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HitKind {
    Exact,
    Semantic { cosine: f32 },
}

/// The parts of a request the cache reads.
#[derive(Debug, Clone)]
pub struct Probe<'a> {
    pub scope: String,
    /// Canonical JSON of everything that shapes the answer except the scope.
    pub shape: serde_json::Value,
    pub system_prompt: &'a str,
    /// The last user message.
    pub question: &'a str,
    /// A ticket's first question (semantic eligibility).
    pub first_turn: bool,
    pub control: CacheControl,
}

#[derive(Debug, Clone)]
pub enum Lookup {
    Hit(Arc<Entry>, HitKind),
    /// Not found; store the answer under this key (and embedding).
    Miss {
        key: String,
        embedding: Option<Vec<f32>>,
        system_hash: String,
    },
    /// The cache was not consulted, and why.
    Bypass(&'static str),
}

struct SemanticItem {
    entry: Arc<Entry>,
    signature: guards::Signature,
}

#[derive(Default)]
struct Front {
    map: HashMap<String, Arc<Entry>>,
    order: VecDeque<String>,
}

#[derive(Default)]
struct SemanticIndex {
    items: Vec<SemanticItem>,
    synced_until: Option<DateTime<Utc>>,
    synced_at: Option<Instant>,
}

pub struct Cache {
    config: CacheConfig,
    pool: PgPool,
    embedder: Option<Arc<MiniLm>>,
    front: Mutex<Front>,
    semantic: Mutex<SemanticIndex>,
    /// Hits per entry key not yet written. A popular answer can be hit
    /// thousands of times a second: one UPDATE per hit would queue on that
    /// one row's lock and drain the connection pool the call log needs.
    unwritten_hits: Mutex<HashMap<String, i64>>,
}

/// Entries whose unwritten hit counts are kept through failed writes.
const MAX_UNWRITTEN_HITS: usize = 100_000;

pub fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Cache {
    /// `embedder` is needed only for the semantic cache.
    pub fn new(config: CacheConfig, pool: PgPool, embedder: Option<Arc<MiniLm>>) -> Self {
        Cache {
            config,
            pool,
            embedder,
            front: Mutex::default(),
            semantic: Mutex::default(),
            unwritten_hits: Mutex::default(),
        }
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    fn semantic_on(&self, probe: &Probe) -> bool {
        probe.control.semantic.unwrap_or(self.config.semantic) && self.embedder.is_some() && probe.first_turn
    }

    pub fn ttl(&self, tier: Option<Tier>) -> Duration {
        Duration::from_secs(match tier {
            Some(Tier::Budget) | None => self.config.ttl_budget_secs,
            Some(Tier::Balanced) => self.config.ttl_balanced_secs,
            Some(Tier::Premium) => self.config.ttl_premium_secs,
        })
    }

    pub fn key(probe: &Probe) -> String {
        sha256(&format!("{}\n{}", probe.scope, probe.shape))
    }

    /// Memory, then Postgres, then (if on) the semantic index. The probe
    /// is only built when the cache is consulted: a bypassed request pays
    /// nothing for it.
    pub async fn lookup<'a>(
        &self,
        control: CacheControl,
        deterministic: bool,
        probe: impl FnOnce() -> Probe<'a>,
    ) -> Result<Lookup, sqlx::Error> {
        if !self.config.enabled {
            return Ok(Lookup::Bypass("cache disabled"));
        }
        if control.bypass {
            return Ok(Lookup::Bypass("bypass requested"));
        }
        if !deterministic && !self.config.include_nondeterministic {
            return Ok(Lookup::Bypass("not deterministic (temperature above 0)"));
        }
        let probe = &probe();
        let key = Self::key(probe);
        if let Some(entry) = self.memory_get(&key) {
            return Ok(Lookup::Hit(entry, HitKind::Exact));
        }
        if let Some(row) = store::get(&self.pool, &key).await? {
            let entry = Arc::new(entry_of(row));
            self.memory_put(entry.clone());
            return Ok(Lookup::Hit(entry, HitKind::Exact));
        }
        let system_hash = sha256(probe.system_prompt);
        let mut embedding = None;
        if self.semantic_on(probe)
            && let Some(embedder) = &self.embedder
        {
            let e = embed(embedder, probe.question).await;
            if let Some(e) = &e
                && let Some((entry, cosine)) = self.semantic_match(probe, &system_hash, e).await?
            {
                return Ok(Lookup::Hit(entry, HitKind::Semantic { cosine }));
            }
            embedding = e;
        }
        Ok(Lookup::Miss { key, embedding, system_hash })
    }

    async fn semantic_match(
        &self,
        probe: &Probe<'_>,
        system_hash: &str,
        embedding: &[f32],
    ) -> Result<Option<(Arc<Entry>, f32)>, sqlx::Error> {
        self.sync_semantic().await?;
        let signature = guards::signature(probe.question);
        let now = Utc::now();
        let index = self.semantic.lock().expect("semantic index");
        let mut best: Option<(Arc<Entry>, f32)> = None;
        for item in &index.items {
            let e = &item.entry;
            if e.scope != probe.scope || e.system_hash != system_hash || e.expires_at <= now {
                continue;
            }
            let Some(v) = &e.embedding else { continue };
            let c = cosine(v, embedding);
            if c >= self.config.semantic_threshold
                && best.as_ref().is_none_or(|(_, b)| c > *b)
                && guards::conflict(&item.signature, &signature).is_none()
            {
                best = Some((e.clone(), c));
            }
        }
        Ok(best)
    }

    /// Pulls semantic entries stored since the last pull (by any instance).
    async fn sync_semantic(&self) -> Result<(), sqlx::Error> {
        let since = {
            let index = self.semantic.lock().expect("semantic index");
            if index.synced_at.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
                return Ok(());
            }
            index.synced_until.unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        };
        let rows = store::semantic_since(&self.pool, since).await?;
        let mut index = self.semantic.lock().expect("semantic index");
        let now = Utc::now();
        index.items.retain(|i| i.entry.expires_at > now);
        for row in rows {
            index.synced_until = Some(index.synced_until.map_or(row.created_at, |t| t.max(row.created_at)));
            if index.items.iter().any(|i| i.entry.key == row.key) {
                continue;
            }
            let entry = Arc::new(entry_of(row));
            index.items.push(SemanticItem { signature: guards::signature(&entry.query), entry });
        }
        index.synced_at = Some(Instant::now());
        Ok(())
    }

    /// Keeps an answer: in memory now, in Postgres in the background.
    pub fn store(&self, entry: Entry) {
        let entry = Arc::new(entry);
        self.memory_put(entry.clone());
        if entry.embedding.is_some() {
            let mut index = self.semantic.lock().expect("semantic index");
            index.items.retain(|i| i.entry.key != entry.key);
            index.items.push(SemanticItem { signature: guards::signature(&entry.query), entry: entry.clone() });
        }
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = store::upsert(&pool, &row_of(&entry)).await {
                tracing::warn!(error = %e, "could not store a cache entry");
            }
        });
    }

    /// Counts a hit on the entry; `write_hits` stores the counts.
    pub fn count_hit(&self, key: &str) {
        let mut hits = self.unwritten_hits.lock().expect("cache hits");
        match hits.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                hits.insert(key.to_string(), 1);
            }
        }
    }

    /// Adds the hits counted so far to their entries in one statement; on
    /// failure they are kept for the next try.
    pub async fn write_hits(&self) -> Result<(), sqlx::Error> {
        let hits = std::mem::take(&mut *self.unwritten_hits.lock().expect("cache hits"));
        if hits.is_empty() {
            return Ok(());
        }
        let (keys, counts): (Vec<String>, Vec<i64>) = hits.into_iter().unzip();
        if let Err(e) = store::add_hits(&self.pool, &keys, &counts).await {
            let mut pending = self.unwritten_hits.lock().expect("cache hits");
            // a long outage must not grow this without bound: counts are
            // statistics, the answers themselves are safe
            if pending.len() < MAX_UNWRITTEN_HITS {
                for (key, n) in keys.into_iter().zip(counts) {
                    *pending.entry(key).or_insert(0) += n;
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// Writes the hit counts every `period` while the cache lives.
    pub fn write_hits_every(self: &Arc<Self>, period: Duration) {
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(cache) = cache.upgrade() else { return };
                if let Err(e) = cache.write_hits().await {
                    tracing::debug!(error = %e, "could not write cache hit counts; keeping them");
                }
            }
        });
    }

    fn memory_get(&self, key: &str) -> Option<Arc<Entry>> {
        let mut front = self.front.lock().expect("cache front");
        let entry = front.map.get(key)?.clone();
        if entry.expires_at <= Utc::now() {
            front.map.remove(key);
            return None;
        }
        Some(entry)
    }

    fn memory_put(&self, entry: Arc<Entry>) {
        let mut front = self.front.lock().expect("cache front");
        if front.map.insert(entry.key.clone(), entry.clone()).is_none() {
            front.order.push_back(entry.key.clone());
        }
        while front.map.len() > self.config.memory_entries.max(1) {
            let Some(oldest) = front.order.pop_front() else { break };
            front.map.remove(&oldest);
        }
    }

    /// Forgets everything held in memory (after a purge anywhere).
    pub fn clear_memory(&self) {
        *self.front.lock().expect("cache front") = Front::default();
        *self.semantic.lock().expect("semantic index") = SemanticIndex::default();
    }

    /// Deletes entries (all, or by model, or by scope) everywhere.
    pub async fn purge(&self, model: Option<&str>, scope: Option<&str>) -> Result<u64, sqlx::Error> {
        let n = store::purge(&self.pool, model, scope).await?;
        self.clear_memory();
        sqlx::query("SELECT pg_notify($1, '')").bind(PURGE_CHANNEL).execute(&self.pool).await?;
        Ok(n)
    }

    /// Clears this instance's memory whenever any instance purges.
    pub fn listen_for_purges(self: &Arc<Self>) {
        let cache = Arc::downgrade(self);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cache purge listener: retrying");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    }
                };
                if listener.listen(PURGE_CHANNEL).await.is_err() {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                while listener.recv().await.is_ok() {
                    match cache.upgrade() {
                        Some(c) => c.clear_memory(),
                        None => return,
                    }
                }
            }
        });
    }
}

/// The question's embedding, off the async threads (MiniLM is CPU work).
async fn embed(embedder: &Arc<MiniLm>, text: &str) -> Option<Vec<f32>> {
    let (embedder, text) = (embedder.clone(), text.to_string());
    match tokio::task::spawn_blocking(move || embedder.embed(&text, 128)).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "semantic cache: embedding failed");
            None
        }
        Err(_) => None,
    }
}

fn entry_of(r: CacheRow) -> Entry {
    Entry {
        key: r.key,
        scope: r.scope,
        model: r.model,
        tier: r.tier.and_then(|t| t.parse().ok()),
        query: r.query,
        system_hash: r.system_hash,
        answer: r.answer,
        finish_reason: r.finish_reason,
        usage: Usage {
            input_tokens: r.input_tokens.max(0) as u32,
            output_tokens: r.output_tokens.max(0) as u32,
            cached_tokens: 0,
            estimated: false,
        },
        cost_micros: r.cost_micros,
        embedding: r.embedding,
        expires_at: r.expires_at,
    }
}

fn row_of(e: &Entry) -> CacheRow {
    CacheRow {
        key: e.key.clone(),
        scope: e.scope.clone(),
        model: e.model.clone(),
        tier: e.tier.map(|t| t.to_string()),
        query: e.query.clone(),
        system_hash: e.system_hash.clone(),
        answer: e.answer.clone(),
        finish_reason: e.finish_reason.clone(),
        input_tokens: e.usage.input_tokens as i32,
        output_tokens: e.usage.output_tokens as i32,
        cost_micros: e.cost_micros,
        embedding: e.embedding.clone(),
        created_at: Utc::now(),
        expires_at: e.expires_at,
    }
}

/// Whether a conversation is a ticket's first question: one user turn and
/// no answers yet.
pub fn is_first_turn(roles: impl Iterator<Item = Role>) -> bool {
    let mut users = 0;
    for r in roles {
        match r {
            Role::User => users += 1,
            Role::Assistant | Role::Tool => return false,
            Role::System => {}
        }
    }
    users == 1
}

/// Splits a cached answer into stream-sized pieces (words with their
/// following space), so a hit streams like a live answer.
pub fn replay_chunks(answer: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut piece = String::new();
    for word in answer.split_inclusive(' ') {
        piece.push_str(word);
        if piece.len() >= 12 {
            out.push(std::mem::take(&mut piece));
        }
    }
    if !piece.is_empty() {
        out.push(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(scope: &str, shape: serde_json::Value) -> Probe<'static> {
        Probe {
            scope: scope.into(),
            shape,
            system_prompt: "",
            question: "q",
            first_turn: true,
            control: CacheControl::default(),
        }
    }

    #[test]
    fn keys_separate_tenants_and_parameters() {
        let shape = serde_json::json!({"messages": [["user", "hi"]], "temperature": 0.0});
        let a = Cache::key(&probe("key:a", shape.clone()));
        assert_eq!(a, Cache::key(&probe("key:a", shape.clone())));
        assert_ne!(a, Cache::key(&probe("key:b", shape)));
        assert_ne!(
            a,
            Cache::key(&probe(
                "key:a",
                serde_json::json!({"messages": [["user", "hi"]], "temperature": 0.0, "max_tokens": 5})
            ))
        );
    }

    #[test]
    fn first_turns_and_replays() {
        assert!(is_first_turn([Role::System, Role::User].into_iter()));
        assert!(!is_first_turn([Role::User, Role::Assistant, Role::User].into_iter()));
        let chunks = replay_chunks("We are open from nine to five on weekdays.");
        assert!(chunks.len() > 1);
        assert_eq!(chunks.concat(), "We are open from nine to five on weekdays.");
    }
}
