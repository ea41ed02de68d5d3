//! The one way a password is checked, for login and for the MFA changes
//! that ask for it again: under the per-account throttle (a refused attempt
//! runs no hash), on the bounded hashing pool, against a dummy hash when the
//! account is unknown (same cost as a wrong password), with every failure
//! counted and audited in one transaction. Disabled accounts, and federated
//! ones (which have no password), fail exactly like wrong passwords.
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::email::Email;
use crate::domain::password_policy;
use crate::domain::passwords::Verified;
use crate::domain::services::Services;
use crate::domain::throttle::Attempt;
use crate::error::{Error, Result};
use crate::storage::users::{self, LoginUser};

/// Largest password accepted; longer input cannot match (the policy caps
/// new passwords far below) and would only burn CPU.
const MAX_PASSWORD_BYTES: usize = 4096;

/// Whose password: found by address (login) or by id (an authenticated
/// user confirming a change).
#[derive(Debug, Clone, Copy)]
pub enum Account<'a> {
    ByEmail(&'a Email),
    ById(Uuid),
}

/// The account, when `password` is its password. A failure is audited as
/// `failure_kind` (`login_failed` for a login) and counted by the throttle.
pub async fn check_password(
    services: &Services,
    ctx: &Context,
    account: Account<'_>,
    password: &str,
    failure_kind: Kind,
) -> Result<LoginUser> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::InvalidRequest("password is too long".into()));
    }
    let ip = ctx
        .ip
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("password check without a client IP")))?;
    // First, before any database work: under overload, refusing must be cheap.
    let slot = services.passwords.reserve()?;
    let now = services.clock.now();
    let key = &services.throttle_key;
    let (user, mut attempt, standing) = match account {
        Account::ByEmail(email) => {
            let mut attempt = Attempt::password(key, email.key(), ip);
            attempt.take_turn(&services.checks_in_flight)?;
            let (user, standing) = attempt
                .read_with_user(&services.db, email.key(), now)
                .await?;
            (user, attempt, standing)
        }
        Account::ById(id) => {
            let user = users::find_for_login_by_id(&services.db, id).await?;
            let email_key = user.as_ref().map_or("", |u| u.email_key.as_str());
            let mut attempt = Attempt::password(key, email_key, ip);
            attempt.take_turn(&services.checks_in_flight)?;
            let standing = attempt.read(&services.db, now).await?;
            (user, attempt, standing)
        }
    };
    let user_id = user.as_ref().map(|u| u.id);
    if let Err(throttled) = attempt.judge(standing, now) {
        let event = anonymous(Kind::LoginThrottled, user_id, "refused", json!({}));
        services.audit.record(&services.db, ctx, event).await?;
        return Err(throttled);
    }

    let password = SecretString::from(password_policy::normalize(password));
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let verified = services.passwords.verify(slot, password, stored).await?;
    let now = services.clock.now();
    match (user, verified) {
        (Some(user), Verified::Yes { rehash }) if !user.disabled => {
            attempt.succeeded(&services.db).await?;
            if let Some(hash) = rehash {
                users::update_password_hash(&services.db, user.id, &hash, now).await?;
            }
            Ok(user)
        }
        (user, verified) => {
            let reason = match (&user, verified) {
                (None, _) => "unknown_account",
                (Some(u), _) if u.password_hash.is_none() => "no_password",
                (Some(_), Verified::Yes { .. }) => "account_disabled",
                (Some(_), Verified::No) => "wrong_password",
            };
            let event = anonymous(
                failure_kind,
                user_id,
                "failure",
                json!({ "reason": reason }),
            );
            let mut tx = services.db.begin().await?;
            attempt
                .failed(&mut tx, &services.settings.throttle, now)
                .await?;
            services.audit.append(&mut tx, ctx, event).await?;
            tx.commit().await?;
            Err(Error::InvalidCredentials)
        }
    }
}

/// An event about an account by someone not (yet) proven to be its owner.
fn anonymous(
    kind: Kind,
    subject: Option<Uuid>,
    outcome: &'static str,
    details: serde_json::Value,
) -> Event {
    Event {
        kind,
        actor: None,
        subject,
        outcome,
        details,
    }
}
