//! Accounts and their roles.
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub email_key: &'a str,
    pub password_hash: &'a str,
    pub email_verified: bool,
    pub now: OffsetDateTime,
}

/// Inserts the account unless the address is taken; true when inserted.
pub async fn insert_if_absent(db: impl PgExecutor<'_>, user: &NewUser<'_>) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO users (id, email, email_key, password_hash, email_verified, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT ON CONSTRAINT users_email_key_unique DO NOTHING",
    )
    .bind(user.id)
    .bind(user.email)
    .bind(user.email_key)
    .bind(user.password_hash)
    .bind(user.email_verified)
    .bind(user.now)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn grant_roles(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    roles: &[String],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO user_roles (user_id, role, granted_at)
         SELECT $1, r, $3 FROM unnest($2::text[]) AS r
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(roles)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn known_roles(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT name FROM roles ORDER BY name")
        .fetch_all(db)
        .await
}

pub async fn id_by_email_key(
    db: impl PgExecutor<'_>,
    email_key: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM users WHERE email_key = $1")
        .bind(email_key)
        .fetch_optional(db)
        .await
}

#[derive(Debug, FromRow)]
pub struct LoginUser {
    pub id: Uuid,
    pub password_hash: String,
    pub email_verified: bool,
    pub disabled: bool,
}

pub async fn find_for_login(
    db: impl PgExecutor<'_>,
    email_key: &str,
) -> sqlx::Result<Option<LoginUser>> {
    sqlx::query_as(
        "SELECT id, password_hash, email_verified, disabled_at IS NOT NULL AS disabled
         FROM users WHERE email_key = $1",
    )
    .bind(email_key)
    .fetch_optional(db)
    .await
}

pub async fn update_password_hash(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    password_hash: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

#[derive(Debug, FromRow)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub mfa_enabled: bool,
    pub created_at: OffsetDateTime,
    pub roles: Vec<String>,
}

/// The account behind an access token, only while its session is live and
/// the account enabled: a logout takes effect on /v1/me at once.
pub async fn profile_for_session(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    session_id: Uuid,
) -> sqlx::Result<Option<Profile>> {
    sqlx::query_as(
        "SELECT u.id, u.email, u.email_verified, u.mfa_enabled, u.created_at,
                ARRAY(SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role) AS roles
         FROM users u JOIN sessions s ON s.user_id = u.id
         WHERE u.id = $1 AND s.id = $2 AND s.revoked_at IS NULL AND u.disabled_at IS NULL",
    )
    .bind(user_id)
    .bind(session_id)
    .fetch_optional(db)
    .await
}
