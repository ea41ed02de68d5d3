//! Signing keys (RS256, or ES256 with `keys.algorithm`; see `key_material`):
//! generated here, stored sealed under a master-derived key, cached in
//! memory as ready-to-use keys: the active one parsed once (parsing and
//! checking an RSA private key costs more than a signature, and
//! jsonwebtoken's `encode` does it on every call), every published one as a
//! decoding key bound to its algorithm.
//!
//! A new key has the configured algorithm; rotating from one algorithm to
//! the other is an ordinary rotation: both keys are in the JWKS, each with
//! its `alg`, until the old one retires.
//!
//! Rotation adds a key that is published at once but signs only after
//! `keys.activation_delay_secs`, so resource servers that cache the JWKS
//! (API Gateway keeps it for up to two hours) know it before its first token.
//! The key it replaces signs until then and keeps verifying until every token
//! it signed has expired (token lifetime plus a margin for replicas that have
//! not reloaded yet).
use aws_lc_rs::rand::SystemRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use time::{Duration, OffsetDateTime};

use crate::config::{AuthSettings, KeySettings};
use crate::crypto::DataKey;
use crate::domain::audit::{AuditLog, Context, Event, Kind};
use crate::domain::key_material::{self, PublicKey, Signer, SigningAlgorithm};
use crate::storage::signing_keys::{self, StoredKey};

/// Label of the master-derived key that seals signing keys.
pub const SEALING_LABEL: &str = crate::crypto::master_key::labels::SIGNING_KEYS;
/// Extra time a rotated key keeps verifying beyond the token lifetime.
const RETIRE_MARGIN: Duration = Duration::minutes(5);

/// The key that signs, parsed once.
pub struct ActiveKey {
    pub kid: String,
    signer: Signer,
    rng: SystemRandom,
}

#[derive(Serialize)]
struct JwsHeader<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

impl ActiveKey {
    fn from_pkcs8(kid: &str, algorithm: SigningAlgorithm, pkcs8: &[u8]) -> anyhow::Result<Self> {
        let signer = Signer::from_pkcs8(algorithm, pkcs8)
            .map_err(|e| anyhow::anyhow!("signing key {kid}: {e}"))?;
        Ok(Self {
            kid: kid.to_owned(),
            signer,
            rng: SystemRandom::new(),
        })
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.signer.algorithm()
    }

    /// A compact JWS of `claims` with header `{typ, alg, kid}`.
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> anyhow::Result<String> {
        let header = JwsHeader {
            typ,
            alg: self.algorithm().name(),
            kid: &self.kid,
        };
        self.sign_with_header(&header, claims)
    }

