//! Requests that name an address (forgot password, resend verification)
//! are queued as they come, whatever the address; the mail worker resolves
//! them here, off the request path: only an address with an account (and,
//! for a resend, an unverified one) gets a mail, within its hourly cap.
use sqlx::PgConnection;

use crate::domain::lifecycle::tokens::{self, Purpose};
use crate::domain::mail::templates::Template;
use crate::domain::mail::{self, Job};
use crate::domain::services::Services;
use crate::error::Result;
use crate::storage::users;

pub async fn resolve(services: &Services, conn: &mut PgConnection, job: Job) -> Result<()> {
    let (email_key, purpose) = match &job {
        Job::ForgotPassword { email_key } => (email_key, Purpose::ResetPassword),
        Job::ResendVerification { email_key } => (email_key, Purpose::VerifyEmail),
        Job::Send { .. } => return Ok(()),
    };
    let Some(account) = users::find_for_mail(&mut *conn, email_key).await? else {
        return Ok(());
    };
    let wanted = match purpose {
        // A federated account has no password to reset: like an unknown address.
        Purpose::ResetPassword => !account.disabled && account.has_password,
        _ => !account.disabled && !account.email_verified,
    };
    if !wanted || !mail::within_quota(services, conn, email_key).await? {
        return Ok(());
    }
    let token = tokens::issue(services, conn, account.id, purpose, None).await?;
    let (template, page) = match purpose {
        Purpose::ResetPassword => (Template::ResetPassword, "reset-password"),
        _ => (Template::VerifyEmail, "verify-email"),
    };
    let send = Job::Send {
        to: account.email,
        locale: account.locale,
        template,
        link: Some(mail::link(services, page, token.expose())),
    };
    let now = services.clock.now();
    services
        .mail
        .enqueue(conn, Some(account.id), &send, now)
        .await
}
