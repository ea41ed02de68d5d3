//! Argon2id hashing and verification, always on the hashing pool. Unknown
//! accounts are verified against a dummy hash so that "no such user" costs
//! the same time as "wrong password".
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::cell::RefCell;
use std::time::Duration;

use crate::config::PasswordSettings;
use crate::crypto::random;
use crate::domain::hashing_pool::{HashingPool, Slot};
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
            settings.pool_nice,
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

    /// Reserves a place in the hashing pool for a later `verify`; refuses at
    /// once when the pool is full.
    pub fn reserve(&self) -> Result<Slot> {
        self.pool.reserve()
    }

    /// Verifies against `stored`, or against the dummy hash when there is no
    /// account, so both cases do the same work.
    pub async fn verify(
        &self,
        slot: Slot,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verified> {
        let params = self.params.clone();
        let real = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let verified = self
            .pool
            .run_in(slot, move || verify_blocking(&params, &password, &stored))
            .await??;
        Ok(if real { verified } else { Verified::No })
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

thread_local! {
    /// One Argon2 working area per pool thread, reused for every hash.
    /// Allocating and freeing `m` KiB per call lets the allocator keep freed
    /// areas per thread arena, so resident memory grows far beyond
    /// `threads × m`; reuse keeps it at exactly that.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Hashes into `out` using this thread's working area. A hash with far
/// larger memory than configured (an old or foreign PHC string) gets a
/// one-off area instead of growing the shared one for good.
fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> anyhow::Result<()> {
    let need = params.block_count();
    let mut run = |blocks: &mut [Block]| {
        argon
            .hash_password_into_with_memory(password, salt, out, blocks)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    };
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        if need > MAX_REUSED_BLOCKS {
            return run(&mut vec![Block::default(); need]);
        }
        if blocks.len() < need {
            blocks.resize(need, Block::default());
        }
        run(&mut blocks[..need])
    })
}

/// 64 MiB of 1 KiB blocks: the largest working area a thread keeps.
const MAX_REUSED_BLOCKS: usize = 64 * 1024;

fn hash_blocking(params: &Params, password: &SecretString) -> anyhow::Result<String> {
    let salt_raw = random::bytes::<16>()?;
    let salt =
        SaltString::encode_b64(&salt_raw).map_err(|e| anyhow::anyhow!("salt encoding: {e}"))?;
    let mut out = [0u8; 32];
    compute(
        &argon2(params),
        params,
        password.expose_secret().as_bytes(),
        &salt_raw,
        &mut out,
    )?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow::anyhow!("params: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

fn verify_blocking(
    params: &Params,
    password: &SecretString,
    stored: &str,
) -> anyhow::Result<Verified> {
    let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("stored hash unreadable: {e}");
    let parsed = PasswordHash::new(stored).map_err(|e| unreadable(&e))?;
    // Verification uses the parameters recorded in the hash itself.
    let stored_params = Params::try_from(&parsed).map_err(|e| unreadable(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| unreadable(&e))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| unreadable(&e))?,
        None => Version::default(),
    };
    let expected = parsed.hash.ok_or_else(|| unreadable(&"no hash"))?;
    let mut salt_buf = [0u8; 64];
    let salt = parsed
        .salt
        .ok_or_else(|| unreadable(&"no salt"))?
        .decode_b64(&mut salt_buf)
        .map_err(|e| unreadable(&e))?;
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, stored_params.clone());
    compute(
        &argon,
        &stored_params,
        password.expose_secret().as_bytes(),
        salt,
        &mut out,
    )?;
    // `Output` compares in constant time.
    if Output::new(&out).map_err(|e| unreadable(&e))? != expected {
        return Ok(Verified::No);
    }
    let outdated = algorithm != Algorithm::Argon2id
        || version != Version::V0x13
        || stored_params.m_cost() != params.m_cost()
        || stored_params.t_cost() != params.t_cost()
        || stored_params.p_cost() != params.p_cost();
    let rehash = if outdated {
        Some(hash_blocking(params, password)?)
    } else {
        None
    };
    Ok(Verified::Yes { rehash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(m: u32, t: u32) -> Params {
        Params::new(m, t, 1, None).unwrap_or_default()
    }

    #[test]
    fn hashes_are_standard_phc_strings_that_the_reference_verifier_accepts() {
        use argon2::password_hash::PasswordVerifier;
        let password = SecretString::from("correct horse battery staple");
        let Ok(phc) = hash_blocking(&params(19456, 2), &password) else {
            panic!("hash")
        };
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let Ok(parsed) = PasswordHash::new(&phc) else {
            panic!("parse")
        };
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery staple", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }

    #[test]
    fn verifies_reference_hashes_and_asks_for_a_rehash_of_old_parameters() {
        use argon2::password_hash::PasswordHasher;
        let Ok(salt) = SaltString::encode_b64(b"0123456789abcdef") else {
            panic!("salt")
        };
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params(4096, 1))
            .hash_password(b"an older passphrase", &salt)
            .map(|h| h.to_string());
        let Ok(old) = old else { panic!("hash") };
        let current = params(8192, 2);
        let right = verify_blocking(&current, &SecretString::from("an older passphrase"), &old);
        let Ok(Verified::Yes { rehash: Some(new) }) = right else {
            panic!("expected a rehash")
        };
        assert!(new.starts_with("$argon2id$v=19$m=8192,t=2,p=1$"), "{new}");
        let again = verify_blocking(&current, &SecretString::from("an older passphrase"), &new);
        assert!(matches!(again, Ok(Verified::Yes { rehash: None })));
        let wrong = verify_blocking(&current, &SecretString::from("not it"), &old);
        assert!(matches!(wrong, Ok(Verified::No)));
    }
}
