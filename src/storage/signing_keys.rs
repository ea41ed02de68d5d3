//! Signing keys, RS256 or ES256 (private halves sealed by the caller before
//! they get here; the public half in the columns of its algorithm).
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

#[derive(Debug, FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    pub public_n: Option<Vec<u8>>,
    pub public_e: Option<Vec<u8>>,
    pub public_x: Option<Vec<u8>>,
    pub public_y: Option<Vec<u8>>,
    pub private_key_enc: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub activate_after: OffsetDateTime,
    pub retire_after: Option<OffsetDateTime>,
}

const COLUMNS: &str = "kid, algorithm, public_n, public_e, public_x, public_y, private_key_enc, \
     created_at, activate_after, retire_after";

/// Keys still valid for verification at `now`, newest activation first.
pub async fn published(
    db: impl PgExecutor<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<StoredKey>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM signing_keys WHERE retire_after IS NULL OR retire_after > $1
         ORDER BY activate_after DESC"
    ))
    .bind(now)
    .fetch_all(db)
    .await
}

pub async fn all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<StoredKey>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM signing_keys ORDER BY created_at DESC"
    ))
    .fetch_all(db)
    .await
}

/// Serialises key creation across replicas for the rest of the transaction.
pub async fn lock(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('authd.signing_keys'))")
        .execute(db)
        .await?;
    Ok(())
}

pub async fn exists(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_keys)")
        .fetch_one(db)
        .await
}

/// Schedules every key that would retire later (or never) to retire at
/// `retire_after`: the key being replaced, and after an immediate rotation
/// (a key feared compromised) also the one still signing while an earlier
/// rotation waited for its activation, whose own retirement lay further out.
pub async fn retire_by(db: impl PgExecutor<'_>, retire_after: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE signing_keys SET retire_after = $1
         WHERE retire_after IS NULL OR retire_after > $1",
    )
    .bind(retire_after)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn insert(db: impl PgExecutor<'_>, key: &StoredKey) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO signing_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(&key.public_n)
    .bind(&key.public_e)
    .bind(&key.public_x)
    .bind(&key.public_y)
    .bind(&key.private_key_enc)
    .bind(key.created_at)
    .bind(key.activate_after)
    .bind(key.retire_after)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn replace_sealed(
    db: impl PgExecutor<'_>,
    kid: &str,
    private_key_enc: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("UPDATE signing_keys SET private_key_enc = $2 WHERE kid = $1")
        .bind(kid)
        .bind(private_key_enc)
        .execute(db)
        .await?;
    Ok(())
}
