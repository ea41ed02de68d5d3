//! Argon2id hashing and verification, always on the hashing pool. Unknown
//! accounts are verified against a dummy hash so that "no such user" costs
//! the same time as "wrong password".
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

use crate::config::PasswordSettings;
use crate::crypto::random;
use crate::domain::hashing_pool::HashingPool;
use crate::error::Result;
use crate::metrics::HashingPoolMetrics;

pub struct Passwords {
    pool: HashingPool,
    params: Params,
    dummy_hash: String,
}

/// What a verification found.
pub enum Verified {
    No,
    /// Correct; `rehash` holds a new PHC string when the stored one used
    /// outdated parameters.
    Yes {
        rehash: Option<String>,
    },
}

impl Passwords {
    pub fn new(settings: &PasswordSettings, metrics: HashingPoolMetrics) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let pool = HashingPool::new(
            settings.pool_threads,
            settings.pool_queue,
            Duration::from_millis(settings.pool_max_wait_ms),
            metrics,
        )?;
        let dummy = SecretString::from(format!("{:x?}", random::bytes::<16>()?));
        let dummy_hash = hash_blocking(&params, &dummy)?;
        Ok(Self {
            pool,
            params,
            dummy_hash,
        })
    }

    pub fn pool(&self) -> &HashingPool {
        &self.pool
    }

    /// A PHC string for `password` (already normalised).
    pub async fn hash(&self, password: SecretString) -> Result<String> {
        let params = self.params.clone();
        Ok(self
            .pool
            .run(move || hash_blocking(&params, &password))
            .await??)
    }

    /// Verifies against `stored`, or against the dummy hash when there is no
    /// account, so both cases do the same work.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> Result<Verified> {
        let params = self.params.clone();
        let real = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let verified = self
            .pool
            .run(move || verify_blocking(&params, &password, &stored))
            .await??;
        Ok(if real { verified } else { Verified::No })
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &SecretString) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&random::bytes::<16>()?)
        .map_err(|e| anyhow::anyhow!("salt encoding: {e}"))?;
    let hash = argon2(params)
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2 hashing: {e}"))?;
    Ok(hash.to_string())
}

fn verify_blocking(
    params: &Params,
    password: &SecretString,
    stored: &str,
) -> anyhow::Result<Verified> {
    let parsed =
        PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
    // Verification uses the parameters recorded in the hash itself.
    if argon2(params)
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_err()
    {
        return Ok(Verified::No);
    }
    let current = Params::try_from(&parsed).ok();
    let outdated = parsed.algorithm.as_str() != "argon2id"
        || current.is_none_or(|p| {
            p.m_cost() != params.m_cost()
                || p.t_cost() != params.t_cost()
                || p.p_cost() != params.p_cost()
        });
    let rehash = if outdated {
        Some(hash_blocking(params, password)?)
    } else {
        None
    };
    Ok(Verified::Yes { rehash })
}
