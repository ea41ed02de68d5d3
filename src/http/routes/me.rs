//! /v1/me: the caller's own account.
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::accounts;
use crate::error::Result;
use crate::http::extract::Bearer;
use crate::state::AppState;

#[derive(Serialize)]
pub struct Me<'a> {
    user_id: Uuid,
    email: &'a str,
    email_verified: bool,
    roles: &'a [String],
    mfa_enabled: bool,
    /// Unused recovery codes (0 without MFA).
    recovery_codes_remaining: i64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

pub async fn me(State(state): State<AppState>, Bearer(claims): Bearer) -> Result<Response> {
    let profile = accounts::profile(&state, claims.sub, claims.sid).await?;
    Ok(Json(Me {
        user_id: profile.id,
        email: &profile.email,
        email_verified: profile.email_verified,
        roles: &profile.roles,
        mfa_enabled: profile.mfa_enabled,
        recovery_codes_remaining: profile.recovery_codes_remaining,
        created_at: profile.created_at,
    })
    .into_response())
}
