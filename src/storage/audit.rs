//! The audit table: appends, the chain head, reads for verification and for
//! a user's own activity. Nothing here updates or deletes (triggers forbid it).
use sqlx::types::ipnetwork::IpNetwork;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub occurred_at: OffsetDateTime,
    pub event_type: String,
    pub actor_user_id: Option<Uuid>,
    pub subject_user_id: Option<Uuid>,
    pub client_ip: Option<IpNetwork>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
    pub details: serde_json::Value,
    /// Client IP and user agent of an event about an account, sealed under
    /// that account's data key (then `client_ip` and `user_agent` are null).
    pub personal_enc: Option<Vec<u8>>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl StoredEvent {
    /// The accounts whose key may have sealed the personal fields, in the
    /// order to try them: the actor (whose request it was), then the
    /// subject (which owned them in events written before 2026-12-02).
    pub fn owners(&self) -> impl Iterator<Item = Uuid> + '_ {
        let subject = self
            .subject_user_id
            .filter(|s| Some(*s) != self.actor_user_id);
        self.actor_user_id.into_iter().chain(subject)
    }
}

const COLUMNS: &str = "seq, occurred_at, event_type, actor_user_id, subject_user_id, client_ip, \
                       user_agent, request_id, outcome, details, personal_enc, prev_hash, hash";

/// What an append needs once it holds the chain.
#[derive(FromRow)]
pub struct Head {
    /// The last event's sequence number and hash; null when empty.
    pub head_seq: Option<i64>,
    pub head_hash: Option<Vec<u8>>,
    /// The database's current time, truncated to what timestamptz stores.
    pub occurred_at: OffsetDateTime,
    /// `owner`'s sealed data key, if it has one.
    pub owner_key: Option<Vec<u8>>,
}

/// Takes the append lock until the transaction ends (as every append does).
pub async fn lock_chain(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('authd.audit_events'))")
        .execute(db)
        .await?;
    Ok(())
}

/// Serialises appends until the end of the caller's transaction and reads
/// the head that lock protects, in one round trip (the migration's
/// `authd_audit_lock_head` says how).
pub async fn lock_head(db: impl PgExecutor<'_>, owner: Option<Uuid>) -> sqlx::Result<Head> {
    sqlx::query_as("SELECT * FROM authd_audit_lock_head($1)")
        .bind(owner)
        .fetch_one(db)
        .await
}

pub async fn insert(db: impl PgExecutor<'_>, e: &StoredEvent) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO audit_events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(e.seq)
    .bind(e.occurred_at)
    .bind(&e.event_type)
    .bind(e.actor_user_id)
    .bind(e.subject_user_id)
    .bind(e.client_ip)
    .bind(&e.user_agent)
    .bind(&e.request_id)
    .bind(&e.outcome)
    .bind(&e.details)
    .bind(&e.personal_enc)
    .bind(&e.prev_hash)
    .bind(&e.hash)
    .execute(db)
    .await?;
    Ok(())
}

/// Up to `limit` events with `seq > after`, in order (for chain walks).
pub async fn page(
    db: impl PgExecutor<'_>,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<StoredEvent>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A user's own events (as actor or subject), newest first, before `before`,
/// but not those of the `hidden_from_subject` kinds that others did to them.
pub async fn for_user(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    before: i64,
    limit: i64,
    hidden_from_subject: &[&str],
) -> sqlx::Result<Vec<StoredEvent>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit_events
         WHERE (subject_user_id = $1 OR actor_user_id = $1) AND seq < $2
           AND NOT (event_type = ANY($4) AND actor_user_id IS DISTINCT FROM $1)
         ORDER BY seq DESC LIMIT $3"
    ))
    .bind(user_id)
    .bind(before)
    .bind(limit)
    .bind(hidden_from_subject)
    .fetch_all(db)
    .await
}
