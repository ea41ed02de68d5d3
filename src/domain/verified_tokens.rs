//! Access tokens already verified by this replica, keyed by the SHA-256 of
//! the token: a client calling every second pays for one RS256
//! verification per token, not per call. An entry never outlives its token
//! (`exp`), nor its signing key's presence in the key set (a withdrawn key
//! voids its tokens at the next key reload, as without the cache), and the
//! set is bounded. Whether the session is still open is not cached here
//! (see `session_cache`).
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::crypto::random;
use crate::domain::access_tokens::AccessClaims;
use crate::domain::keys::KeySet;

/// Tokens remembered at most; beyond it the cache starts over.
const MAX_TOKENS: usize = 50_000;

struct Entry {
    kid: String,
    claims: Arc<AccessClaims>,
}

#[derive(Default)]
pub struct VerifiedTokens {
    entries: RwLock<HashMap<[u8; 32], Entry>>,
}

impl VerifiedTokens {
    pub fn key(token: &str) -> [u8; 32] {
        random::sha256(token.as_bytes())
    }

    /// The claims of a token verified before, if still unexpired at `now`
    /// and its key still in `keys`.
    pub fn get(&self, key: &[u8; 32], keys: &KeySet, now: i64) -> Option<Arc<AccessClaims>> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        (entry.claims.exp > now && keys.verifying.contains_key(&entry.kid))
            .then(|| entry.claims.clone())
    }

    /// Remembers a verified token; when full, expired tokens go first, and
    /// everything if none had expired.
    pub fn insert(&self, key: [u8; 32], kid: String, claims: Arc<AccessClaims>, now: i64) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_TOKENS {
                entries.retain(|_, entry| entry.claims.exp > now);
            }
            if entries.len() >= MAX_TOKENS {
                entries.clear();
            }
            entries.insert(key, Entry { kid, claims });
        }
    }
}
