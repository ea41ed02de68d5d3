//! TOTP enrolments, recovery codes and login challenges. Everything that
//! must happen once (a time step, a recovery code, a challenge) is spent by
//! a conditional UPDATE, so concurrent requests and replicas agree.
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(FromRow)]
pub struct TotpRow {
    pub secret_enc: Vec<u8>,
    pub state: String,
}

pub async fn totp(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Option<TotpRow>> {
    sqlx::query_as("SELECT secret_enc, state FROM mfa_totp WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await
}

/// Stores a pending enrolment, replacing a pending one; an active one is
/// left alone (false).
pub async fn put_pending(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    secret_enc: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO mfa_totp (user_id, secret_enc, state, created_at) VALUES ($1, $2, 'pending', $3)
         ON CONFLICT (user_id) DO UPDATE
             SET secret_enc = EXCLUDED.secret_enc, created_at = EXCLUDED.created_at, last_step = NULL
             WHERE mfa_totp.state = 'pending'",
    )
    .bind(user_id)
    .bind(secret_enc)
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Accepts time step `step` for the user unless it, or a later one, was
/// accepted before (RFC 6238 §5.2). `state` is the enrolment state the code
/// is checked against.
pub async fn accept_step(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    state: &str,
    step: i64,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE mfa_totp SET last_step = $3
         WHERE user_id = $1 AND state = $2 AND (last_step IS NULL OR last_step < $3)",
    )
    .bind(user_id)
    .bind(state)
    .bind(step)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Pending → active, and the account's `mfa_enabled` with it.
pub async fn activate(
    db: &mut sqlx::PgConnection,
    user_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE mfa_totp SET state = 'active', activated_at = $2
         WHERE user_id = $1 AND state = 'pending'",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *db)
    .await?;
    set_enabled(&mut *db, user_id, true, now).await?;
    Ok(result.rows_affected() == 1)
}

/// Removes the enrolment (pending or active), the recovery codes and open
/// challenges; the account's `mfa_enabled` goes false.
pub async fn remove(
    db: &mut sqlx::PgConnection,
    user_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *db)
        .await?;
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *db)
        .await?;
    drop_challenges(&mut *db, user_id).await?;
    set_enabled(&mut *db, user_id, false, now).await?;
    Ok(result.rows_affected() == 1)
}

async fn set_enabled(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    enabled: bool,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET mfa_enabled = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(enabled)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Replaces the user's recovery codes with these hashes.
pub async fn replace_recovery_codes(
    db: &mut sqlx::PgConnection,
    user_id: Uuid,
    hashes: &[[u8; 32]],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *db)
        .await?;
    let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    sqlx::query(
        "INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at)
         SELECT $1, h, $3 FROM unnest($2::bytea[]) AS h",
    )
    .bind(user_id)
    .bind(hashes)
    .bind(now)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Spends an unused recovery code; false when there is none with this hash.
pub async fn spend_recovery_code(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    hash: &[u8; 32],
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE mfa_recovery_codes SET used_at = $3
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(hash.as_slice())
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn recovery_codes_remaining(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(db)
    .await
}

pub struct NewChallenge<'a> {
    pub token_hash: &'a [u8; 32],
    pub user_id: Uuid,
    pub client_type: &'a str,
    pub client_id: Option<&'a str>,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

pub async fn insert_challenge(
    db: impl PgExecutor<'_>,
    challenge: &NewChallenge<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mfa_challenges (token_hash, user_id, client_type, created_at, expires_at, client_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(challenge.token_hash.as_slice())
    .bind(challenge.user_id)
    .bind(challenge.client_type)
    .bind(challenge.now)
    .bind(challenge.expires_at)
    .bind(challenge.client_id)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, FromRow)]
pub struct LiveChallenge {
    pub user_id: Uuid,
    pub client_type: String,
    pub client_id: Option<String>,
}

/// Takes one of the challenge's attempts, if it is unused, unexpired, has
/// attempts left and its account is enabled. Taken before the code is checked, so concurrent
/// guesses cannot exceed `max_attempts`.
pub async fn take_attempt(
    db: impl PgExecutor<'_>,
    token_hash: &[u8; 32],
    now: OffsetDateTime,
    max_attempts: i32,
) -> sqlx::Result<Option<LiveChallenge>> {
    sqlx::query_as(
        "UPDATE mfa_challenges c SET failures = c.failures + 1
         FROM users u
         WHERE c.token_hash = $1 AND c.used_at IS NULL AND c.expires_at > $2 AND c.failures < $3
           AND u.id = c.user_id AND u.disabled_at IS NULL
         RETURNING c.user_id, c.client_type, c.client_id",
    )
    .bind(token_hash.as_slice())
    .bind(now)
    .bind(max_attempts)
    .fetch_optional(db)
    .await
}

/// The challenge's owner, while it could still be used (the account
/// enabled).
pub async fn peek_challenge(
    db: impl PgExecutor<'_>,
    token_hash: &[u8; 32],
    now: OffsetDateTime,
    max_attempts: i32,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT c.user_id FROM mfa_challenges c JOIN users u ON u.id = c.user_id
         WHERE c.token_hash = $1 AND c.used_at IS NULL AND c.expires_at > $2 AND c.failures < $3
           AND u.disabled_at IS NULL",
    )
    .bind(token_hash.as_slice())
    .bind(now)
    .bind(max_attempts)
    .fetch_optional(db)
    .await
}

/// Marks the challenge used; false if another request got there first.
pub async fn use_challenge(
    db: impl PgExecutor<'_>,
    token_hash: &[u8; 32],
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE mfa_challenges SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
    )
    .bind(token_hash.as_slice())
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Drops the user's open challenges: logins whose password step no longer
/// counts.
pub async fn drop_challenges(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Drops challenges that can no longer be used.
pub async fn purge_challenges(db: impl PgExecutor<'_>, now: OffsetDateTime) -> sqlx::Result<u64> {
    let result =
        sqlx::query("DELETE FROM mfa_challenges WHERE expires_at < $1 OR used_at IS NOT NULL")
            .bind(now)
            .execute(db)
            .await?;
    Ok(result.rows_affected())
}
