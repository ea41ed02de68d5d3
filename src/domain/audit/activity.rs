//! A user's own security events, newest first, with their personal fields
//! opened for their owner (while the account's key exists).
use serde_json::Value;
use sqlx::PgPool;
use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuditLog, Kind};
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

/// Staff reading an account: its owner is not told (that could tip off an
/// investigation). What staff change on it does show, as below.
const STAFF_READS: [Kind; 2] = [Kind::AdminUserViewed, Kind::AdminAuditRead];

/// Changes staff make to an account, through the API or at the command
/// line (then with no actor): their `reason` is the staff's note.
const STAFF_CHANGES: [Kind; 6] = [
    Kind::AccountDisabled,
    Kind::AccountEnabled,
    Kind::RolesChanged,
    Kind::SessionsRevokedByAdmin,
    Kind::MfaResetByAdmin,
    Kind::VerificationResentByAdmin,
];

/// The caller's events. Of one that someone else did to the account (an
/// admin's change), the IP and user agent are that person's, and the
/// `reason` their note: neither is shown (nor the note of a change made at
/// the command line).
pub async fn activity(
    log: &AuditLog,
    db: &PgPool,
    user_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<ActivityPage> {
    let hidden = STAFF_READS.map(Kind::as_str);
    let before = before.unwrap_or(i64::MAX);
    let mut events = store::for_user(db, user_id, before, limit + 1, &hidden).await?;
    let next_before = crate::domain::paging::trim(&mut events, limit).map(|e| e.seq);
    let key = log.user_keys().get(db, user_id).await?;
    let events = events
        .into_iter()
        .map(|mut e| {
            let by_other = e.actor_user_id.is_some_and(|actor| actor != user_id);
            let (client_ip, user_agent) = if by_other {
                (None, None)
            } else {
                AuditLog::personal(&e, |owner| key.as_ref().filter(|_| owner == user_id))
            };
            let staff_change = STAFF_CHANGES.iter().any(|k| k.as_str() == e.event_type);
            if let (true, Some(details)) = (by_other || staff_change, e.details.as_object_mut()) {
                details.remove("reason");
            }
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
