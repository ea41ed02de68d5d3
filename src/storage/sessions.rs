//! Refresh sessions (token families) and the hashes of their refresh tokens.
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub client_type: &'a str,
    /// `None`: the default client.
    pub client_id: Option<&'a str>,
    pub idp: Option<&'a str>,
    pub amr: &'a [String],
    pub now: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
    pub absolute_expires_at: OffsetDateTime,
    pub client_ip: Option<sqlx::types::ipnetwork::IpNetwork>,
    pub user_agent: Option<&'a str>,
    /// The absolute lifetime cap of an account with an admin-plane role.
    pub admin_max_secs: i64,
}

/// Opens a session with its first refresh token in one statement (one round
/// trip): the user's roles for the first access token, and the absolute
/// expiry, capped at `admin_max_secs` for an account with an admin-plane
/// role (the idle expiry never outlives it). `None` if the account is
/// disabled: the user row's lock orders this against a concurrent disable,
/// which would not see (and so not revoke) a session it has not committed.
pub async fn open(
    db: impl PgExecutor<'_>,
    s: &NewSession<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<(Vec<String>, OffsetDateTime)>> {
    sqlx::query_as(
        "WITH enabled AS (
             UPDATE users SET last_login_at = $5 WHERE id = $2 AND disabled_at IS NULL
             RETURNING id
         ), roles AS (
             SELECT ARRAY(SELECT role FROM user_roles WHERE user_id = $2 ORDER BY role) AS names
         ), expiry AS (
             SELECT CASE WHEN names && ARRAY['support', 'auditor', 'admin']
                         THEN LEAST($7, $5 + make_interval(secs => $11)) ELSE $7 END AS absolute
             FROM roles, enabled
         ), session AS (
             INSERT INTO sessions (id, user_id, client_type, amr, auth_time, created_at, last_used_at,
                                   idle_expires_at, absolute_expires_at, client_ip, user_agent,
                                   client_id, idp)
             SELECT $1, $2, $3, $4, $5, $5, $5, LEAST($6, absolute), absolute, $9, $10, $12, $13
             FROM expiry
             RETURNING id
         ), token AS (
             INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, issued_at)
             SELECT $8, id, NULL, $5 FROM session
         )
         SELECT roles.names, expiry.absolute FROM roles, expiry",
    )
    .bind(s.id)
    .bind(s.user_id)
    .bind(s.client_type)
    .bind(s.amr)
    .bind(s.now)
    .bind(s.idle_expires_at)
    .bind(s.absolute_expires_at)
    .bind(token_hash)
    .bind(s.client_ip)
    .bind(s.user_agent)
    .bind(s.admin_max_secs as f64)
    .bind(s.client_id)
    .bind(s.idp)
    .fetch_optional(db)
    .await
}

/// A session with what a refresh needs to mint the next access token.
#[derive(Debug, FromRow)]
pub struct LiveSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub amr: Vec<String>,
    pub auth_time: OffsetDateTime,
    pub absolute_expires_at: OffsetDateTime,
    pub roles: Vec<String>,
    /// `None`: the default client.
    pub client_id: Option<String>,
    pub idp: Option<String>,
}

/// Locks the session row and returns it only if it is still usable at `now`
/// (not revoked, not idle- or absolutely expired, account enabled).
pub async fn lock_live(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Option<LiveSession>> {
    sqlx::query_as(
        "SELECT s.id, s.user_id, s.amr, s.auth_time, s.absolute_expires_at,
                ARRAY(SELECT role FROM user_roles r WHERE r.user_id = s.user_id ORDER BY role) AS roles,
                s.client_id, s.idp
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id = $1 AND s.revoked_at IS NULL AND u.disabled_at IS NULL
           AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2
         FOR UPDATE OF s",
    )
    .bind(session_id)
    .bind(now)
    .fetch_optional(db)
    .await
}

pub async fn touch(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    now: OffsetDateTime,
    idle_expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET last_used_at = $2, idle_expires_at = $3 WHERE id = $1")
        .bind(session_id)
        .bind(now)
        .bind(idle_expires_at)
        .execute(db)
        .await?;
    Ok(())
}

/// Revokes a session; returns its user if it was live until now.
pub async fn revoke(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = $2, revoked_reason = $3
         WHERE id = $1 AND revoked_at IS NULL
         RETURNING user_id",
    )
    .bind(session_id)
    .bind(now)
    .bind(reason)
    .fetch_optional(db)
    .await
}

/// Deletes sessions that can no longer be refreshed; their tokens cascade.
pub async fn purge_expired(db: impl PgExecutor<'_>, now: OffsetDateTime) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "DELETE FROM sessions WHERE absolute_expires_at < $1 OR idle_expires_at < $1
            OR revoked_at < $1 - interval '1 day'",
    )
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

pub async fn insert_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    session_id: Uuid,
    parent_hash: Option<&[u8]>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, issued_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(session_id)
    .bind(parent_hash)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// The outcome of `rotate_unspent`.
pub enum Rotation {
    /// The token was unspent and its session live: it is now spent, its
    /// child stored and the session's idle expiry extended.
    Rotated(LiveSession),
    /// The token was unspent but its session is revoked or expired.
    SessionGone,
    /// The token is unknown or already spent (reuse rules apply).
    NotUnspent,
}

