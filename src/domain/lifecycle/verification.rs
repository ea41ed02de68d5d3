//! Proving an address: the token mailed at signup (or on a resend) marks it
//! verified; the token mailed to a new address moves the account there
//! (and marks it verified, since using the token proves ownership).
use serde_json::json;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::email::Email;
use crate::domain::lifecycle::tokens::{self, Purpose};
use crate::domain::mail::Job;
use crate::domain::refresh_tokens::PlainToken;
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::{account_tokens, users};

/// Spends a verification or address-change token.
pub async fn verify(services: &Services, ctx: &Context, presented: &str) -> Result<()> {
    let token = PlainToken::parse(presented).ok_or(Error::InvalidLinkToken)?;
    let now = services.clock.now();
    let purposes = [Purpose::VerifyEmail.as_str(), Purpose::ChangeEmail.as_str()];
    let mut tx = services.db.begin().await?;
    let spent = account_tokens::spend(&mut *tx, &token.hash(), &purposes, now)
        .await?
        .ok_or(Error::InvalidLinkToken)?;
    let user_id = spent.user_id;
    let event = match spent.new_email {
        None => {
            users::set_verified(&mut *tx, user_id, now).await?;
            Event::by_user(Kind::EmailVerified, user_id, "success", json!({}))
        }
        Some(new_email) => {
            let email = Email::parse(&new_email)?;
            let moved = users::change_email(
                &mut *tx,
                user_id,
                email.as_str(),
                email.key(),
                email.skeleton(),
                now,
            )
            .await?;
            if !moved {
                // Someone registered the address since: the link is void.
                return Err(Error::InvalidLinkToken);
            }
            // Links mailed to the old address must not act on the account
            // now that it lives elsewhere.
            let all = [
                Purpose::VerifyEmail,
                Purpose::ChangeEmail,
                Purpose::ResetPassword,
            ];
            tokens::void(&mut tx, user_id, &all).await?;
            Event::by_user(Kind::EmailChanged, user_id, "success", json!({}))
        }
    };
    services.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Queues a new verification mail for `email` if it has an unverified
/// account; answers the same either way.
pub async fn resend(services: &Services, email: &str) -> Result<()> {
    // Accounts from before the current address rules are found by
    // their old key, as at login.
    let email = Email::parse(email).or_else(|_| Email::parse_legacy(email))?;
    let job = Job::ResendVerification {
        email_key: email.key().to_owned(),
    };
    queue(services, &job).await
}

/// Queues a request job (resolved by the mail worker).
pub(super) async fn queue(services: &Services, job: &Job) -> Result<()> {
    let mut conn = services.db.acquire().await?;
    let now = services.clock.now();
    services.mail.enqueue(&mut conn, None, job, now).await?;
    services.mail.wake();
    Ok(())
}
