//! The mail outbox and the per-address mail quota. Rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, so replicas share the work without sending a
//! message twice (short of a crash between sending and deleting).
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

pub async fn insert(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Option<Uuid>,
    payload: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, user_id, payload, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id)
    .bind(user_id)
    .bind(payload)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(FromRow)]
pub struct Due {
    pub id: Uuid,
    pub payload: Vec<u8>,
    pub attempts: i32,
    pub created_at: OffsetDateTime,
}

/// Due rows, locked until the caller's transaction ends; rows locked by
/// another worker are skipped.
pub async fn claim_due(
    db: impl PgExecutor<'_>,
    now: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<Vec<Due>> {
    sqlx::query_as(
        "SELECT id, payload, attempts, created_at FROM mail_outbox
         WHERE next_attempt_at <= $1
         ORDER BY next_attempt_at, created_at
         LIMIT $2
         FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM mail_outbox WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn reschedule(
    db: impl PgExecutor<'_>,
    id: Uuid,
    next_attempt_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(next_attempt_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Counts one mail to `subject` unless `max` were counted since `since`;
/// true when counted (the mail may go).
pub async fn take_quota(
    db: &mut sqlx::PgConnection,
    subject: &[u8],
    since: OffsetDateTime,
    now: OffsetDateTime,
    max: i64,
) -> sqlx::Result<bool> {
    // Serialise per address, so concurrent requests cannot both pass.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended(encode($1, 'hex'), 7))")
        .bind(subject)
        .execute(&mut *db)
        .await?;
    let sent: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mail_quota WHERE subject = $1 AND sent_at > $2")
            .bind(subject)
            .bind(since)
            .fetch_one(&mut *db)
            .await?;
    if sent >= max {
        return Ok(false);
    }
    sqlx::query("INSERT INTO mail_quota (subject, sent_at) VALUES ($1, $2)")
        .bind(subject)
        .bind(now)
        .execute(&mut *db)
        .await?;
    Ok(true)
}

pub async fn purge_quota(db: impl PgExecutor<'_>, before: OffsetDateTime) -> sqlx::Result<u64> {
    let result = sqlx::query("DELETE FROM mail_quota WHERE sent_at < $1")
        .bind(before)
        .execute(db)
        .await?;
    Ok(result.rows_affected())
}

/// Rows not yet delivered (for tests and metrics).
pub async fn pending(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM mail_outbox")
        .fetch_one(db)
        .await
}
