//! /v1/auth/*: sign-up, login, refresh, logout. Login and refresh count
//! their outcome (`authd_logins_total`, `authd_refreshes_total`) here, where
//! every way a request can end is in view, including malformed bodies.
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::accounts;
use crate::domain::audit::Context;
use crate::domain::mfa::challenge;
use crate::domain::sessions::{self, ClientType, Issued, LoginResult};
use crate::error::{Error, Result};
use crate::http::cookies;
use crate::http::extract::{AppJson, Caller, Channel, RefreshCredential};
use crate::http::routes::mfa;
use crate::metrics::{LoginOutcome, RefreshOutcome};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    email: String,
    password: SecretString,
    /// The language of the account's mail, e.g. `de` (default `en`).
    #[serde(default)]
    locale: Option<String>,
}

pub async fn signup(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    AppJson(body): AppJson<SignupRequest>,
) -> Result<Response> {
    if body.locale.as_ref().is_some_and(|l| l.len() > 35) {
        return Err(Error::InvalidRequest(
            "locale must be at most 35 characters".into(),
        ));
    }
    let password = body.password.expose_secret();
    accounts::signup(&state, &ctx, &body.email, password, body.locale.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response())
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ClientTypeField {
    #[default]
    Web,
    Native,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: SecretString,
    #[serde(default)]
    client_type: ClientTypeField,
    /// A registered client (`authd clients create`); the default one if absent.
    #[serde(default)]
    client_id: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    body: Result<AppJson<LoginRequest>>,
) -> Result<Response> {
    let result = match body {
        Ok(AppJson(body)) => attempt_login(&state, &ctx, body).await,
        Err(error) => Err(error),
    };
    state.metrics.login(login_outcome(&result));
    result.map(|(response, _)| response)
}

async fn attempt_login(
    state: &AppState,
    ctx: &Context,
    body: LoginRequest,
) -> Result<(Response, LoginOutcome)> {
    let client_type = match body.client_type {
        ClientTypeField::Web => ClientType::Web,
        ClientTypeField::Native => ClientType::Native,
    };
    // Before the password: an unknown client costs no hash.
    let client = state
        .clients
        .resolve(&state.db, body.client_id.as_deref())
        .await?;
    let credentials = (body.email.as_str(), body.password.expose_secret());
    match sessions::login(state, ctx, credentials, client_type, &client).await? {
        LoginResult::Issued(issued) => Ok((
            token_response(issued, channel(client_type))?,
            LoginOutcome::Success,
        )),
        LoginResult::MfaRequired(challenge) => {
            let body = MfaRequired {
                mfa_required: true,
                mfa_token: challenge.token.expose(),
                methods: ["totp", "recovery_code"],
                expires_in: challenge.expires_in,
            };
            Ok((Json(body).into_response(), LoginOutcome::MfaRequired))
        }
    }
}

/// The password step's answer to an account with MFA: no tokens, no cookie.
#[derive(Serialize)]
struct MfaRequired<'a> {
    mfa_required: bool,
    mfa_token: &'a str,
    methods: [&'static str; 2],
    expires_in: i64,
}

fn channel(client_type: ClientType) -> Channel {
    match client_type {
        ClientType::Web => Channel::Cookie,
        ClientType::Native => Channel::Body,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginMfaRequest {
    mfa_token: SecretString,
    #[serde(default)]
    code: Option<SecretString>,
    #[serde(default)]
    recovery_code: Option<SecretString>,
}

/// The second login step: the tokens, on the channel of the password step.
pub async fn login_mfa(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    AppJson(body): AppJson<LoginMfaRequest>,
) -> Result<Response> {
    let factor = mfa::factor(body.code, body.recovery_code)?;
    let token = body.mfa_token.expose_secret();
    let (issued, client_type) = challenge::complete(&state, &ctx, token, &factor).await?;
    token_response(issued, channel(client_type))
}

fn login_outcome<T>(result: &Result<(T, LoginOutcome)>) -> LoginOutcome {
    match result {
        Ok((_, outcome)) => *outcome,
        Err(Error::InvalidCredentials) => LoginOutcome::InvalidCredentials,
        Err(Error::EmailNotVerified) => LoginOutcome::EmailNotVerified,
        Err(Error::RateLimited { .. }) => LoginOutcome::Throttled,
        Err(Error::Overloaded) => LoginOutcome::Overloaded,
        Err(e) if e.status().is_server_error() => LoginOutcome::Error,
        Err(_) => LoginOutcome::InvalidRequest,
    }
}

pub async fn refresh(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    credential: Result<RefreshCredential>,
) -> Result<Response> {
    let result = match credential {
        Ok(credential) => rotate(&state, &ctx, credential).await,
        Err(error) => Err(error),
    };
    state.metrics.refresh(refresh_outcome(&result));
    result
}

async fn rotate(
    state: &AppState,
    ctx: &Context,
    credential: RefreshCredential,
) -> Result<Response> {
    let token = credential.token.ok_or(Error::InvalidRefreshToken)?;
    let client_id = credential.client_id.as_deref();
    let issued = sessions::refresh(state, ctx, token.expose_secret(), client_id).await?;
    token_response(issued, credential.channel)
}

fn refresh_outcome<T>(result: &Result<T>) -> RefreshOutcome {
    match result {
        Ok(_) => RefreshOutcome::Success,
        Err(e) if e.status().is_server_error() => RefreshOutcome::Error,
        Err(_) => RefreshOutcome::Invalid,
    }
}

pub async fn logout(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    credential: RefreshCredential,
) -> Result<Response> {
    if let Some(token) = credential.token {
        sessions::logout(&state, &ctx, token.expose_secret()).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookies::CLEARING_HEADER)],
    )
        .into_response())
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

/// Web clients get the refresh token only as a cookie, native clients only
/// in the body.
fn token_response(issued: Issued, channel: Channel) -> Result<Response> {
    let body = TokenBody {
        access_token: &issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        refresh_token: (channel == Channel::Body).then(|| issued.refresh_token.expose()),
    };
    let mut response = Json(body).into_response();
    if channel == Channel::Cookie {
        let cookie = cookies::refresh_cookie(issued.refresh_token.expose(), issued.refresh_max_age);
        response
            .headers_mut()
            .insert(header::SET_COOKIE, cookies::header(&cookie)?);
    }
    Ok(response)
}
