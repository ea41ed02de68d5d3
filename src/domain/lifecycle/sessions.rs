//! A user's view of their own sessions: list them, end one, end all others.
//! Another user's session id, or an unknown one, is "not found" (never
//! "forbidden"), so ids of other accounts cannot be probed.
use serde_json::json;
use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::sessions as store;

pub struct SessionView {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub current: bool,
}

pub async fn list(services: &Services, user_id: Uuid, current: Uuid) -> Result<Vec<SessionView>> {
    let rows = store::list_open(&services.db, user_id, services.clock.now()).await?;
    Ok(rows
        .into_iter()
        .map(|row| SessionView {
            current: row.id == current,
            id: row.id,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            ip: row.client_ip.map(|ip| ip.ip()),
            user_agent: row.user_agent,
        })
        .collect())
}

pub async fn revoke(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<()> {
    let now = services.clock.now();
    let mut tx = services.db.begin().await?;
    if !store::revoke_owned(&mut *tx, user_id, session_id, "revoked_by_user", now).await? {
        return Err(Error::NotFound);
    }
    let details = json!({ "session_id": session_id });
    let event = Event::by_user(Kind::SessionRevoked, user_id, "success", details);
    services.audit.append(&mut tx, ctx, event).await?;
    services
        .session_cache
        .commit(&services.db, tx, Some(user_id))
        .await?;
    Ok(())
}

pub async fn revoke_others(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    current: Uuid,
) -> Result<()> {
    let now = services.clock.now();
    let mut tx = services.db.begin().await?;
    let revoked =
        store::revoke_all(&mut *tx, user_id, Some(current), "revoked_by_user", now).await?;
    let details = json!({ "sessions_revoked": revoked });
    let event = Event::by_user(Kind::SessionRevoked, user_id, "success", details);
    services.audit.append(&mut tx, ctx, event).await?;
    services
        .session_cache
        .commit(&services.db, tx, Some(user_id))
        .await?;
    Ok(())
}
