//! Failed-login counters per (subject, scope); see the migration for the keys.
use sqlx::{FromRow, PgExecutor, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::storage::users::{LOGIN_COLUMNS, LoginUser};

/// The state of `subject`'s counters before an attempt.
#[derive(Debug, FromRow)]
pub struct Standing {
    /// The latest `blocked_until` in the future among the scopes, if any.
    pub blocked_until: Option<OffsetDateTime>,
    /// Whether `ip_scope` has a counter at all (so a success has one to clear).
    pub has_ip_counter: bool,
}

/// The standing of `subject`'s counters in scopes $2 (the IP's) and $3
/// (the account's) at $4: a `Standing` row.
const STANDING: &str =
    "SELECT max(blocked_until) FILTER (WHERE blocked_until > $4) AS blocked_until,
            coalesce(bool_or(scope = $2), false) AS has_ip_counter
     FROM login_throttle WHERE subject = $1 AND scope IN ($2, $3)";

pub async fn standing(
    db: impl PgExecutor<'_>,
    subject: &[u8],
    ip_scope: &str,
    account_scope: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Standing> {
    sqlx::query_as(STANDING)
        .bind(subject)
        .bind(ip_scope)
        .bind(account_scope)
        .bind(now)
        .fetch_one(db)
        .await
}

/// A login's account (found by address; `None` when no account has it)
/// and its counters' standing, in one round trip either way, so an
/// unknown address costs exactly what a known one does.
pub async fn standing_with_user(
    db: impl PgExecutor<'_>,
    email_key: &str,
    (subject, ip_scope, account_scope): (&[u8], &str, &str),
    now: OffsetDateTime,
) -> sqlx::Result<(Option<LoginUser>, Standing)> {
    let row = sqlx::query(&format!(
        "SELECT {LOGIN_COLUMNS}, t.blocked_until, t.has_ip_counter
         FROM ({STANDING}) AS t LEFT JOIN users ON users.email_key = $5"
    ))
    .bind(subject)
    .bind(ip_scope)
    .bind(account_scope)
    .bind(now)
    .bind(email_key)
    .fetch_one(db)
    .await?;
    let user = match row.try_get::<Option<Uuid>, _>("id")? {
        Some(_) => Some(LoginUser::from_row(&row)?),
        None => None,
    };
    Ok((user, Standing::from_row(&row)?))
}

/// Counts one failure, starting over when the last one is older than `window_start`.
pub async fn record_failure(
    db: impl PgExecutor<'_>,
    subject: &[u8],
    scope: &str,
    now: OffsetDateTime,
    window_start: OffsetDateTime,
) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO login_throttle AS t (subject, scope, failures, last_failure_at)
         VALUES ($1, $2, 1, $3)
         ON CONFLICT (subject, scope) DO UPDATE SET
            failures = CASE WHEN t.last_failure_at < $4 THEN 1 ELSE t.failures + 1 END,
            last_failure_at = $3
         RETURNING failures",
    )
    .bind(subject)
    .bind(scope)
    .bind(now)
    .bind(window_start)
    .fetch_one(db)
    .await
}

pub async fn block(
    db: impl PgExecutor<'_>,
    subject: &[u8],
    scope: &str,
    until: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE login_throttle SET blocked_until = $3 WHERE subject = $1 AND scope = $2")
        .bind(subject)
        .bind(scope)
        .bind(until)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn clear(db: impl PgExecutor<'_>, subject: &[u8], scope: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_throttle WHERE subject = $1 AND scope = $2")
        .bind(subject)
        .bind(scope)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn purge_stale(
    db: impl PgExecutor<'_>,
    window_start: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "DELETE FROM login_throttle WHERE last_failure_at < $1 AND (blocked_until IS NULL OR blocked_until < $2)",
    )
    .bind(window_start)
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}