#[derive(FromRow)]
struct RotationRow {
    spent: i64,
    id: Option<Uuid>,
    user_id: Option<Uuid>,
    amr: Option<Vec<String>>,
    auth_time: Option<OffsetDateTime>,
    absolute_expires_at: Option<OffsetDateTime>,
    roles: Option<Vec<String>>,
    client_id: Option<String>,
    idp: Option<String>,
}

/// The common refresh in one atomic statement (one round trip): spend the
/// token if unspent, extend its live session, store the child. Concurrent
/// callers serialise on the token's row lock; only the first sees it unspent.
pub async fn rotate_unspent(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    child_hash: &[u8],
    now: OffsetDateTime,
    idle_ttl_secs: i64,
) -> sqlx::Result<Rotation> {
    let row: RotationRow = sqlx::query_as(
        "WITH spent AS (
             UPDATE refresh_tokens SET spent_at = $2
             WHERE token_hash = $1 AND spent_at IS NULL
             RETURNING session_id
         ), live AS (
             UPDATE sessions s
             SET last_used_at = $2,
                 idle_expires_at = LEAST($2 + $4::bigint * interval '1 second', s.absolute_expires_at)
             FROM spent, users u
             WHERE s.id = spent.session_id AND u.id = s.user_id
               AND s.revoked_at IS NULL AND u.disabled_at IS NULL
               AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2
             RETURNING s.id, s.user_id, s.amr, s.auth_time, s.absolute_expires_at, s.client_id, s.idp
         ), child AS (
             INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, issued_at)
             SELECT $3, id, $1, $2 FROM live
         )
         SELECT (SELECT count(*) FROM spent) AS spent,
                live.id, live.user_id, live.amr, live.auth_time, live.absolute_expires_at,
                ARRAY(SELECT role FROM user_roles r WHERE r.user_id = live.user_id ORDER BY role) AS roles,
                live.client_id, live.idp
         FROM (SELECT 1) AS one LEFT JOIN live ON true",
    )
    .bind(token_hash)
    .bind(now)
    .bind(child_hash)
    .bind(idle_ttl_secs)
    .fetch_one(db)
    .await?;
    Ok(match row {
        RotationRow { spent: 0, .. } => Rotation::NotUnspent,
        RotationRow {
            id: Some(id),
            user_id: Some(user_id),
            amr: Some(amr),
            auth_time: Some(auth_time),
            absolute_expires_at: Some(absolute_expires_at),
            roles,
            client_id,
            idp,
            ..
        } => Rotation::Rotated(LiveSession {
            id,
            user_id,
            amr,
            auth_time,
            absolute_expires_at,
            roles: roles.unwrap_or_default(),
            client_id,
            idp,
        }),
        _ => Rotation::SessionGone,
    })
}

#[derive(Debug, FromRow)]
pub struct SpentToken {
    pub session_id: Uuid,
    pub spent_at: Option<OffsetDateTime>,
    pub leeway_used: bool,
}

pub async fn lock_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<SpentToken>> {
    sqlx::query_as(
        "SELECT session_id, spent_at, leeway_used FROM refresh_tokens
         WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await
}

pub async fn mark_leeway_used(db: impl PgExecutor<'_>, token_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE refresh_tokens SET leeway_used = true WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn session_of_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(db)
        .await
}

/// The client of the token's session (`Some(None)`: the default client);
/// `None` for a token that is unknown or spent.
pub async fn client_of_unspent(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<Option<String>>> {
    sqlx::query_scalar(
        "SELECT s.client_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE t.token_hash = $1 AND t.spent_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await
}

/// Whether the session is open (not revoked) and its account enabled: what
/// every authenticated call checks, so a logout or a disabled account takes
/// effect at once, not when the access token expires.
pub async fn is_live(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND u.disabled_at IS NULL
         )",
    )
    .bind(session_id)
    .bind(user_id)
    .fetch_one(db)
    .await
}

/// Revokes every open session of the user but `except`; returns how many.
pub async fn revoke_all(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    except: Option<Uuid>,
    reason: &str,
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "UPDATE sessions SET revoked_at = $4, revoked_reason = $3
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(user_id)
    .bind(except)
    .bind(reason)
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// Revokes one of the user's own open sessions; false when there is no
/// such session of theirs.
pub async fn revoke_owned(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    session_id: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE sessions SET revoked_at = $4, revoked_reason = $3
         WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL AND absolute_expires_at > $4",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(reason)
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[derive(Debug, FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub client_ip: Option<sqlx::types::ipnetwork::IpNetwork>,
    pub user_agent: Option<String>,
}

/// The user's open sessions, most recently used first.
pub async fn list_open(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<SessionRow>> {
    sqlx::query_as(
        "SELECT id, created_at, last_used_at, client_ip, user_agent FROM sessions
         WHERE user_id = $1 AND revoked_at IS NULL
           AND idle_expires_at > $2 AND absolute_expires_at > $2
         ORDER BY last_used_at DESC, created_at DESC
         LIMIT 100",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(db)
    .await
}
