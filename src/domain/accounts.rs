//! Sign-up and the caller's own profile. Sign-up answers identically whether
//! or not the address is taken, or a look-alike of it (see `email`): the
//! password is hashed in all cases, the insert simply does nothing on a
//! conflict (the audit log records which it was; the client is never told),
//! and a mail is queued either way: a verification link to a new address,
//! "an account already exists" to the owner of a taken one.
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::email::{self, Email};
use crate::domain::lifecycle::tokens::{self, Purpose};
use crate::domain::mail::templates::{self, Template};
use crate::domain::mail::{self, Job};
use crate::domain::password_policy;
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::users::{self, NewUser, Profile};

/// The locale of an account's mail: a tag like `de` or `pt-BR`, kept only
/// when there are templates for it (else the default).
fn locale(requested: Option<&str>) -> &'static str {
    let language = requested.and_then(|l| l.split(['-', '_']).next());
    templates::locales()
        .find(|known| language.is_some_and(|l| l.eq_ignore_ascii_case(known)))
        .unwrap_or(templates::DEFAULT_LOCALE)
}

pub async fn signup(
    state: &Services,
    ctx: &Context,
    email: &str,
    password: &str,
    requested_locale: Option<&str>,
) -> Result<()> {
    let email = Email::parse(email)?;
    let reasons = password_policy::violations(password, &email, &state.settings.password);
    if !reasons.is_empty() {
        return Err(Error::WeakPassword(reasons));
    }
    let normalized = password_policy::normalize(password);
    let hash = state.passwords.hash(SecretString::from(normalized)).await?;
    let now = state.clock.now();
    let user = NewUser {
        id: Uuid::new_v4(),
        email: email.as_str(),
        locale: locale(requested_locale),
        email_key: email.key(),
        email_skeleton: email.skeleton(),
        password_hash: Some(&hash),
        email_verified: false,
        now,
    };
    let mut tx = state.db.begin().await?;
    let event = if users::insert_if_absent(&mut *tx, &user).await? {
        users::grant_roles(&mut *tx, user.id, &state.settings.auth.default_roles, now).await?;
        if mail::within_quota(state, &mut tx, email.key()).await? {
            let token = tokens::issue(state, &mut tx, user.id, Purpose::VerifyEmail, None).await?;
            let job = Job::Send {
                to: email.as_str().to_owned(),
                locale: user.locale.to_owned(),
                template: Template::VerifyEmail,
                link: Some(mail::link(state, "verify-email", token.expose())),
            };
            state
                .mail
                .enqueue(&mut tx, Some(user.id), &job, now)
                .await?;
        }
        Event::by_user(Kind::Signup, user.id, "created", json!({}))
    } else {
        let taken = users::find_taken(&mut *tx, email.key(), email.skeleton()).await?;
        if let Some((owner, true)) = taken {
            // The owner hears of it, at the address on the account.
            let account = users::mail_account(&mut *tx, owner).await?;
            if let Some(account) = account.filter(|a| !a.disabled)
                && mail::within_quota(state, &mut tx, email.key()).await?
            {
                mail::notify(state, &mut tx, &account, Template::AccountExists).await?;
            }
        }
        Event {
            kind: Kind::Signup,
            actor: None,
            subject: taken.map(|(id, _)| id),
            outcome: match taken {
                Some((_, false)) => "lookalike",
                _ => "duplicate",
            },
            details: json!({}),
        }
    };
    state.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    state.mail.wake();
    Ok(())
}

/// `invalid_token` unless the access token's session is still open and its
/// account enabled (remembered per replica: see `session_cache`).
pub async fn require_live_session(state: &Services, user_id: Uuid, session_id: Uuid) -> Result<()> {
    let cache = &state.session_cache;
    let cached = cache.is_live(user_id, session_id);
    state.metrics.session_check(cached);
    if cached {
        return Ok(());
    }
    let ticket = cache.ticket();
    if !crate::storage::sessions::is_live(&state.db, session_id, user_id).await? {
        return Err(Error::InvalidToken);
    }
    if let Some(ticket) = ticket {
        cache.remember_live(ticket, user_id, session_id);
    }
    Ok(())
}

pub async fn profile(state: &Services, user_id: Uuid, session_id: Uuid) -> Result<Arc<Profile>> {
    let cache = &state.session_cache;
    let cached = cache.profile(user_id, session_id);
    state.metrics.session_check(cached.is_some());
    if let Some(profile) = cached {
        return Ok(profile);
    }
    let ticket = cache.ticket();
    let profile = Arc::new(
        users::profile_for_session(&state.db, user_id, session_id)
            .await?
            .ok_or(Error::InvalidToken)?,
    );
    if let Some(ticket) = ticket {
        cache.remember_profile(ticket, session_id, profile.clone());
    }
    Ok(profile)
}

/// Gives every account older than the skeleton rule its canonical key and
/// skeleton, oldest first, so the first holder of a look-alike pair keeps
/// it. A later look-alike (possible only before the rule) keeps working
/// without one, and is named (by id) in a warning.
pub async fn backfill_email_skeletons(db: &PgPool) -> anyhow::Result<()> {
    for row in users::missing_skeletons(db).await? {
        let (key, skeleton) = match Email::parse(&row.email) {
            Ok(email) => (email.key().to_owned(), email.skeleton().to_owned()),
            Err(_) => (row.email_key.clone(), email::skeleton(&row.email_key)),
        };
        if !users::set_skeleton(db, row.id, &key, &skeleton).await? {
            tracing::warn!(
                user_id = %row.id,
                "account's address reads like an older account's; it keeps working, but consider contacting its owner"
            );
        }
    }
    Ok(())
}
