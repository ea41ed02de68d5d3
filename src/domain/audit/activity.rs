//! A user's own security events, newest first, with their personal fields
//! opened for their owner (while the account's key exists).
use serde_json::Value;
use sqlx::PgPool;
use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

use super::AuditLog;
use crate::error::Result;
use crate::storage::audit as store;

/// One event as its owner sees it.
pub struct ActivityEvent {
    pub seq: i64,
    pub occurred_at: OffsetDateTime,
    pub event_type: String,
    pub outcome: String,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub details: Value,
}

/// One page of a user's own activity, newest first.
pub struct ActivityPage {
    pub events: Vec<ActivityEvent>,
    /// Pass back to get older events; `None` on the last page.
    pub next_before: Option<i64>,
}

pub async fn activity(
    log: &AuditLog,
    db: &PgPool,
    user_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<ActivityPage> {
    let mut events = store::for_user(db, user_id, before.unwrap_or(i64::MAX), limit + 1).await?;
    let next_before = crate::domain::paging::trim(&mut events, limit).map(|e| e.seq);
    let key = log.user_keys().get(db, user_id).await?;
    let events = events
        .into_iter()
        .map(|e| {
            let owned = e.owner() == Some(user_id);
            let (client_ip, user_agent) = AuditLog::personal(&e, key.as_ref().filter(|_| owned));
            ActivityEvent {
                seq: e.seq,
                occurred_at: e.occurred_at,
                event_type: e.event_type,
                outcome: e.outcome,
                client_ip,
                user_agent,
                details: e.details,
            }
        })
        .collect();
    Ok(ActivityPage {
        events,
        next_before,
    })
}
