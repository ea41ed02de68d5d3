//! Login, refresh-token rotation and logout.
//!
//! Each login opens a session (a token family). Refresh spends the presented
//! token and issues its child in one transaction. A spent token presented
//! again is reuse (RFC 9700 §4.14): within a short leeway it yields one more
//! child (two browser tabs refreshing together), after it the whole session
//! is revoked. The conditional UPDATE in `storage::sessions::rotate_unspent`
//! makes concurrent refreshes of one token serialise on its row.
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::domain::access_tokens::{self, Subject};
use crate::domain::audit::{Context, Event, Kind};
use crate::domain::clients::Client;
use crate::domain::credentials::{self, Account};
use crate::domain::email::Email;
use crate::domain::mfa::challenge::{self, Challenge};
use crate::domain::refresh_tokens::PlainToken;
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::sessions::{self as store, LiveSession, NewSession, Rotation};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Web,
    Native,
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Web => "web",
            ClientType::Native => "native",
        }
    }

    /// As stored by `as_str`.
    pub fn parse(stored: &str) -> Result<Self> {
        match stored {
            "web" => Ok(ClientType::Web),
            "native" => Ok(ClientType::Native),
            other => Err(Error::Internal(anyhow::anyhow!(
                "unknown client type {other:?}"
            ))),
        }
    }
}

/// What a successful login or refresh hands back. `Debug` shows neither
/// token.
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: PlainToken,
    /// Seconds the refresh token can live (the cookie's Max-Age).
    pub refresh_max_age: i64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token)
            .field("refresh_max_age", &self.refresh_max_age)
            .finish()
    }
}

/// How a correct password ends: tokens, or (for an account with MFA) a
/// challenge for the second factor and no tokens.
#[derive(Debug)]
pub enum LoginResult {
    Issued(Issued),
    MfaRequired(Challenge),
}

pub async fn login(
    state: &Services,
    ctx: &Context,
    (email, password): (&str, &str),
    client_type: ClientType,
    client: &Client,
) -> Result<LoginResult> {
    // Accounts from before the current address rules log in by their old key.
    let email = Email::parse(email).or_else(|_| Email::parse_legacy(email))?;
    let account = Account::ByEmail(&email);
    let user =
        credentials::check_password(state, ctx, account, password, Kind::LoginFailed).await?;
    if state.settings.auth.require_verified_email && !user.email_verified {
        let details = json!({ "reason": "email_not_verified" });
        state
            .audit
            .record(
                &state.db,
                ctx,
                Event::by_user(Kind::LoginFailed, user.id, "failure", details),
            )
            .await?;
        return Err(Error::EmailNotVerified);
    }
    if user.mfa_enabled {
        let challenge = challenge::issue(state, ctx, user.id, client_type, client).await?;
        return Ok(LoginResult::MfaRequired(challenge));
    }
    let opening = Opening {
        user_id: user.id,
        client_type,
        client,
        amr: vec!["pwd".to_owned()],
        idp: None,
    };
    Ok(LoginResult::Issued(
        open_session(state, ctx, opening).await?,
    ))
}

/// Who a new session is for, for which client, and how they proved who
/// they are (`amr`, RFC 8176; `idp` for a federated sign-in).
pub struct Opening<'a> {
    pub user_id: Uuid,
    pub client_type: ClientType,
    pub client: &'a Client,
    pub amr: Vec<String>,
    pub idp: Option<&'a str>,
}

/// Opens a session for a user who has just proved who they are.
pub async fn open_session(state: &Services, ctx: &Context, opening: Opening<'_>) -> Result<Issued> {
    let mut tx = state.db.begin().await?;
    let (live, token) = open_in(state, ctx, &mut tx, &opening).await?;
    tx.commit().await?;
    issue(state, opening.client, &live, token, state.clock.now())
}

