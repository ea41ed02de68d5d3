//! /v1/auth/verify-email, /v1/auth/password/*: what a user does from a
//! mailed link, or without being logged in. Requests that name an address
//! answer 202 whatever the address.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::domain::lifecycle::{password, verification};
use crate::error::Result;
use crate::http::extract::{AppJson, Caller};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    token: SecretString,
}

pub async fn verify_email(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    AppJson(body): AppJson<TokenRequest>,
) -> Result<StatusCode> {
    verification::verify(&state, &ctx, body.token.expose_secret()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    email: String,
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response()
}

pub async fn resend_verification(
    State(state): State<AppState>,
    AppJson(body): AppJson<EmailRequest>,
) -> Result<Response> {
    verification::resend(&state, &body.email).await?;
    Ok(accepted())
}

pub async fn forgot_password(
    State(state): State<AppState>,
    AppJson(body): AppJson<EmailRequest>,
) -> Result<Response> {
    password::forgot(&state, &body.email).await?;
    Ok(accepted())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    token: SecretString,
    new_password: SecretString,
}

pub async fn reset_password(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    AppJson(body): AppJson<ResetRequest>,
) -> Result<StatusCode> {
    let token = body.token.expose_secret();
    password::reset(&state, &ctx, token, body.new_password.expose_secret()).await?;
    Ok(StatusCode::NO_CONTENT)
}
