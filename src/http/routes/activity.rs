//! /v1/me/activity: the caller's own recent security events, newest first,
//! paginated with an opaque cursor. Only events where the caller is the
//! actor or the subject are visible.
use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::audit;
use crate::error::{Error, Result};
use crate::http::extract::{AppQuery, Authenticated};
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
pub struct ActivityEvent {
    id: i64,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    event_type: String,
    outcome: String,
    client_ip: Option<String>,
    user_agent: Option<String>,
    details: Value,
}

#[derive(Serialize)]
pub struct ActivityPage {
    events: Vec<ActivityEvent>,
    next_cursor: Option<String>,
}

pub async fn activity(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    AppQuery(query): AppQuery<ActivityQuery>,
) -> Result<Json<ActivityPage>> {
    let limit = limit(query.limit)?;
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = audit::activity(&state.audit, &state.db, claims.sub, before, limit).await?;
    Ok(Json(ActivityPage {
        events: page.events.into_iter().map(shape).collect(),
        next_cursor: page.next_before.map(encode_cursor),
    }))
}

fn shape(e: audit::ActivityEvent) -> ActivityEvent {
    ActivityEvent {
        id: e.seq,
        occurred_at: e.occurred_at,
        event_type: e.event_type,
        outcome: e.outcome,
        client_ip: e.client_ip.map(|ip| ip.to_string()),
        user_agent: e.user_agent,
        details: e.details,
    }
}

/// A page size: `limit` of the query, 1 to 100, 20 when absent.
pub(crate) fn limit(requested: Option<i64>) -> Result<i64> {
    let limit = requested.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::InvalidRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )))
    }
}

pub(crate) fn encode_cursor(before: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("before:{before}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<i64> {
    let invalid = || Error::InvalidRequest("invalid cursor".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix("before:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(invalid)
}
