//! Login, refresh-token rotation and logout.
//!
//! Each login opens a session (a token family). Refresh spends the presented
//! token and issues its child in one transaction. A spent token presented
//! again is reuse (RFC 9700 §4.14): within a short leeway it yields one more
//! child (two browser tabs refreshing together), after it the whole session
//! is revoked. The conditional UPDATE in `storage::sessions::spend_token`
//! makes concurrent refreshes of one token serialise on its row.
use secrecy::SecretString;
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::domain::access_tokens::{self, Subject};
use crate::domain::email::Email;
use crate::domain::password_policy;
use crate::domain::passwords::Verified;
use crate::domain::refresh_tokens::PlainToken;
use crate::domain::throttle::LoginAttempt;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::storage::sessions::{self as store, LiveSession, NewSession};
use crate::storage::users;

/// Largest password accepted at login; longer input cannot match (the
/// policy caps new passwords far below) and would only burn CPU.
const MAX_LOGIN_PASSWORD_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Web,
    Native,
}

impl ClientType {
    fn as_str(self) -> &'static str {
        match self {
            ClientType::Web => "web",
            ClientType::Native => "native",
        }
    }
}

/// What a successful login or refresh hands back.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: PlainToken,
    /// Seconds the refresh token can live (the cookie's Max-Age).
    pub refresh_max_age: i64,
}

pub async fn login(
    state: &AppState,
    email: &str,
    password: &str,
    client_type: ClientType,
    ip: IpAddr,
) -> Result<Issued> {
    let email = Email::parse(email)?;
    if password.len() > MAX_LOGIN_PASSWORD_BYTES {
        return Err(Error::InvalidRequest("password is too long".into()));
    }
    let attempt = LoginAttempt::new(&state.throttle_key, &email, ip);
    attempt.check(&state.db, state.clock.now()).await?;

    let user = users::find_for_login(&state.db, email.key()).await?;
    let password = SecretString::from(password_policy::normalize(password));
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state.passwords.verify(password, stored).await?;
    let now = state.clock.now();
    let (user, rehash) = match (user, verified) {
        (Some(user), Verified::Yes { rehash }) if !user.disabled => (user, rehash),
        _ => {
            attempt
                .failed(&state.db, &state.settings.throttle, now)
                .await?;
            return Err(Error::InvalidCredentials);
        }
    };
    attempt.succeeded(&state.db).await?;
    if let Some(hash) = rehash {
        users::update_password_hash(&state.db, user.id, &hash, now).await?;
    }
    if state.settings.auth.require_verified_email && !user.email_verified {
        return Err(Error::EmailNotVerified);
    }
    open_session(state, user.id, client_type, now).await
}

async fn open_session(
    state: &AppState,
    user_id: Uuid,
    client_type: ClientType,
    now: OffsetDateTime,
) -> Result<Issued> {
    let auth = &state.settings.auth;
    let amr = vec!["pwd".to_owned()];
    let absolute_expires_at = now + Duration::seconds(auth.session_absolute_ttl_secs);
    let session = NewSession {
        id: Uuid::new_v4(),
        user_id,
        client_type: client_type.as_str(),
        amr: &amr,
        now,
        idle_expires_at: idle_expiry(state, now, absolute_expires_at),
        absolute_expires_at,
    };
    let token = PlainToken::generate()?;
    let mut tx = state.db.begin().await?;
    store::insert(&mut *tx, &session).await?;
    store::insert_token(&mut *tx, &token.hash(), session.id, None, now).await?;
    let roles = users::roles(&mut *tx, user_id).await?;
    tx.commit().await?;
    let live = LiveSession {
        id: session.id,
        user_id,
        amr,
        auth_time: now,
        absolute_expires_at,
        roles,
    };
    issue(state, &live, token, now)
}

fn idle_expiry(state: &AppState, now: OffsetDateTime, absolute: OffsetDateTime) -> OffsetDateTime {
    (now + Duration::seconds(state.settings.auth.session_idle_ttl_secs)).min(absolute)
}

fn issue(
    state: &AppState,
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
    };
    let access_token = access_tokens::mint(&state.keys, &state.settings.auth, &subject, now)?;
    let idle = idle_expiry(state, now, session.absolute_expires_at);
    Ok(Issued {
        access_token,
        expires_in: state.settings.auth.access_token_ttl_secs,
        refresh_token,
        refresh_max_age: (idle - now).whole_seconds().max(0),
    })
}

pub async fn refresh(state: &AppState, presented: &str) -> Result<Issued> {
    let presented = PlainToken::parse(presented).ok_or(Error::InvalidRefreshToken)?;
    let hash = presented.hash();
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let session_id = match store::spend_token(&mut *tx, &hash, now).await? {
        Some(session_id) => session_id,
        None => {
            let Some(spent) = store::lock_token(&mut *tx, &hash).await? else {
                return Err(Error::InvalidRefreshToken);
            };
            let leeway = Duration::seconds(state.settings.auth.refresh_reuse_leeway_secs);
            // `now` may precede `spent_at` when both requests raced; that
            // counts as inside the leeway, unless there is none at all.
            let within_leeway =
                leeway.is_positive() && spent.spent_at.is_some_and(|at| now - at < leeway);
            if !within_leeway || spent.leeway_used {
                if store::revoke(&mut *tx, spent.session_id, "refresh_token_reuse", now).await? {
                    tracing::warn!(session_id = %spent.session_id, "refresh token reuse detected; session revoked");
                    state.metrics.refresh_reuse_detected();
                }
                tx.commit().await?;
                return Err(Error::InvalidRefreshToken);
            }
            store::mark_leeway_used(&mut *tx, &hash).await?;
            spent.session_id
        }
    };
    let Some(session) = store::lock_live(&mut *tx, session_id, now).await? else {
        return Err(Error::InvalidRefreshToken);
    };
    let child = PlainToken::generate()?;
    store::insert_token(&mut *tx, &child.hash(), session.id, Some(&hash), now).await?;
    store::touch(
        &mut *tx,
        session.id,
        now,
        idle_expiry(state, now, session.absolute_expires_at),
    )
    .await?;
    tx.commit().await?;
    issue(state, &session, child, now)
}

/// Revokes the session the token belongs to. Unknown tokens are fine: logout
/// is idempotent.
pub async fn logout(state: &AppState, presented: &str) -> Result<()> {
    let Some(token) = PlainToken::parse(presented) else {
        return Ok(());
    };
    if let Some(session_id) = store::session_of_token(&state.db, &token.hash()).await? {
        store::revoke(&state.db, session_id, "logout", state.clock.now()).await?;
    }
    Ok(())
}
