//! Random data keys stored sealed under a master-derived key.
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;

pub async fn get(db: impl PgExecutor<'_>, purpose: &str) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT ciphertext FROM sealed_keys WHERE purpose = $1")
        .bind(purpose)
        .fetch_optional(db)
        .await
}

/// Stores the key unless one exists for `purpose`; returns the stored one.
pub async fn insert_or_get(
    db: &PgPool,
    purpose: &str,
    ciphertext: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<Vec<u8>> {
    let stored: Option<Vec<u8>> = sqlx::query_scalar(
        "WITH ins AS (
             INSERT INTO sealed_keys (purpose, ciphertext, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (purpose) DO NOTHING RETURNING ciphertext
         )
         SELECT ciphertext FROM ins
         UNION ALL SELECT ciphertext FROM sealed_keys WHERE purpose = $1
         LIMIT 1",
    )
    .bind(purpose)
    .bind(ciphertext)
    .bind(now)
    .fetch_optional(db)
    .await?;
    match stored {
        Some(stored) => Ok(stored),
        // Another process's insert won the conflict after this statement's
        // snapshot was taken, so the statement could not see its row; a
        // new statement can (two replicas starting on an empty database).
        None => get(db, purpose).await?.ok_or(sqlx::Error::RowNotFound),
    }
}

pub async fn all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, Vec<u8>)>> {
    sqlx::query_as("SELECT purpose, ciphertext FROM sealed_keys ORDER BY purpose")
        .fetch_all(db)
        .await
}

pub async fn replace(
    db: impl PgExecutor<'_>,
    purpose: &str,
    ciphertext: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("UPDATE sealed_keys SET ciphertext = $2 WHERE purpose = $1")
        .bind(purpose)
        .bind(ciphertext)
        .execute(db)
        .await?;
    Ok(())
}
