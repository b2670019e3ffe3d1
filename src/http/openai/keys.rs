//! A short-lived cache of API key lookups, so an authenticated request
//! costs a hash and a map lookup rather than a database round trip.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use sqlx::PgPool;

use super::KEY_CACHE_TTL;
use crate::store::api_keys::{self, ApiKey};

#[derive(Default)]
pub struct KeyCache {
    /// sha256 of the secret → the key (or `None`: no such live key).
    entries: Mutex<HashMap<String, (Option<ApiKey>, Instant)>>,
}

impl KeyCache {
    pub async fn find(&self, pool: &PgPool, secret: &str) -> Result<Option<ApiKey>, sqlx::Error> {
        let hash = api_keys::hash(secret);
        if let Some((key, at)) = self.entries.lock().expect("key cache").get(&hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(key.clone());
        }
        let key = api_keys::find_active(pool, secret).await?;
        let mut entries = self.entries.lock().expect("key cache");
        if entries.len() > 10_000 {
            // a flood of made-up keys must not grow the map without bound
            entries.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        entries.insert(hash, (key.clone(), Instant::now()));
        Ok(key)
    }
}
