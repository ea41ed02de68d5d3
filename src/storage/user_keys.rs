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
/// `None` when the account does not exist (any more).
pub async fn insert_or_get(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    key_enc: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar(
        "WITH ins AS (
             INSERT INTO user_data_keys (user_id, key_enc, created_at)
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)
             ON CONFLICT (user_id) DO NOTHING RETURNING key_enc
         )
         SELECT key_enc FROM ins
         UNION ALL SELECT key_enc FROM user_data_keys WHERE user_id = $1
         LIMIT 1",
    )
    .bind(user_id)
    .bind(key_enc)
    .bind(now)
    .fetch_optional(db)
    .await
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
