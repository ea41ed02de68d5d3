//! The audit log for auditors and admins: events newest first, filtered by
//! kind and account, with the personal fields of accounts that still exist
//! opened (those of deleted accounts stay unreadable: their keys are gone).
//! Reading it is itself an audited event.
use serde_json::{Value, json};
use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::admin::authorize::AdminCaller;
use crate::domain::audit::{AuditLog, Context, Event, Kind};
use crate::domain::services::Services;
use crate::error::Result;
use crate::storage::admin as store;
use crate::storage::audit::StoredEvent;

pub struct Entry {
    pub seq: i64,
    pub occurred_at: OffsetDateTime,
    pub kind: String,
    pub actor: Option<Uuid>,
    pub subject: Option<Uuid>,
    pub outcome: String,
    pub reason: Option<String>,
    pub details: Value,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

pub struct Filter<'a> {
    pub before: Option<i64>,
    pub kind: Option<&'a str>,
    pub user_id: Option<Uuid>,
    pub limit: i64,
}

/// A page of events and the cursor of the next one.
pub async fn list(
    services: &Services,
    ctx: &Context,
    caller: AdminCaller,
    filter: Filter<'_>,
) -> Result<(Vec<Entry>, Option<i64>)> {
    let before = filter.before.unwrap_or(i64::MAX);
    let limit = filter.limit;
    let mut events =
        store::audit_page(&services.db, before, filter.kind, filter.user_id, limit + 1).await?;
    let next = crate::domain::paging::trim(&mut events, limit).map(|e| e.seq);
    let mut owners: Vec<Uuid> = events.iter().flat_map(StoredEvent::owners).collect();
    owners.sort_unstable();
    owners.dedup();
    let keys = services
        .audit
        .user_keys()
        .get_many(&services.db, &owners)
        .await?;
    let mut entries = Vec::with_capacity(events.len());
    for e in events {
        let (client_ip, user_agent) = AuditLog::personal(&e, |owner| keys.get(&owner));
        entries.push(Entry {
            seq: e.seq,
            occurred_at: e.occurred_at,
            reason: e
                .details
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
            kind: e.event_type,
            actor: e.actor_user_id,
            subject: e.subject_user_id,
            outcome: e.outcome,
            details: e.details,
            client_ip,
            user_agent,
        });
    }
    let details =
        json!({ "kind": filter.kind, "user_id": filter.user_id, "returned": entries.len() });
    let read = Event {
        kind: Kind::AdminAuditRead,
        actor: caller.user_id,
        subject: filter.user_id,
        outcome: "success",
        details,
    };
    services.audit.record(&services.db, ctx, read).await?;
    Ok((entries, next))
}
