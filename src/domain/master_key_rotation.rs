//! Master-key rotation: everything sealed under a master-derived key (signing
//! keys, stored data keys such as the audit key) is opened with the old key
//! and re-sealed with the new one in a single transaction, so a failure
//! leaves the database entirely under the old key. Afterwards the old key
//! file can be destroyed.
use serde_json::json;
use sqlx::PgPool;

use crate::crypto::MasterKey;
use crate::crypto::master_key::labels;
use crate::domain::audit::{AuditLog, Context, Event, Kind};
use crate::storage::{sealed_keys, signing_keys, user_keys};

/// Re-seals every ciphertext; returns how many were re-sealed.
pub async fn rotate_master(
    db: &PgPool,
    old: &MasterKey,
    new: &MasterKey,
    audit: &AuditLog,
    ctx: &Context,
) -> anyhow::Result<usize> {
    anyhow::ensure!(
        old.id()? != new.id()?,
        "the new master key is the current one"
    );
    let (old_signing, new_signing) = (
        old.derive(labels::SIGNING_KEYS)?,
        new.derive(labels::SIGNING_KEYS)?,
    );
    let (old_data, new_data) = (
        old.derive(labels::DATA_KEYS)?,
        new.derive(labels::DATA_KEYS)?,
    );
    let mut tx = db.begin().await?;
    signing_keys::lock(&mut *tx).await?;
    // Before anything is read: an account's data key is created under the
    // audit chain's lock, so none can be committed between reading the keys
    // and re-sealing them (it would stay under the old key). The chain lock
    // comes first, in the order appends take them, so neither can wait on
    // the other.
    audit.lock_chain(&mut tx).await?;
    user_keys::lock_all(&mut *tx).await?;
    let mut resealed = 0;
    for key in signing_keys::all(&mut *tx).await? {
        let plain = old_signing.open(key.kid.as_bytes(), &key.private_key_enc)?;
        signing_keys::replace_sealed(
            &mut *tx,
            &key.kid,
            &new_signing.seal(key.kid.as_bytes(), &plain)?,
        )
        .await?;
        resealed += 1;
    }
    for (user_id, sealed) in user_keys::all(&mut *tx).await? {
        let aad = crate::domain::user_keys::aad(user_id);
        let plain = old_data.open(&aad, &sealed)?;
        user_keys::replace(&mut *tx, user_id, &new_data.seal(&aad, &plain)?).await?;
        resealed += 1;
    }
    for (purpose, sealed) in sealed_keys::all(&mut *tx).await? {
        let plain = old_data.open(purpose.as_bytes(), &sealed)?;
        sealed_keys::replace(
            &mut *tx,
            &purpose,
            &new_data.seal(purpose.as_bytes(), &plain)?,
        )
        .await?;
        resealed += 1;
    }
    let details = json!({ "old_key_id": old.id()?, "new_key_id": new.id()?, "resealed": resealed });
    let event = Event {
        kind: Kind::MasterKeyRotated,
        actor: None,
        subject: None,
        outcome: "success",
        details,
    };
    audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    Ok(resealed)
}
