//! /v1/me/password, /v1/me/email, /v1/me/sessions, DELETE /v1/me: changes
//! to one's own account (an open session is required).
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::lifecycle::{deletion, email_change, password, sessions};
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppPath, Authenticated, Caller};
use crate::http::routes::mfa;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: SecretString,
    new_password: SecretString,
}

pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Caller(ctx): Caller,
    AppJson(body): AppJson<ChangePasswordRequest>,
) -> Result<StatusCode> {
    let (current, new) = (
        body.current_password.expose_secret(),
        body.new_password.expose_secret(),
    );
    password::change(&state, &ctx, (claims.sub, claims.sid), current, new).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    new_email: String,
    password: SecretString,
}

pub async fn change_email(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Caller(ctx): Caller,
    AppJson(body): AppJson<ChangeEmailRequest>,
) -> Result<Response> {
    let password = body.password.expose_secret();
    email_change::request(&state, &ctx, claims.sub, &body.new_email, password).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response())
}

#[derive(Serialize)]
pub struct Session {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_used_at: OffsetDateTime,
    ip: Option<String>,
    user_agent: Option<String>,
    current: bool,
}

pub async fn list_sessions(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<Vec<Session>>> {
    let views = sessions::list(&state, claims.sub, claims.sid).await?;
    Ok(Json(
        views
            .into_iter()
            .map(|v| Session {
                id: v.id,
                created_at: v.created_at,
                last_used_at: v.last_used_at,
                ip: v.ip.map(|ip| ip.to_string()),
                user_agent: v.user_agent,
                current: v.current,
            })
            .collect(),
    ))
}

pub async fn revoke_session(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Caller(ctx): Caller,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode> {
    // A malformed id is as unknown as a well-formed one that is not yours.
    let id = Uuid::parse_str(&id).map_err(|_| Error::NotFound)?;
    sessions::revoke(&state, &ctx, claims.sub, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_other_sessions(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Caller(ctx): Caller,
) -> Result<StatusCode> {
    sessions::revoke_others(&state, &ctx, claims.sub, claims.sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    password: SecretString,
    #[serde(default)]
    code: Option<SecretString>,
    #[serde(default)]
    recovery_code: Option<SecretString>,
}

pub async fn delete_account(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Caller(ctx): Caller,
    AppJson(body): AppJson<DeleteAccountRequest>,
) -> Result<StatusCode> {
    let factor = match (&body.code, &body.recovery_code) {
        (None, None) => None,
        _ => Some(mfa::factor(body.code, body.recovery_code)?),
    };
    let password = body.password.expose_secret();
    deletion::delete_account(&state, &ctx, claims.sub, password, factor.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