    /// A compact JWS under any header, even one that misstates the key
    /// (tests forge tokens with it).
    pub fn sign_with_header(
        &self,
        header: &impl Serialize,
        claims: &impl Serialize,
    ) -> anyhow::Result<String> {
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
        let input = format!("{header}.{payload}");
        let signature = self.signer.sign(&self.rng, input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// A published key as verification needs it: its algorithm is part of the
/// key, so a token's `alg` must match the key its `kid` names.
pub struct VerifyingKey {
    pub algorithm: SigningAlgorithm,
    pub key: DecodingKey,
}

/// The keys in force, swapped whole on reload.
pub struct KeySet {
    pub active: ActiveKey,
    pub verifying: HashMap<String, VerifyingKey>,
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
    // `published` orders by activation, newest first.
    let Some(active_row) = stored.iter().find(|k| k.activate_after <= now) else {
        anyhow::bail!("no active signing key: run `authd keys rotate --immediately`");
    };
    let pkcs8 = sealing.open(active_row.kid.as_bytes(), &active_row.private_key_enc)?;
    let active = ActiveKey::from_pkcs8(&active_row.kid, algorithm_of(active_row)?, &pkcs8)?;
    let mut verifying = HashMap::new();
    let mut jwks = Vec::new();
    for key in &stored {
        let public = public_key(key)?;
        jwks.push(public.jwk(&key.kid));
        let verifying_key = VerifyingKey {
            algorithm: public.algorithm(),
            key: public.decoding_key()?,
        };
        verifying.insert(key.kid.clone(), verifying_key);
    }
    let jwks = serde_json::to_vec(&json!({ "keys": jwks }))?;
    Ok(KeySet {
        active,
        verifying,
        jwks: jwks.into(),
    })
}

fn algorithm_of(key: &StoredKey) -> anyhow::Result<SigningAlgorithm> {
    SigningAlgorithm::parse(&key.algorithm)
        .ok_or_else(|| anyhow::anyhow!("signing key {}: unknown algorithm", key.kid))
}

/// The stored public half, in its algorithm's columns.
fn public_key(key: &StoredKey) -> anyhow::Result<PublicKey> {
    let missing = || anyhow::anyhow!("signing key {}: public half missing", key.kid);
    Ok(match algorithm_of(key)? {
        SigningAlgorithm::RS256 => PublicKey::Rsa {
            n: key.public_n.clone().ok_or_else(missing)?,
            e: key.public_e.clone().ok_or_else(missing)?,
        },
        SigningAlgorithm::ES256 => PublicKey::P256 {
            x: key.public_x.clone().ok_or_else(missing)?,
            y: key.public_y.clone().ok_or_else(missing)?,
        },
    })
}

fn generate(
    algorithm: SigningAlgorithm,
    bits: u32,
    sealing: &DataKey,
    now: OffsetDateTime,
    activate_after: OffsetDateTime,
) -> anyhow::Result<StoredKey> {
    let (public, pkcs8) = key_material::generate(algorithm, bits)?;
    let kid = public.thumbprint();
    let private_key_enc = sealing.seal(kid.as_bytes(), &pkcs8)?;
    let (public_n, public_e, public_x, public_y) = match public {
        PublicKey::Rsa { n, e } => (Some(n), Some(e), None, None),
        PublicKey::P256 { x, y } => (None, None, Some(x), Some(y)),
    };
    Ok(StoredKey {
        kid,
        algorithm: algorithm.name().to_owned(),
        public_n,
        public_e,
        public_x,
        public_y,
        private_key_enc,
        created_at: now,
        activate_after,
        retire_after: None,
    })
}

/// How a rotation schedules the new key.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub algorithm: SigningAlgorithm,
    pub bits: u32,
    pub token_ttl: Duration,
    /// Time between publication and first use.
    pub activation_delay: Duration,
}

impl Rotation {
    /// The rotation the settings ask for; `immediately` skips the
    /// activation delay (key compromise).
    pub fn from_settings(keys: &KeySettings, auth: &AuthSettings, immediately: bool) -> Self {
        Self {
            algorithm: keys.algorithm,
            bits: keys.rsa_bits,
            // The longest-lived token any client can hold.
            token_ttl: Duration::seconds(
                auth.access_token_ttl_secs
                    .max(*crate::domain::clients::ACCESS_TTL_RANGE.end()),
            ),
            activation_delay: Duration::seconds(if immediately {
                0
            } else {
                keys.activation_delay_secs
            }),
        }
    }
}

/// Adds a key that signs from `now + activation_delay`; the key it replaces
/// retires once the tokens it signs until then have expired. Returns the kid.
pub async fn rotate(
    db: &PgPool,
    sealing: &DataKey,
    audit: (&AuditLog, &Context),
    rotation: Rotation,
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    let activate_after = now + rotation.activation_delay;
    let sealing = sealing.clone();
    let (algorithm, bits) = (rotation.algorithm, rotation.bits);
    let mut key = tokio::task::spawn_blocking(move || {
        generate(algorithm, bits, &sealing, now, activate_after)
    })
    .await??;
    let mut tx = db.begin().await?;
    signing_keys::lock(&mut *tx).await?;
    // With no key at all there is nothing to wait for.
    if !signing_keys::exists(&mut *tx).await? {
        key.activate_after = now;
    }
    signing_keys::retire_by(
        &mut *tx,
        activate_after + rotation.token_ttl + RETIRE_MARGIN,
    )
    .await?;
    signing_keys::insert(&mut *tx, &key).await?;
    let details = json!({
        "kid": key.kid,
        "alg": key.algorithm,
        "activate_after": key.activate_after.unix_timestamp(),
    });
    let event = Event {
        kind: Kind::SigningKeyRotated,
        actor: None,
        subject: None,
        outcome: "success",
        details,
    };
    audit.0.append(&mut tx, audit.1, event).await?;
    tx.commit().await?;
    Ok(key.kid)
}

/// First start: creates an immediately active key unless any key exists.
pub async fn ensure_initial_key(
    db: &PgPool,
    sealing: &DataKey,
    settings: &KeySettings,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    if signing_keys::exists(db).await? {
        return Ok(());
    }
    let sealing = sealing.clone();
    let (algorithm, bits) = (settings.algorithm, settings.rsa_bits);
    let key = tokio::task::spawn_blocking(move || generate(algorithm, bits, &sealing, now, now))
        .await??;
    let mut tx = db.begin().await?;
    signing_keys::lock(&mut *tx).await?;
    // Another replica may have created one while this one was generating.
    if !signing_keys::exists(&mut *tx).await? {
        signing_keys::insert(&mut *tx, &key).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One row of `authd keys list`.
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub created_at: OffsetDateTime,
    pub status: &'static str,
    pub activate_after: OffsetDateTime,
    pub retire_after: Option<OffsetDateTime>,
}

/// Every key with its status at `now`: `pending` (published, not signing
/// yet), `active` (signing), `verify-only` (published, replaced) or `retired`.
pub async fn list(db: &PgPool, now: OffsetDateTime) -> anyhow::Result<Vec<KeyInfo>> {
    let keys = signing_keys::all(db).await?;
    let signer = keys
        .iter()
        .filter(|k| k.activate_after <= now && k.retire_after.is_none_or(|r| r > now))
        .max_by_key(|k| k.activate_after)
        .map(|k| k.kid.clone());
    Ok(keys
        .into_iter()
        .map(|k| KeyInfo {
            // Retired first: an immediate rotation can retire a key that
            // was still waiting for its activation, which it never reaches.
            status: if Some(&k.kid) == signer.as_ref() {
                "active"
            } else if k.retire_after.is_some_and(|r| r <= now) {
                "retired"
            } else if k.activate_after > now {
                "pending"
            } else {
                "verify-only"
            },
            kid: k.kid,
            algorithm: k.algorithm,
            created_at: k.created_at,
            activate_after: k.activate_after,
            retire_after: k.retire_after,
        })
        .collect())
}
