//! Accounts and their roles.
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub locale: &'a str,
    pub email_key: &'a str,
    pub email_skeleton: &'a str,
    /// `None` for a federated account, which signs in only through its provider.
    pub password_hash: Option<&'a str>,
    pub email_verified: bool,
    pub now: OffsetDateTime,
}

/// Inserts the account unless the address, or a look-alike of it (same
/// skeleton), is taken; true when inserted.
pub async fn insert_if_absent(db: impl PgExecutor<'_>, user: &NewUser<'_>) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO users (id, email, email_key, email_skeleton, password_hash, email_verified,
                            created_at, updated_at, locale)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
         ON CONFLICT DO NOTHING",
    )
    .bind(user.id)
    .bind(user.email)
    .bind(user.email_key)
    .bind(user.email_skeleton)
    .bind(user.password_hash)
    .bind(user.email_verified)
    .bind(user.now)
    .bind(user.locale)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The account that holds `email_key`, else one whose address has the same
/// skeleton; the flag says whether it was the exact address.
pub async fn find_taken(
    db: impl PgExecutor<'_>,
    email_key: &str,
    email_skeleton: &str,
) -> sqlx::Result<Option<(Uuid, bool)>> {
    sqlx::query_as(
        "SELECT id, email_key = $1 AS exact FROM users
         WHERE email_key = $1 OR email_skeleton = $2
         ORDER BY email_key = $1 DESC LIMIT 1",
    )
    .bind(email_key)
    .bind(email_skeleton)
    .fetch_optional(db)
    .await
}

#[derive(Debug, FromRow)]
pub struct MissingSkeleton {
    pub id: Uuid,
    pub email: String,
    pub email_key: String,
}

/// Accounts without a skeleton (older than the rule, or look-alikes).
pub async fn missing_skeletons(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<MissingSkeleton>> {
    sqlx::query_as(
        "SELECT id, email, email_key FROM users WHERE email_skeleton IS NULL ORDER BY created_at, id",
    )
    .fetch_all(db)
    .await
}

/// Sets the canonical key and the skeleton, unless another account holds
/// either; true when set.
pub async fn set_skeleton(
    db: impl PgExecutor<'_>,
    id: Uuid,
    email_key: &str,
    email_skeleton: &str,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE users SET email_key = $2, email_skeleton = $3
         WHERE id = $1
           AND NOT EXISTS (SELECT 1 FROM users o
                           WHERE o.id <> $1 AND (o.email_key = $2 OR o.email_skeleton = $3))",
    )
    .bind(id)
    .bind(email_key)
    .bind(email_skeleton)
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

/// What mailing an account needs.
#[derive(FromRow)]
pub struct MailAccount {
    pub id: Uuid,
    pub email: String,
    pub locale: String,
    pub email_verified: bool,
    pub disabled: bool,
    /// False for a federated account (no password to reset).
    pub has_password: bool,
}

const MAIL_COLUMNS: &str = "id, email, locale, email_verified, disabled_at IS NOT NULL AS disabled,
    password_hash IS NOT NULL AS has_password";

pub async fn find_for_mail(
    db: impl PgExecutor<'_>,
    email_key: &str,
) -> sqlx::Result<Option<MailAccount>> {
    sqlx::query_as(&format!(
        "SELECT {MAIL_COLUMNS} FROM users WHERE email_key = $1"
    ))
    .bind(email_key)
    .fetch_optional(db)
    .await
}

pub async fn mail_account(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<MailAccount>> {
    sqlx::query_as(&format!("SELECT {MAIL_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn set_verified(
    db: impl PgExecutor<'_>,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET email_verified = true, updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Moves the account to a new (verified) address; false when another
/// account holds it, or a look-alike of it, by now.
pub async fn change_email(
    db: impl PgExecutor<'_>,
    id: Uuid,
    email: &str,
    email_key: &str,
    email_skeleton: &str,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE users SET email = $2, email_key = $3, email_skeleton = $4, email_verified = true,
                          updated_at = $5
         WHERE id = $1
           AND NOT EXISTS (SELECT 1 FROM users o
                           WHERE o.id <> $1 AND (o.email_key = $3 OR o.email_skeleton = $4))",
    )
    .bind(id)
    .bind(email)
    .bind(email_key)
    .bind(email_skeleton)
    .bind(now)
    .execute(db)
    .await;
    match result {
        Ok(done) => Ok(done.rows_affected() == 1),
        // A signup that took the address after this statement's snapshot
        // (so NOT EXISTS could not see it) and committed first.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes the account; its sessions, tokens, keys, MFA and queued mail go
/// with it (foreign keys cascade).
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// The address as stored (for display, e.g. in an otpauth label).
pub async fn email_of(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// What login needs of an account. `Debug` hides the password hash.
#[derive(FromRow)]
pub struct LoginUser {
    pub id: Uuid,
    pub email_key: String,
    /// `None`: a federated account, which has no password.
    pub password_hash: Option<String>,
    pub email_verified: bool,
    pub disabled: bool,
    pub mfa_enabled: bool,
}

impl std::fmt::Debug for LoginUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginUser")
            .field("id", &self.id)
            .field("email_key", &"[REDACTED]")
            .field("password_hash", &"[REDACTED]")
            .field("email_verified", &self.email_verified)
            .field("disabled", &self.disabled)
            .field("mfa_enabled", &self.mfa_enabled)
            .finish()
    }
}

/// What a password check reads of an account (`LoginUser`).
pub const LOGIN_COLUMNS: &str = "id, email_key, password_hash, email_verified,
    disabled_at IS NOT NULL AS disabled, mfa_enabled";

pub async fn find_for_login_by_id(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<LoginUser>> {
    sqlx::query_as(&format!("SELECT {LOGIN_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
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

/// Removes the account's password: it signs in through its provider only.
pub async fn remove_password(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = NULL, updated_at = $2 WHERE id = $1")
        .bind(user_id)
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
    pub recovery_codes_remaining: i64,
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
                (SELECT count(*) FROM mfa_recovery_codes c
                 WHERE c.user_id = u.id AND c.used_at IS NULL) AS recovery_codes_remaining,
                ARRAY(SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role) AS roles
         FROM users u JOIN sessions s ON s.user_id = u.id
         WHERE u.id = $1 AND s.id = $2 AND s.revoked_at IS NULL AND u.disabled_at IS NULL",
    )
    .bind(user_id)
    .bind(session_id)
    .fetch_optional(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_user_debug_hides_the_hash() {
        let user = LoginUser {
            id: Uuid::nil(),
            email_key: "someone@example.com".into(),
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into()),
            email_verified: true,
            disabled: false,
            mfa_enabled: false,
        };
        assert!(!format!("{user:?}").contains("someone"));
        let shown = format!("{user:?}");
        assert!(
            !shown.contains("argon2") && !shown.contains("aGFzaGhhc2g"),
            "{shown}"
        );
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}
