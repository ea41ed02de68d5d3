//! Per-account data keys, sealed. Deleting the account deletes its row.
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

pub async fn get(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT key_enc FROM user_data_keys WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await
}

/// The sealed keys of those of `user_ids` that have one.
pub async fn get_many(
    db: impl PgExecutor<'_>,
    user_ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, Vec<u8>)>> {
    sqlx::query_as("SELECT user_id, key_enc FROM user_data_keys WHERE user_id = ANY($1)")
        .bind(user_ids)
        .fetch_all(db)
        .await
}

/// Stores the key unless the account has one; returns the stored one.
/// `None` when the account does not exist (any more), or when the stored
/// data keys start with another `header` than `key_enc`'s: they have been
/// re-sealed under a new master key this process does not hold.
pub async fn insert_or_get(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    key_enc: &[u8],
    header: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar(
        "WITH ins AS (
             INSERT INTO user_data_keys (user_id, key_enc, created_at)
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)
               AND NOT EXISTS (SELECT 1 FROM sealed_keys
                               WHERE substring(ciphertext FROM 1 FOR octet_length($4)) <> $4)
             ON CONFLICT (user_id) DO NOTHING RETURNING key_enc
         )
         SELECT key_enc FROM ins
         UNION ALL SELECT key_enc FROM user_data_keys WHERE user_id = $1
         LIMIT 1",
    )
    .bind(user_id)
    .bind(key_enc)
    .bind(now)
    .bind(header)
    .fetch_optional(db)
    .await
}

/// Whether some stored data key was sealed by a key other than the one
/// whose ciphertexts start with `header`.
pub async fn sealed_by_another(db: impl PgExecutor<'_>, header: &[u8]) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sealed_keys
                        WHERE substring(ciphertext FROM 1 FOR octet_length($1)) <> $1)",
    )
    .bind(header)
    .fetch_one(db)
    .await
}

/// Keeps new data keys (per account, and stored ones such as the audit
/// key) from being written until the transaction ends.
pub async fn lock_all(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("LOCK TABLE user_data_keys, sealed_keys IN SHARE ROW EXCLUSIVE MODE")
        .execute(db)
        .await?;
    Ok(())
}

pub async fn all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Uuid, Vec<u8>)>> {
    sqlx::query_as("SELECT user_id, key_enc FROM user_data_keys ORDER BY user_id")
        .fetch_all(db)
        .await
}

pub async fn replace(db: impl PgExecutor<'_>, user_id: Uuid, key_enc: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE user_data_keys SET key_enc = $2 WHERE user_id = $1")
        .bind(user_id)
        .bind(key_enc)
        .execute(db)
        .await?;
    Ok(())
}
