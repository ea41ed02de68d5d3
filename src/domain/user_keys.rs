//! One random data key per account, for crypto-shredding: the account's
//! personal data that must outlive a row (its audit events' client IPs and
//! user agents) is encrypted under it, and deleting the account deletes the
//! key, so what remains is unreadable. Sealed under a master-derived key
//! with the user id as associated data; `secrets rotate-master` re-seals
//! them.
use sqlx::PgConnection;
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::DataKey;
use crate::storage::user_keys as store;

pub struct UserKeys {
    sealing: DataKey,
}

/// Associated data of a sealed user key.
pub fn aad(user_id: Uuid) -> Vec<u8> {
    let mut aad = b"user-data-key:".to_vec();
    aad.extend_from_slice(user_id.as_bytes());
    aad
}

impl UserKeys {
    /// `sealing` is the master-derived data-key sealing key.
    pub fn new(sealing: DataKey) -> Self {
        Self { sealing }
    }

    /// The account's key from its sealed form as already read (`sealed`),
    /// created when it has none yet; `None` once the account is gone.
    pub async fn open_or_create(
        &self,
        conn: &mut PgConnection,
        user_id: Uuid,
        sealed: Option<Vec<u8>>,
        now: OffsetDateTime,
    ) -> anyhow::Result<Option<DataKey>> {
        let sealed = match sealed {
            Some(sealed) => Some(sealed),
            None => {
                let fresh = self
                    .sealing
                    .seal(&aad(user_id), DataKey::generate()?.expose_bytes())?;
                let header = self.sealing.sealing_header();
                let stored =
                    store::insert_or_get(&mut *conn, user_id, &fresh, &header, now).await?;
                // A key sealed under a master key that `secrets rotate-master`
                // has replaced would be unreadable once this process restarts
                // with the new one, and lost when the old one is destroyed.
                if stored.is_none() && store::sealed_by_another(&mut *conn, &header).await? {
                    anyhow::bail!(
                        "the data keys have been re-sealed under another master key: restart with the current secrets.master_key_file"
                    );
                }
                stored
            }
        };
        sealed.map(|s| self.open(user_id, &s)).transpose()
    }

    /// The account's key if it has one (none after deletion).
    pub async fn get(
        &self,
        db: impl sqlx::PgExecutor<'_>,
        user_id: Uuid,
    ) -> anyhow::Result<Option<DataKey>> {
        store::get(db, user_id)
            .await?
            .map(|s| self.open(user_id, &s))
            .transpose()
    }

    /// The keys of those of `user_ids` that have one, in one query.
    pub async fn get_many(
        &self,
        db: impl sqlx::PgExecutor<'_>,
        user_ids: &[Uuid],
    ) -> anyhow::Result<HashMap<Uuid, DataKey>> {
        store::get_many(db, user_ids)
            .await?
            .into_iter()
            .map(|(user_id, sealed)| Ok((user_id, self.open(user_id, &sealed)?)))
            .collect()
    }

    fn open(&self, user_id: Uuid, sealed: &[u8]) -> anyhow::Result<DataKey> {
        DataKey::from_bytes(&self.sealing.open(&aad(user_id), sealed)?)
    }
}
