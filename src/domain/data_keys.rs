//! Random data keys, stored sealed (AES-256-GCM) in `sealed_keys` under a
//! key derived from the master key, one per purpose: the audit chain's HMAC
//! key, the TOTP secrets' key, the recovery codes' HMAC key. Random rather
//! than derived, so that `secrets rotate-master` re-seals them and what they
//! protect stays readable.
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::crypto::master_key::labels;
use crate::crypto::{DataKey, MasterKey};
use crate::storage::sealed_keys;

/// The data key for `purpose`, created (by whichever replica gets there
/// first) when there is none.
pub async fn load_or_create(
    db: &PgPool,
    master: &MasterKey,
    purpose: &str,
    now: OffsetDateTime,
) -> anyhow::Result<DataKey> {
    let sealing = master.derive(labels::DATA_KEYS)?;
    let sealed = match sealed_keys::get(db, purpose).await? {
        Some(sealed) => sealed,
        None => {
            let fresh = sealing.seal(purpose.as_bytes(), DataKey::generate()?.expose_bytes())?;
            sealed_keys::insert_or_get(db, purpose, &fresh, now).await?
        }
    };
    DataKey::from_bytes(&sealing.open(purpose.as_bytes(), &sealed)?)
}
