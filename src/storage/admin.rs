//! What the admin API reads and changes: accounts in a stable order, their
//! roles, and the audit log by kind and account.
use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::storage::audit::StoredEvent;

/// The roles of an account whose session is open (neither revoked nor
/// past its absolute expiry) and which is enabled; `None` otherwise. Read
/// at every admin call, so a revoked role, a disabled account or the admin
/// session cap stops working at once, even while the access token (whose
/// lifetime a client may set longer) is still unexpired.
pub async fn live_roles(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    session_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Vec<String>>> {
    sqlx::query_scalar(
        "SELECT ARRAY(SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role)
         FROM users u JOIN sessions s ON s.user_id = u.id
         WHERE u.id = $1 AND s.id = $2 AND s.revoked_at IS NULL AND u.disabled_at IS NULL
           AND s.absolute_expires_at > $3",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(now)
    .fetch_optional(db)
    .await
}

#[derive(Debug, FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub mfa_enabled: bool,
    pub created_at: OffsetDateTime,
    pub last_login_at: Option<OffsetDateTime>,
    pub active_sessions: i64,
}

const USER_COLUMNS: &str = "u.id, u.email, u.email_verified,
    ARRAY(SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role) AS roles,
    u.disabled_at IS NOT NULL AS disabled, u.mfa_enabled, u.created_at, u.last_login_at,
    (SELECT count(*) FROM sessions s
     WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.absolute_expires_at > $1
       AND s.idle_expires_at > $1) AS active_sessions";

/// Accounts after `(created_at, id)` in that order, optionally those whose
/// case-folded address starts with `prefix`.
pub async fn list_users(
    db: impl PgExecutor<'_>,
    now: OffsetDateTime,
    after: Option<(OffsetDateTime, Uuid)>,
    prefix: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<UserRow>> {
    let pattern = prefix.map(|p| format!("{}%", escape_like(p)));
    let (after_at, after_id) = after.unzip();
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users u
         WHERE ($2::timestamptz IS NULL OR (u.created_at, u.id) > ($2, $3))
           AND ($4::text IS NULL OR u.email_key LIKE $4)
         ORDER BY u.created_at, u.id
         LIMIT $5"
    ))
    .bind(now)
    .bind(after_at)
    .bind(after_id)
    .bind(pattern)
    .bind(limit)
    .fetch_all(db)
    .await
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub async fn user(
    db: impl PgExecutor<'_>,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $2"
    ))
    .bind(now)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Sets or clears `disabled_at`; false when there is no such account.
pub async fn set_disabled(
    db: impl PgExecutor<'_>,
    id: Uuid,
    disabled: bool,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE users SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, $3) END,
                          updated_at = $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(disabled)
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Replaces the account's roles. Runs under a lock on the admins, so that
/// two concurrent changes cannot both remove "the other" last admin; false
/// when it would take the role from the last enabled admin (before there
/// is any admin, anything goes: that is how the first one is made).
pub async fn replace_roles(
    conn: &mut PgConnection,
    id: Uuid,
    roles: &[String],
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    lock_admins(&mut *conn).await?;
    if is_last_admin(&mut *conn, id).await? && !roles.iter().any(|r| r == "admin") {
        return Ok(false);
    }
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    super::users::grant_roles(&mut *conn, id, roles, now).await?;
    Ok(true)
}

/// Serialises, until commit, every change that could remove the last
/// enabled admin (role changes, disabling, deletion), so that two of them cannot
/// each count on the other's admin still being there.
pub async fn lock_admins(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('authd.admins'))")
        .execute(db)
        .await?;
    Ok(())
}

/// Whether `id` is an admin and no other enabled account is: the account
/// the last-admin rule keeps (from losing the role, being disabled or
/// being deleted). Read under `lock_admins`.
pub async fn is_last_admin(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM user_roles WHERE user_id = $1 AND role = 'admin')
            AND NOT EXISTS (SELECT 1 FROM user_roles r JOIN users u ON u.id = r.user_id
                            WHERE r.role = 'admin' AND u.disabled_at IS NULL AND u.id <> $1)",
    )
    .bind(id)
    .fetch_one(db)
    .await
}

/// Brings every open session of an account with an admin-plane role under
/// the admin session cap (when a role is granted to an account already
/// signed in).
pub async fn cap_sessions(db: impl PgExecutor<'_>, id: Uuid, max_secs: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sessions
         SET absolute_expires_at = LEAST(absolute_expires_at, auth_time + make_interval(secs => $2)),
             idle_expires_at = LEAST(idle_expires_at, auth_time + make_interval(secs => $2))
         WHERE user_id = $1 AND revoked_at IS NULL
           AND EXISTS (SELECT 1 FROM user_roles WHERE user_id = $1
                       AND role IN ('support', 'auditor', 'admin'))",
    )
    .bind(id)
    .bind(max_secs as f64)
    .execute(db)
    .await?;
    Ok(())
}

/// Audit events after `before` (newest first), optionally of one kind and
/// about one account (as actor or subject).
pub async fn audit_page(
    db: impl PgExecutor<'_>,
    before: i64,
    kind: Option<&str>,
    user_id: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<StoredEvent>> {
    sqlx::query_as(
        "SELECT seq, occurred_at, event_type, actor_user_id, subject_user_id, client_ip,
                user_agent, request_id, outcome, details, personal_enc, prev_hash, hash
         FROM audit_events
         WHERE seq < $1 AND ($2::text IS NULL OR event_type = $2)
           AND ($3::uuid IS NULL OR subject_user_id = $3 OR actor_user_id = $3)
         ORDER BY seq DESC LIMIT $4",
    )
    .bind(before)
    .bind(kind)
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Account ids by address, for the CLI.
pub async fn id_by_email_key(
    db: impl PgExecutor<'_>,
    email_key: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM users WHERE email_key = $1")
        .bind(email_key)
        .fetch_optional(db)
        .await
}

/// Accounts holding `role` (or all), for the CLI.
pub async fn list_by_role(
    db: impl PgExecutor<'_>,
    role: Option<&str>,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users u
         WHERE $2::text IS NULL OR EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.role = $2)
         ORDER BY u.created_at, u.id"
    ))
    .bind(now)
    .bind(role)
    .fetch_all(db)
    .await
}
