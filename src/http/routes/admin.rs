//! /v1/admin/*: the admin API. Every handler here sits behind
//! `admin_routes::require`; they parse, call `domain::admin`, and shape.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::admin::audit_view::{self, Filter};
use crate::domain::admin::authorize::AdminCaller;
use crate::domain::admin::{self, users};
use crate::domain::audit::Context;
use crate::error::{Error, Result};
use crate::http::admin_routes::Admin;
use crate::http::extract::{AppJson, AppPath, AppQuery, Caller};
use crate::http::routes::activity::{decode_cursor, encode_cursor, limit};
use crate::state::AppState;
use crate::storage::admin::UserRow;

/// A malformed id is as unknown as a well-formed one.
fn user_id(raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw).map_err(|_| Error::NotFound)
}

#[derive(Serialize)]
pub struct User {
    id: Uuid,
    email: String,
    email_verified: bool,
    roles: Vec<String>,
    disabled: bool,
    mfa_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_login_at: Option<OffsetDateTime>,
    active_sessions: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: r.id,
            email: r.email,
            email_verified: r.email_verified,
            roles: r.roles,
            disabled: r.disabled,
            mfa_enabled: r.mfa_enabled,
            created_at: r.created_at,
            last_login_at: r.last_login_at,
            active_sessions: r.active_sessions,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    email_prefix: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
pub struct UsersPage {
    users: Vec<User>,
    next_cursor: Option<String>,
}

pub async fn list_users(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Caller(ctx): Caller,
    AppQuery(query): AppQuery<UsersQuery>,
) -> Result<Json<UsersPage>> {
    let limit = limit(query.limit)?;
    if query.email_prefix.as_ref().is_some_and(|p| p.len() > 254) {
        return Err(Error::InvalidRequest("email_prefix is too long".into()));
    }
    let after = query
        .cursor
        .as_deref()
        .map(decode_user_cursor)
        .transpose()?;
    let prefix = query.email_prefix.as_deref().filter(|p| !p.is_empty());
    let page = users::list(&state, &ctx, caller, prefix, after, limit).await?;
    Ok(Json(UsersPage {
        users: page.users.into_iter().map(User::from).collect(),
        next_cursor: page.next.map(encode_user_cursor),
    }))
}

fn encode_user_cursor((created_at, id): (OffsetDateTime, Uuid)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", created_at.unix_timestamp_nanos()))
}

fn decode_user_cursor(cursor: &str) -> Result<(OffsetDateTime, Uuid)> {
    let invalid = || Error::InvalidRequest("invalid cursor".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (nanos, id) = text.split_once(':').ok_or_else(invalid)?;
    let nanos: i128 = nanos.parse().map_err(|_| invalid())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid())?;
    Ok((at, Uuid::parse_str(id).map_err(|_| invalid())?))
}

pub async fn get_user(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Caller(ctx): Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<User>> {
    let row = users::get(&state, &ctx, caller, user_id(&id)?).await?;
    Ok(Json(row.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    reason: String,
}

/// What a `{reason}`-only call does to the account.
#[derive(Clone, Copy)]
enum Action {
    Disable,
    Enable,
    RevokeSessions,
    ResetMfa,
    ResendVerification,
}

async fn act(
    (state, caller, ctx): (AppState, AdminCaller, Context),
    id: &str,
    body: ReasonBody,
    action: Action,
) -> Result<StatusCode> {
    let (id, reason) = (user_id(id)?, admin::check_reason(&body.reason)?);
    match action {
        Action::Disable => users::set_disabled(&state, &ctx, caller, (id, true), reason).await?,
        Action::Enable => users::set_disabled(&state, &ctx, caller, (id, false), reason).await?,
        Action::RevokeSessions => {
            users::revoke_sessions(&state, &ctx, caller, id, reason).await?;
        }
        Action::ResetMfa => users::reset_mfa(&state, &ctx, caller, id, reason).await?,
        Action::ResendVerification => {
            users::resend_verification(&state, &ctx, caller, id, reason).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! action_handlers {
    ($($name:ident => $action:ident),* $(,)?) => {
        $(
            pub async fn $name(
                State(state): State<AppState>,
                Admin(caller): Admin,
                Caller(ctx): Caller,
                AppPath(id): AppPath<String>,
                AppJson(body): AppJson<ReasonBody>,
            ) -> Result<StatusCode> {
                act((state, caller, ctx), &id, body, Action::$action).await
            }
        )*
    };
}

action_handlers!(
    disable_user => Disable,
    enable_user => Enable,
    revoke_sessions => RevokeSessions,
    reset_mfa => ResetMfa,
    resend_verification => ResendVerification,
);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesBody {
    roles: Vec<String>,
    reason: String,
}

#[derive(Serialize)]
pub struct Roles {
    roles: Vec<String>,
}

pub async fn set_roles(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Caller(ctx): Caller,
    AppPath(id): AppPath<String>,
    AppJson(body): AppJson<RolesBody>,
) -> Result<Json<Roles>> {
    let (id, reason) = (user_id(&id)?, admin::check_reason(&body.reason)?);
    if body.roles.len() > 16 {
        return Err(Error::InvalidRequest("at most 16 roles".into()));
    }
    let roles = users::set_roles(&state, &ctx, caller, id, &body.roles, reason).await?;
    Ok(Json(Roles { roles }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    cursor: Option<String>,
    limit: Option<i64>,
    kind: Option<String>,
    user_id: Option<String>,
}

#[derive(Serialize)]
pub struct AuditEntry {
    id: i64,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    kind: String,
    actor: Option<Uuid>,
    subject: Option<Uuid>,
    outcome: String,
    reason: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    details: Value,
}

#[derive(Serialize)]
pub struct AuditPage {
    events: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

pub async fn audit(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Caller(ctx): Caller,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Json<AuditPage>> {
    let limit = limit(query.limit)?;
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let user_id = query
        .user_id
        .as_deref()
        .map(|id| Uuid::parse_str(id).map_err(|_| Error::InvalidRequest("invalid user_id".into())))
        .transpose()?;
    if query.kind.as_ref().is_some_and(|k| k.len() > 64) {
        return Err(Error::InvalidRequest("kind is too long".into()));
    }
    let filter = Filter {
        before,
        kind: query.kind.as_deref(),
        user_id,
        limit,
    };
    let (entries, next) = audit_view::list(&state, &ctx, caller, filter).await?;
    Ok(Json(AuditPage {
        events: entries
            .into_iter()
            .map(|e| AuditEntry {
                id: e.seq,
                occurred_at: e.occurred_at,
                kind: e.kind,
                actor: e.actor,
                subject: e.subject,
                outcome: e.outcome,
                reason: e.reason,
                client_ip: e.client_ip.map(|ip| ip.to_string()),
                user_agent: e.user_agent,
                details: e.details,
            })
            .collect(),
        next_cursor: next.map(encode_cursor),
    }))
}
