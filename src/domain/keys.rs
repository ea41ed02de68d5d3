//! RS256 signing keys: generated here, stored sealed under a master-derived
//! key, cached in memory as ready-to-use encoding/decoding keys.
//!
//! Rotation makes a new active key and schedules the old one to retire once
//! every token it signed has expired (token lifetime plus a margin for
//! replicas that have not reloaded yet); until then it stays in the JWKS.
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::json;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use time::{Duration, OffsetDateTime};

use crate::crypto::{DataKey, random};
use crate::storage::signing_keys::{self, StoredKey};

/// Label of the master-derived key that seals signing keys.
pub const SEALING_LABEL: &str = "authd/signing-keys/v1";
/// Extra time a rotated key keeps verifying beyond the token lifetime.
const RETIRE_MARGIN: Duration = Duration::minutes(5);

pub struct ActiveKey {
    pub kid: String,
    pub encoding: EncodingKey,
}

/// The keys in force, swapped whole on reload.
pub struct KeySet {
    pub active: ActiveKey,
    pub verifying: HashMap<String, DecodingKey>,
    /// The serialised JWKS document.
    pub jwks: Arc<[u8]>,
}

pub struct KeyStore {
    current: RwLock<Arc<KeySet>>,
    sealing: DataKey,
}

impl KeyStore {
    pub async fn load(db: &PgPool, sealing: DataKey, now: OffsetDateTime) -> anyhow::Result<Self> {
        let set = load_set(db, &sealing, now).await?;
        Ok(Self {
            current: RwLock::new(Arc::new(set)),
            sealing,
        })
    }

    pub fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The key that seals private keys at rest (for rotation).
    pub fn sealing_key(&self) -> &DataKey {
        &self.sealing
    }

    /// Re-reads the keys (picks up rotations and retirements).
    pub async fn reload(&self, db: &PgPool, now: OffsetDateTime) -> anyhow::Result<()> {
        let set = load_set(db, &self.sealing, now).await?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        Ok(())
    }
}

async fn load_set(db: &PgPool, sealing: &DataKey, now: OffsetDateTime) -> anyhow::Result<KeySet> {
    let stored = signing_keys::published(db, now).await?;
    let Some(active_row) = stored.iter().find(|k| k.retire_after.is_none()) else {
        anyhow::bail!("no active signing key: run `authd keys rotate`");
    };
    let pkcs8 = sealing.open(active_row.kid.as_bytes(), &active_row.private_key_enc)?;
    let encoding = EncodingKey::from_rsa_pem(pkcs8_pem(&pkcs8).as_bytes())?;
    let active = ActiveKey {
        kid: active_row.kid.clone(),
        encoding,
    };
    let verifying = stored
        .iter()
        .map(|k| {
            (
                k.kid.clone(),
                DecodingKey::from_rsa_raw_components(&k.public_n, &k.public_e),
            )
        })
        .collect();
    let jwks = serde_json::to_vec(&json!({ "keys": stored.iter().map(jwk).collect::<Vec<_>>() }))?;
    Ok(KeySet {
        active,
        verifying,
        jwks: jwks.into(),
    })
}

fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        body.join("\n")
    )
}

fn jwk(key: &StoredKey) -> serde_json::Value {
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": key.kid,
        "n": URL_SAFE_NO_PAD.encode(&key.public_n),
        "e": URL_SAFE_NO_PAD.encode(&key.public_e),
    })
}

/// RFC 7638 thumbprint: a kid derived from the public key itself.
fn thumbprint(n: &[u8], e: &[u8]) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(e),
        URL_SAFE_NO_PAD.encode(n)
    );
    URL_SAFE_NO_PAD.encode(random::sha256(canonical.as_bytes()))
}

fn generate(bits: u32, sealing: &DataKey, now: OffsetDateTime) -> anyhow::Result<StoredKey> {
    let size = match bits {
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => KeySize::Rsa2048,
    };
    let pair =
        RsaKeyPair::generate(size).map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
    let public = pair.public_key();
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let e = public.exponent().big_endian_without_leading_zero().to_vec();
    let pkcs8 = pair
        .as_der()
        .map_err(|_| anyhow::anyhow!("RSA key export failed"))?;
    let kid = thumbprint(&n, &e);
    let private_key_enc = sealing.seal(kid.as_bytes(), pkcs8.as_ref())?;
    Ok(StoredKey {
        kid,
        public_n: n,
        public_e: e,
        private_key_enc,
        created_at: now,
        retire_after: None,
    })
}

/// Makes a new active key; the previous one retires after `token_ttl` plus a
/// margin. With `only_if_missing`, does nothing when an active key exists
/// (first start). Returns the new kid, if any.
pub async fn rotate(
    db: &PgPool,
    sealing: &DataKey,
    bits: u32,
    token_ttl: Duration,
    now: OffsetDateTime,
    only_if_missing: bool,
) -> anyhow::Result<Option<String>> {
    let sealing_key = sealing.clone();
    let key = tokio::task::spawn_blocking(move || generate(bits, &sealing_key, now)).await??;
    let mut tx = db.begin().await?;
    signing_keys::lock(&mut *tx).await?;
    if only_if_missing && signing_keys::has_active(&mut *tx).await? {
        return Ok(None);
    }
    signing_keys::retire_active(&mut *tx, now + token_ttl + RETIRE_MARGIN).await?;
    signing_keys::insert(&mut *tx, &key).await?;
    tx.commit().await?;
    Ok(Some(key.kid))
}

/// One row of `authd keys list`.
pub struct KeyInfo {
    pub kid: String,
    pub created_at: OffsetDateTime,
    pub status: &'static str,
    pub retire_after: Option<OffsetDateTime>,
}

pub async fn list(db: &PgPool, now: OffsetDateTime) -> anyhow::Result<Vec<KeyInfo>> {
    Ok(signing_keys::all(db)
        .await?
        .into_iter()
        .map(|k| KeyInfo {
            status: match k.retire_after {
                None => "active",
                Some(at) if at > now => "verify-only",
                Some(_) => "retired",
            },
            kid: k.kid,
            created_at: k.created_at,
            retire_after: k.retire_after,
        })
        .collect())
}
