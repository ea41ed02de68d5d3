//! Clients: who an access token is for. Every token names its client
//! (`client_id`) and that client's audience (`aud`), lifetime and scopes.
//! The built-in default client (`DEFAULT_CLIENT_ID`) takes them from
//! `[auth]`, so callers that name no client get what they always got.
//! Registered clients are immutable, which lets every replica cache them
//! forever once seen.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::config::AuthSettings;
use crate::crypto::random;
use crate::error::{Error, Result};
use crate::storage::clients::{self as store, ClientRow};

pub const DEFAULT_CLIENT_ID: &str = "default";
/// Access-token lifetimes a registered client may choose.
pub const ACCESS_TTL_RANGE: std::ops::RangeInclusive<i64> = 60..=3600;
const MAX_CLIENT_ID_CHARS: usize = 64;

/// What minting an access token needs to know of its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub audience: String,
    pub access_ttl_secs: i64,
    /// The `scope` claim: space-separated, possibly empty.
    pub scope: String,
}

impl Client {
    fn from_row(row: ClientRow) -> Self {
        Self {
            id: row.id,
            audience: row.audience,
            access_ttl_secs: i64::from(row.access_ttl_secs),
            scope: row.scopes.join(" "),
        }
    }

    /// Whether sessions store this client (`None` is the default one).
    pub fn stored_id(&self) -> Option<&str> {
        (self.id != DEFAULT_CLIENT_ID).then_some(self.id.as_str())
    }
}

pub struct Clients {
    default: Arc<Client>,
    known: RwLock<HashMap<String, Arc<Client>>>,
}

impl Clients {
    pub fn new(auth: &AuthSettings) -> Self {
        Self {
            default: Arc::new(Client {
                id: DEFAULT_CLIENT_ID.to_owned(),
                audience: auth.audience.clone(),
                access_ttl_secs: auth.access_token_ttl_secs,
                scope: String::new(),
            }),
            known: RwLock::new(HashMap::new()),
        }
    }

    /// The client a caller names (the default one when it names none), or
    /// `invalid_client`.
    pub async fn resolve(&self, db: &PgPool, requested: Option<&str>) -> Result<Arc<Client>> {
        match requested {
            None | Some(DEFAULT_CLIENT_ID) => Ok(self.default.clone()),
            Some(id)
                if id.is_empty()
                    || id.len() > MAX_CLIENT_ID_CHARS
                    || id.chars().any(char::is_control) =>
            {
                Err(Error::InvalidClient)
            }
            Some(id) => self.stored(db, Some(id)).await?.ok_or(Error::InvalidClient),
        }
    }

    /// The client a session stored (`None`: the default one); `None` when
    /// no such client exists.
    pub async fn stored(&self, db: &PgPool, id: Option<&str>) -> Result<Option<Arc<Client>>> {
        let Some(id) = id else {
            return Ok(Some(self.default.clone()));
        };
        if let Some(client) = self.cached(id) {
            return Ok(Some(client));
        }
        let Some(row) = store::find(db, id).await? else {
            return Ok(None);
        };
        let client = Arc::new(Client::from_row(row));
        if let Ok(mut known) = self.known.write() {
            known.insert(id.to_owned(), client.clone());
        }
        Ok(Some(client))
    }

    fn cached(&self, id: &str) -> Option<Arc<Client>> {
        self.known.read().ok()?.get(id).cloned()
    }
}

/// What `authd clients create` asks for.
pub struct NewClient<'a> {
    pub name: &'a str,
    pub audience: &'a str,
    pub access_ttl_secs: i64,
    pub scopes: &'a [String],
}

/// Registers a client; its id is 26 random lowercase letters and digits.
pub async fn create(
    db: &PgPool,
    new: &NewClient<'_>,
    now: OffsetDateTime,
) -> anyhow::Result<ClientRow> {
    let name = new.name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control),
        "--name must be 1 to 64 printable characters"
    );
    let audience = new.audience.trim();
    anyhow::ensure!(
        !audience.is_empty()
            && audience.len() <= 256
            && !audience
                .chars()
                .any(|c| c.is_control() || c.is_whitespace()),
        "--audience must be 1 to 256 characters without spaces"
    );
    anyhow::ensure!(
        ACCESS_TTL_RANGE.contains(&new.access_ttl_secs),
        "--access-ttl must be between 60 and 3600 seconds"
    );
    for scope in new.scopes {
        anyhow::ensure!(
            !scope.is_empty()
                && scope.len() <= 128
                && scope
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
            "each scope must be 1 to 128 printable ASCII characters without spaces, '\"' or '\\' (RFC 6749 §3.3)"
        );
    }
    anyhow::ensure!(new.scopes.len() <= 32, "at most 32 scopes");
    let row = ClientRow {
        id: new_id()?,
        name: name.to_owned(),
        audience: audience.to_owned(),
        access_ttl_secs: i32::try_from(new.access_ttl_secs)?,
        scopes: new.scopes.to_vec(),
        created_at: now,
    };
    anyhow::ensure!(
        store::insert(db, &row).await?,
        "a client named {name:?} already exists"
    );
    Ok(row)
}

pub async fn list(db: &PgPool) -> anyhow::Result<Vec<ClientRow>> {
    Ok(store::list(db).await?)
}

/// 26 characters of [a-z0-9] (about 134 bits), the shape of a Cognito
/// app client id.
fn new_id() -> anyhow::Result<String> {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = random::bytes::<26>()?;
    // Rejection sampling: a byte at or above 252 (= 7 * 36) is replaced by
    // a fresh one, so that `% 36` picks every character equally often.
    let mut extra = random::bytes::<64>()?.into_iter();
    let mut id = String::with_capacity(26);
    for mut b in bytes {
        while b >= 252 {
            b = extra
                .next()
                .ok_or_else(|| anyhow::anyhow!("random draw exhausted"))?;
        }
        id.push(char::from(ALPHABET[usize::from(b % 36)]));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_stored_shape() {
        for _ in 0..100 {
            let Ok(id) = new_id() else { panic!("rng") };
            assert_eq!(id.len(), 26);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{id}"
            );
        }
    }
}