/// `open_session` inside the caller's transaction (a federated sign-in
/// sets roles and opens the session in one), returning what `issue`
/// needs once it commits.
pub async fn open_in(
    state: &Services,
    ctx: &Context,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    opening: &Opening<'_>,
) -> Result<(LiveSession, PlainToken)> {
    let Opening {
        user_id,
        client_type,
        client,
        ref amr,
        idp,
    } = *opening;
    let auth = &state.settings.auth;
    let now = state.clock.now();
    let absolute_expires_at = now + Duration::seconds(auth.session_absolute_ttl_secs);
    let session = NewSession {
        id: Uuid::new_v4(),
        user_id,
        client_type: client_type.as_str(),
        client_id: client.stored_id(),
        idp,
        amr,
        now,
        idle_expires_at: idle_expiry(state, now, absolute_expires_at),
        absolute_expires_at,
        client_ip: ctx.ip.map(sqlx::types::ipnetwork::IpNetwork::from),
        user_agent: ctx.user_agent.as_deref(),
        admin_max_secs: state.settings.admin.session_max_secs,
    };
    let token = PlainToken::generate()?;
    let (roles, absolute_expires_at) = store::open(&mut **tx, &session, &token.hash())
        .await?
        .ok_or(Error::InvalidCredentials)?;
    let mut details = json!({
        "session_id": session.id,
        "client_type": client_type.as_str(),
        "client_id": client.id,
    });
    if let Some(idp) = idp {
        details["idp"] = json!(idp);
    }
    state
        .audit
        .append(
            tx,
            ctx,
            Event::by_user(Kind::LoginSucceeded, user_id, "success", details),
        )
        .await?;
    let live = LiveSession {
        id: session.id,
        user_id,
        amr: amr.clone(),
        auth_time: now,
        absolute_expires_at,
        roles,
        client_id: client.stored_id().map(str::to_owned),
        idp: idp.map(str::to_owned),
    };
    Ok((live, token))
}

fn idle_expiry(state: &Services, now: OffsetDateTime, absolute: OffsetDateTime) -> OffsetDateTime {
    (now + Duration::seconds(state.settings.auth.session_idle_ttl_secs)).min(absolute)
}

/// The access token (for the session's client) and the refresh token.
pub fn issue(
    state: &Services,
    client: &Client,
    session: &LiveSession,
    refresh_token: PlainToken,
    now: OffsetDateTime,
) -> Result<Issued> {
    let subject = Subject {
        user_id: session.user_id,
        session_id: session.id,
        roles: &session.roles,
        amr: &session.amr,
        auth_time: session.auth_time,
        client,
        idp: session.idp.as_deref(),
    };
    let access_token = access_tokens::mint(&state.keys, &state.settings.auth, &subject, now)?;
    let idle = idle_expiry(state, now, session.absolute_expires_at);
    Ok(Issued {
        access_token,
        expires_in: client.access_ttl_secs,
        refresh_token,
        refresh_max_age: (idle - now).whole_seconds().max(0),
    })
}

/// Spends `presented` for a child and a new access token. A `client_id`
/// the caller names must be the session's: checked before an unspent token
/// is spent, so a mistaken call costs nothing. A spent or unknown token
/// goes on to `rotate` whatever client it names, so that naming another
/// client can neither dodge reuse detection nor tell a replayed token's
/// family apart from a dead one.
pub async fn refresh(
    state: &Services,
    ctx: &Context,
    presented: &str,
    client_id: Option<&str>,
) -> Result<Issued> {
    let presented = PlainToken::parse(presented).ok_or(Error::InvalidRefreshToken)?;
    let requested = match client_id {
        Some(id) => Some(state.clients.resolve(&state.db, Some(id)).await?),
        None => None,
    };
    let names_another = |stored: Option<&str>| {
        requested
            .as_ref()
            .is_some_and(|client| stored != client.stored_id())
    };
    if requested.is_some() {
        let stored = store::client_of_unspent(&state.db, &presented.hash()).await?;
        if stored.is_some_and(|stored| names_another(stored.as_deref())) {
            return Err(Error::InvalidClient);
        }
    }
    let now = state.clock.now();
    let (session, child) = rotate(state, ctx, &presented, now).await?;
    if names_another(session.client_id.as_deref()) {
        // A spent token within the leeway: its child is not handed out.
        return Err(Error::InvalidClient);
    }
    let client = state
        .clients
        .stored(&state.db, session.client_id.as_deref())
        .await?
        .ok_or(Error::InvalidRefreshToken)?;
    issue(state, &client, &session, child, now)
}

