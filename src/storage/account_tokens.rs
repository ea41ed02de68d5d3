//! Tokens mailed to an account (verify an address, move to a new one, reset
//! the password): only their SHA-256 is stored, and spending one is a
//! conditional UPDATE, so each works once.
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

pub struct NewToken<'a> {
    pub hash: &'a [u8; 32],
    pub user_id: Uuid,
    pub purpose: &'a str,
    pub new_email: Option<&'a str>,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

pub async fn insert(db: impl PgExecutor<'_>, token: &NewToken<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, new_email, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.hash.as_slice())
    .bind(token.user_id)
    .bind(token.purpose)
    .bind(token.new_email)
    .bind(token.now)
    .bind(token.expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Voids the user's unused tokens of these purposes.
pub async fn void(db: impl PgExecutor<'_>, user_id: Uuid, purposes: &[&str]) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM account_tokens WHERE user_id = $1 AND purpose = ANY($2) AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(purposes)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, FromRow)]
pub struct Spent {
    pub user_id: Uuid,
    pub purpose: String,
    pub new_email: Option<String>,
}

/// Spends an unused, unexpired token of one of `purposes`.
pub async fn spend(
    db: impl PgExecutor<'_>,
    hash: &[u8; 32],
    purposes: &[&str],
    now: OffsetDateTime,
) -> sqlx::Result<Option<Spent>> {
    sqlx::query_as(
        "UPDATE account_tokens SET used_at = $2
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND purpose = ANY($3)
         RETURNING user_id, purpose, new_email",
    )
    .bind(hash.as_slice())
    .bind(now)
    .bind(purposes)
    .fetch_optional(db)
    .await
}

/// The owner of a token that could still be spent (nothing changes).
pub async fn peek(
    db: impl PgExecutor<'_>,
    hash: &[u8; 32],
    purpose: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT user_id FROM account_tokens
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(hash.as_slice())
    .bind(purpose)
    .bind(now)
    .fetch_optional(db)
    .await
}

pub async fn purge(db: impl PgExecutor<'_>, now: OffsetDateTime) -> sqlx::Result<u64> {
    let result =
        sqlx::query("DELETE FROM account_tokens WHERE expires_at < $1 OR used_at IS NOT NULL")
            .bind(now)
            .execute(db)
            .await?;
    Ok(result.rows_affected())
}
