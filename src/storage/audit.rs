//! The audit table: appends, the chain head, reads for verification and for
//! a user's own activity. Nothing here updates or deletes (triggers forbid it).
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::types::ipnetwork::IpNetwork;
use sqlx::{FromRow, PgExecutor, Postgres};
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
    /// The account whose personal fields these are: the subject, else the actor.
    pub fn owner(&self) -> Option<Uuid> {
        self.subject_user_id.or(self.actor_user_id)
    }
}

const COLUMNS: &str = "seq, occurred_at, event_type, actor_user_id, subject_user_id, client_ip, \
                       user_agent, request_id, outcome, details, personal_enc, prev_hash, hash";

/// The chain's head as an append builds on it.
#[derive(FromRow)]
pub struct Head {
    /// The last event's sequence number and hash; null when empty.
    pub head_seq: Option<i64>,
    pub head_hash: Option<Vec<u8>>,
    /// The database's current time, truncated to what timestamptz stores.
    pub occurred_at: OffsetDateTime,
    /// `key_owner`'s sealed data key, if it has one.
    pub owner_key: Option<Vec<u8>>,
    /// The account the head was read for.
    pub key_owner: Option<Uuid>,
}

/// Serialises appends until the end of the caller's transaction and reads
/// the head that lock protects, in one round trip (the migration's
/// `authd_audit_lock_head` says how).
pub async fn lock_head(db: impl PgExecutor<'_>, owner: Option<Uuid>) -> sqlx::Result<Head> {
    sqlx::query_as("SELECT head.*, $1::uuid AS key_owner FROM authd_audit_lock_head($1) AS head")
        .bind(owner)
        .fetch_one(db)
        .await
}

/// The head without the lock, for an event that its action's own statement
/// writes (`chained_insert`), which checks under the lock that the head is
/// still this one.
pub async fn read_head(db: impl PgExecutor<'_>, owner: Option<Uuid>) -> sqlx::Result<Head> {
    sqlx::query_as("SELECT head.*, $1::uuid AS key_owner FROM authd_audit_head($1) AS head")
        .bind(owner)
        .fetch_one(db)
        .await
}

/// Appends under the lock the caller's transaction holds (`lock_head`).
pub async fn insert(db: impl PgExecutor<'_>, e: &StoredEvent) -> sqlx::Result<()> {
    let sql = format!(
        "INSERT INTO audit_events ({COLUMNS}) VALUES ({}) RETURNING seq",
        params(1)
    );
    bind_event(sqlx::query_as::<_, (i64,)>(&sql), e)
        .fetch_one(db)
        .await?;
    Ok(())
}

/// Common table expressions that append an event inside another statement,
/// after the rows that statement writes (which `after`, a query, must read,
/// so that the chain is always locked after them, as in every transaction).
/// Fails with `serialization_failure` (`is_chain_moved`) when the event's
/// predecessor is no longer the last event. The event takes the parameters
/// from `$first`, bound by `bind_event`, in that order, then `$first + 13`
/// its predecessor's sequence number (`bind_predecessor`).
pub fn chained_insert(first: usize, after: &str) -> String {
    format!(
        "chain AS (
             SELECT authd_audit_lock_at(${expected}) AS predecessor FROM ({after}) AS written
         ), chained AS (
             INSERT INTO audit_events ({COLUMNS}) SELECT {values} FROM chain RETURNING seq
         )",
        expected = first + EVENT_PARAMS,
        values = params(first),
    )
}

/// Binds `e` for `chained_insert` and its predecessor's sequence number.
pub fn bind_chained<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    e: &'q StoredEvent,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    let predecessor = Some(e.seq - 1).filter(|&seq| seq > 0);
    bind_event(query, e).bind(predecessor)
}

/// Whether `error` is `chained_insert` finding that another append came first.
pub fn is_chain_moved(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40001")
}

const EVENT_PARAMS: usize = 13;

fn params(first: usize) -> String {
    (first..first + EVENT_PARAMS)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn bind_event<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    e: &'q StoredEvent,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    query
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

/// A user's own events (as actor or subject), newest first, before `before`.
pub async fn for_user(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    before: i64,
    limit: i64,
) -> sqlx::Result<Vec<StoredEvent>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit_events
         WHERE (subject_user_id = $1 OR actor_user_id = $1) AND seq < $2
         ORDER BY seq DESC LIMIT $3"
    ))
    .bind(user_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}
