//! TOTP multi-factor authentication (RFC 6238) with recovery codes.
//!
//! The rules this module enforces: a second factor is asked for after every
//! correct password of an enrolled account, and nothing yields tokens
//! without it; each TOTP step and each recovery code is accepted at most
//! once, across replicas; wrong codes are throttled per account, apart from
//! passwords; secrets are stored sealed and codes only as keyed hashes; no
//! code or secret reaches a log or the audit log.
pub mod challenge;
pub mod enrolment;
pub mod factor;
pub mod qr;
pub mod recovery;
pub mod totp;

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::crypto::{DataKey, MasterKey};
use crate::domain::data_keys;

/// `sealed_keys` purposes of the MFA data keys.
const SECRETS_PURPOSE: &str = "totp-secrets";
const RECOVERY_PURPOSE: &str = "recovery-codes";

/// The data keys MFA needs, both random and sealed under the master key.
pub struct MfaKeys {
    /// AES-256-GCM key of the TOTP secrets.
    pub secrets: DataKey,
    /// HMAC key of the recovery codes.
    pub recovery: DataKey,
}

impl MfaKeys {
    pub async fn load_or_create(
        db: &PgPool,
        master: &MasterKey,
        now: OffsetDateTime,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            secrets: data_keys::load_or_create(db, master, SECRETS_PURPOSE, now).await?,
            recovery: data_keys::load_or_create(db, master, RECOVERY_PURPOSE, now).await?,
        })
    }
}