/// The refresh transaction: spends `presented` and stores its child, or
/// applies the reuse rules. Public so the benchmark measures exactly this
/// SQL without HTTP or JWT work.
pub async fn rotate(
    state: &Services,
    ctx: &Context,
    presented: &PlainToken,
    now: OffsetDateTime,
) -> Result<(LiveSession, PlainToken)> {
    let hash = presented.hash();
    let child = PlainToken::generate()?;
    let idle_secs = state.settings.auth.session_idle_ttl_secs;
    match store::rotate_unspent(&state.db, &hash, &child.hash(), now, idle_secs).await? {
        Rotation::Rotated(session) => Ok((session, child)),
        Rotation::SessionGone => Err(Error::InvalidRefreshToken),
        Rotation::NotUnspent => rotate_spent(state, ctx, &hash, child, now).await,
    }
}

/// A token that is unknown or already spent: within the leeway it yields
/// one more child; otherwise it is reuse and the whole session is revoked.
async fn rotate_spent(
    state: &Services,
    ctx: &Context,
    hash: &[u8],
    child: PlainToken,
    now: OffsetDateTime,
) -> Result<(LiveSession, PlainToken)> {
    let mut tx = state.db.begin().await?;
    let Some(spent) = store::lock_token(&mut *tx, hash).await? else {
        return Err(Error::InvalidRefreshToken);
    };
    let leeway = Duration::seconds(state.settings.auth.refresh_reuse_leeway_secs);
    // `now` may precede `spent_at` when both requests raced; that counts as
    // inside the leeway, unless there is none at all.
    let within_leeway = leeway.is_positive() && spent.spent_at.is_some_and(|at| now - at < leeway);
    if !within_leeway || spent.leeway_used {
        let revoked = store::revoke(&mut *tx, spent.session_id, "refresh_token_reuse", now).await?;
        if let Some(user_id) = revoked {
            tracing::warn!(session_id = %spent.session_id, "refresh token reuse detected; session revoked");
            state.metrics.refresh_reuse_detected();
            let details = json!({ "session_id": spent.session_id });
            let event = Event {
                kind: Kind::RefreshTokenReuseDetected,
                actor: None,
                subject: Some(user_id),
                outcome: "session_revoked",
                details,
            };
            state.audit.append(&mut tx, ctx, event).await?;
        }
        state.session_cache.commit(&state.db, tx, revoked).await?;
        return Err(Error::InvalidRefreshToken);
    }
    store::mark_leeway_used(&mut *tx, hash).await?;
    let Some(session) = store::lock_live(&mut *tx, spent.session_id, now).await? else {
        return Err(Error::InvalidRefreshToken);
    };
    store::insert_token(&mut *tx, &child.hash(), session.id, Some(hash), now).await?;
    store::touch(
        &mut *tx,
        session.id,
        now,
        idle_expiry(state, now, session.absolute_expires_at),
    )
    .await?;
    tx.commit().await?;
    Ok((session, child))
}

/// Revokes the session the token belongs to. Unknown tokens are fine: logout
/// is idempotent.
pub async fn logout(state: &Services, ctx: &Context, presented: &str) -> Result<()> {
    let Some(token) = PlainToken::parse(presented) else {
        return Ok(());
    };
    let mut tx = state.db.begin().await?;
    let Some(session_id) = store::session_of_token(&mut *tx, &token.hash()).await? else {
        return Ok(());
    };
    let revoked = store::revoke(&mut *tx, session_id, "logout", state.clock.now()).await?;
    if let Some(user_id) = revoked {
        let details = json!({ "session_id": session_id });
        let event = Event::by_user(Kind::Logout, user_id, "success", details);
        state.audit.append(&mut tx, ctx, event).await?;
    }
    state.session_cache.commit(&state.db, tx, revoked).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_neither_token() {
        let Ok(refresh_token) = PlainToken::generate() else {
            panic!("rng")
        };
        let secret_refresh = refresh_token.expose().to_owned();
        let issued = Issued {
            access_token: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".into(),
            expires_in: 900,
            refresh_token,
            refresh_max_age: 60,
        };
        let shown = format!("{issued:?}");
        assert!(!shown.contains("eyJ"), "{shown}");
        assert!(!shown.contains(&secret_refresh), "{shown}");
        assert!(
            shown.contains("[REDACTED]") && shown.contains("900"),
            "{shown}"
        );
    }
}
