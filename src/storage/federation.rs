//! Federated identities and started federated sign-ins.
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

pub struct NewState<'a> {
    pub state_hash: &'a [u8; 32],
    pub provider: &'a str,
    pub return_to: &'a str,
    pub client_id: Option<&'a str>,
    pub now: OffsetDateTime,
}

/// Stores a started sign-in.
pub async fn insert_state(db: impl PgExecutor<'_>, state: &NewState<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO federation_states (state_hash, provider, return_to, client_id, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(state.state_hash.as_slice())
    .bind(state.provider)
    .bind(state.return_to)
    .bind(state.client_id)
    .bind(state.now)
    .execute(db)
    .await?;
    Ok(())
}

/// Drops started sign-ins older than `oldest` (expired: a callback refuses
/// them anyway), so the table holds only the last few minutes of starts.
pub async fn purge_states(db: impl PgExecutor<'_>, oldest: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM federation_states WHERE created_at < $1")
        .bind(oldest)
        .execute(db)
        .await?;
    Ok(())
}

#[derive(Debug, FromRow)]
pub struct StartedSignIn {
    pub return_to: String,
    pub client_id: Option<String>,
    pub created_at: OffsetDateTime,
}

/// Takes the started sign-in of `provider` with this state hash: at most
/// one caller ever gets it (single use).
pub async fn take_state(
    db: impl PgExecutor<'_>,
    state_hash: &[u8; 32],
    provider: &str,
) -> sqlx::Result<Option<StartedSignIn>> {
    sqlx::query_as(
        "DELETE FROM federation_states WHERE state_hash = $1 AND provider = $2
         RETURNING return_to, client_id, created_at",
    )
    .bind(state_hash.as_slice())
    .bind(provider)
    .fetch_optional(db)
    .await
}

/// The account behind (provider, subject), marking the sign-in.
pub async fn find_identity(
    db: impl PgExecutor<'_>,
    provider: &str,
    subject: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "UPDATE federated_identities SET last_login_at = $3
         WHERE provider = $1 AND subject = $2
         RETURNING user_id",
    )
    .bind(provider)
    .bind(subject)
    .bind(now)
    .fetch_optional(db)
    .await
}

/// Links (provider, subject) to the account; false when the account is
/// already linked to another subject of this provider.
pub async fn link(
    db: impl PgExecutor<'_>,
    provider: &str,
    subject: &str,
    user_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO federated_identities (provider, subject, user_id, created_at, last_login_at)
         VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(provider)
    .bind(subject)
    .bind(user_id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[derive(Debug, FromRow)]
pub struct LinkCandidate {
    pub id: Uuid,
    pub exact: bool,
    pub email_verified: bool,
}

/// Accounts whose address is `email_key` or reads like it (same skeleton):
/// who an address could be linked to.
pub async fn link_candidates(
    db: impl PgExecutor<'_>,
    email_key: &str,
    email_skeleton: &str,
) -> sqlx::Result<Vec<LinkCandidate>> {
    sqlx::query_as(
        "SELECT id, email_key = $1 AS exact, email_verified FROM users
         WHERE email_key = $1 OR email_skeleton = $2
         LIMIT 3",
    )
    .bind(email_key)
    .bind(email_skeleton)
    .fetch_all(db)
    .await
}

#[derive(Debug, FromRow)]
pub struct FederatedUser {
    pub disabled: bool,
    pub roles: Vec<String>,
}

pub async fn user_for_sign_in(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Option<FederatedUser>> {
    sqlx::query_as(
        "SELECT disabled_at IS NOT NULL AS disabled,
                ARRAY(SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role) AS roles
         FROM users u WHERE id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Replaces the account's roles with `roles` (the provider decides them).
pub async fn set_roles(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    roles: &[String],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role <> ALL($2)")
        .bind(user_id)
        .bind(roles)
        .execute(&mut *conn)
        .await?;
    super::users::grant_roles(conn, user_id, roles, now).await
}
