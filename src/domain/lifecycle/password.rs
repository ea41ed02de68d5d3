//! A forgotten password (a mailed reset link) and a password change. Both
//! apply the policy, end the account's sessions (all of them after a reset;
//! all but the caller's after a change), and tell the account by mail. MFA
//! stays on: a reset link replaces the password, not the second factor.
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::credentials::{self, Account};
use crate::domain::email::Email;
use crate::domain::lifecycle::tokens::{self, Purpose};
use crate::domain::mail::templates::Template;
use crate::domain::mail::{self, Job};
use crate::domain::password_policy;
use crate::domain::refresh_tokens::PlainToken;
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::{account_tokens, mfa, sessions, users};

/// Queues a reset mail for `email` if it has an account; answers the same
/// either way.
pub async fn forgot(services: &Services, email: &str) -> Result<()> {
    // Accounts from before the current address rules are found by
    // their old key, as at login.
    let email = Email::parse(email).or_else(|_| Email::parse_legacy(email))?;
    let job = Job::ForgotPassword {
        email_key: email.key().to_owned(),
    };
    super::verification::queue(services, &job).await
}

/// Sets a new password with a reset token. A password the policy refuses
/// leaves the token usable.
pub async fn reset(
    services: &Services,
    ctx: &Context,
    presented: &str,
    new_password: &str,
) -> Result<()> {
    let token = PlainToken::parse(presented).ok_or(Error::InvalidLinkToken)?;
    let hash = token.hash();
    let purpose = Purpose::ResetPassword.as_str();
    let now = services.clock.now();
    let user_id = account_tokens::peek(&services.db, &hash, purpose, now)
        .await?
        .ok_or(Error::InvalidLinkToken)?;
    let new_hash = hash_acceptable(services, user_id, new_password).await?;
    let mut tx = services.db.begin().await?;
    if account_tokens::spend(&mut *tx, &hash, &[purpose], now)
        .await?
        .is_none()
    {
        return Err(Error::InvalidLinkToken);
    }
    users::update_password_hash(&mut *tx, user_id, &new_hash, now).await?;
    let revoked = sessions::revoke_all(&mut *tx, user_id, None, "password_reset", now).await?;
    finish(services, ctx, &mut tx, user_id, "reset", revoked).await?;
    services
        .session_cache
        .commit(&services.db, tx, Some(user_id))
        .await?;
    services.mail.wake();
    Ok(())
}

/// Changes the password of the caller, who proves the current one; every
/// other session of the account ends.
pub async fn change(
    services: &Services,
    ctx: &Context,
    (user_id, session_id): (Uuid, Uuid),
    current: &str,
    new_password: &str,
) -> Result<()> {
    let account = Account::ById(user_id);
    credentials::check_password(services, ctx, account, current, Kind::PasswordChanged).await?;
    let new_hash = hash_acceptable(services, user_id, new_password).await?;
    let now = services.clock.now();
    let mut tx = services.db.begin().await?;
    users::update_password_hash(&mut *tx, user_id, &new_hash, now).await?;
    let revoked =
        sessions::revoke_all(&mut *tx, user_id, Some(session_id), "password_changed", now).await?;
    finish(services, ctx, &mut tx, user_id, "change", revoked).await?;
    services
        .session_cache
        .commit(&services.db, tx, Some(user_id))
        .await?;
    services.mail.wake();
    Ok(())
}

/// The new password's hash, if the policy accepts it for this account.
async fn hash_acceptable(services: &Services, user_id: Uuid, password: &str) -> Result<String> {
    let stored = users::email_of(&services.db, user_id)
        .await?
        .ok_or(Error::InvalidLinkToken)?;
    let email = Email::parse(&stored).or_else(|_| Email::parse_legacy(&stored))?;
    let reasons = password_policy::violations(password, &email, &services.settings.password);
    if !reasons.is_empty() {
        return Err(Error::WeakPassword(reasons));
    }
    let normalized = SecretString::from(password_policy::normalize(password));
    services.passwords.hash(normalized).await
}

/// Voids what the old password could have started (an address change, a
/// reset link, an MFA login past its password step), then the audit event
/// and the "password changed" mail. Otherwise someone who knew the old
/// password could still finish moving the account to an address of theirs.
async fn finish(
    services: &Services,
    ctx: &Context,
    tx: &mut sqlx::PgConnection,
    user_id: Uuid,
    how: &str,
    revoked_sessions: u64,
) -> Result<()> {
    let pending = [Purpose::ChangeEmail, Purpose::ResetPassword];
    tokens::void(&mut *tx, user_id, &pending).await?;
    mfa::drop_challenges(&mut *tx, user_id).await?;
    if let Some(account) = users::mail_account(&mut *tx, user_id).await? {
        mail::notify(services, tx, &account, Template::PasswordChanged).await?;
    }
    let details = json!({ "via": how, "sessions_revoked": revoked_sessions });
    let event = Event::by_user(Kind::PasswordChanged, user_id, "success", details);
    services.audit.append(tx, ctx, event).await?;
    Ok(())
}
