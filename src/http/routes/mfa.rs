//! /v1/me/mfa/*: TOTP setup, activation and removal, and recovery codes,
//! for the caller's own account (an open session is required).
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::mfa::enrolment;
use crate::domain::mfa::factor::Factor;
use crate::domain::mfa::recovery::RecoveryCode;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, Authenticated, Caller};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    password: SecretString,
}

#[derive(Serialize)]
pub struct SetupResponse {
    secret: String,
    otpauth_uri: String,
    qr_png: String,
}

pub async fn setup(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Caller(ctx): Caller,
    AppJson(body): AppJson<SetupRequest>,
) -> Result<Json<SetupResponse>> {
    let enrolment =
        enrolment::setup(&state, &ctx, claims.sub, body.password.expose_secret()).await?;
    Ok(Json(SetupResponse {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
        qr_png: enrolment.qr_png,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    code: SecretString,
}

#[derive(Serialize)]
pub struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

impl From<Vec<RecoveryCode>> for RecoveryCodes {
    fn from(codes: Vec<RecoveryCode>) -> Self {
        Self {
            recovery_codes: codes.iter().map(|c| c.expose().to_owned()).collect(),
        }
    }
}

pub async fn activate(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Caller(ctx): Caller,
    AppJson(body): AppJson<CodeRequest>,
) -> Result<Json<RecoveryCodes>> {
    let codes = enrolment::activate(&state, &ctx, claims.sub, body.code.expose_secret()).await?;
    Ok(Json(codes.into()))
}

pub async fn regenerate(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Caller(ctx): Caller,
    AppJson(body): AppJson<CodeRequest>,
) -> Result<Json<RecoveryCodes>> {
    let codes = enrolment::regenerate(&state, &ctx, claims.sub, body.code.expose_secret()).await?;
    Ok(Json(codes.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    password: SecretString,
    #[serde(default)]
    code: Option<SecretString>,
    #[serde(default)]
    recovery_code: Option<SecretString>,
}

pub async fn disable(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Caller(ctx): Caller,
    AppJson(body): AppJson<DisableRequest>,
) -> Result<StatusCode> {
    let factor = factor(body.code, body.recovery_code)?;
    let password = body.password.expose_secret();
    enrolment::disable(&state, &ctx, claims.sub, password, &factor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Exactly one of `code` (TOTP) and `recovery_code`.
pub fn factor(code: Option<SecretString>, recovery_code: Option<SecretString>) -> Result<Factor> {
    match (code, recovery_code) {
        (Some(code), None) => Ok(Factor::Totp(code.expose_secret().to_owned())),
        (None, Some(code)) => Ok(Factor::RecoveryCode(code.expose_secret().to_owned())),
        _ => Err(Error::InvalidRequest(
            "send exactly one of code and recovery_code".into(),
        )),
    }
}
