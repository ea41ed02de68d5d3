//! Idempotency keys and the responses stored under them (see the migration).
//! Callers pass only fingerprints and token-free responses: nothing here can
//! tell a body that holds a token from one that does not.
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

pub struct Claim<'a> {
    pub scope: &'a str,
    pub key: &'a str,
    pub request_hash: &'a [u8],
    pub now: OffsetDateTime,
    /// A row created before this has expired and may be taken over.
    pub expired_before: OffsetDateTime,
}

/// Claims the key for a new request: inserts an `in_progress` row, or
/// replaces an expired one. One statement, so of two concurrent requests
/// with the same key exactly one claims it. True when claimed.
pub async fn claim(db: impl PgExecutor<'_>, c: &Claim<'_>) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO idempotency_keys AS k (scope, key, request_hash, state, stored, created_at)
         VALUES ($1, $2, $3, 'in_progress', false, $4)
         ON CONFLICT (scope, key) DO UPDATE SET
            request_hash = EXCLUDED.request_hash, state = 'in_progress',
            response_status = NULL, response_body = NULL, response_content_type = NULL,
            stored = false, created_at = EXCLUDED.created_at
         WHERE k.created_at < $5",
    )
    .bind(c.scope)
    .bind(c.key)
    .bind(c.request_hash)
    .bind(c.now)
    .bind(c.expired_before)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[derive(Debug, FromRow)]
pub struct KeyRow {
    pub request_hash: Vec<u8>,
    pub state: String,
    pub response_status: Option<i32>,
    pub response_body: Option<Vec<u8>>,
    pub response_content_type: Option<String>,
    pub stored: bool,
}

pub async fn find(db: impl PgExecutor<'_>, scope: &str, key: &str) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as(
        "SELECT request_hash, state, response_status, response_body, response_content_type,
                stored
         FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// A response that may be replayed. Never a `Set-Cookie`, never a token.
pub struct StoredResponse<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub content_type: Option<&'a str>,
}

/// Records the outcome of the claimed request: `Some` stores the response
/// for replay, `None` only remembers that the request succeeded.
pub async fn complete(
    db: impl PgExecutor<'_>,
    scope: &str,
    key: &str,
    status: u16,
    response: Option<&StoredResponse<'_>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'completed', response_status = $3,
            response_body = $4, response_content_type = $5, stored = $6
         WHERE scope = $1 AND key = $2 AND state = 'in_progress'",
    )
    .bind(scope)
    .bind(key)
    .bind(i32::from(status))
    .bind(response.map(|r| r.body))
    .bind(response.and_then(|r| r.content_type))
    .bind(response.is_some())
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets a claimed key whose request failed in a way worth retrying.
pub async fn release(db: impl PgExecutor<'_>, scope: &str, key: &str) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'in_progress'",
    )
    .bind(scope)
    .bind(key)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn purge_expired(
    db: impl PgExecutor<'_>,
    expired_before: OffsetDateTime,
) -> sqlx::Result<u64> {
    let result = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(expired_before)
        .execute(db)
        .await?;
    Ok(result.rows_affected())
}
