//! Moving an account to a new address: the password confirms the request;
//! a token goes to the new address and a notice to the old one; the move
//! happens only when the token comes back (`verification::verify`), which
//! proves the new address is the user's. A new address that already has an
//! account (or reads like one) gets "an account already exists" instead of
//! a token, and the caller the same 202, so the endpoint tells nothing
//! about other accounts.
use serde_json::json;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::credentials::{self, Account};
use crate::domain::email::Email;
use crate::domain::lifecycle::tokens::{self, Purpose};
use crate::domain::mail::templates::Template;
use crate::domain::mail::{self, Job};
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::users;

pub async fn request(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    new_email: &str,
    password: &str,
) -> Result<()> {
    let new_email = Email::parse(new_email)?;
    credentials::check_password(
        services,
        ctx,
        Account::ById(user_id),
        password,
        Kind::EmailChangeRequested,
    )
    .await?;
    let mut tx = services.db.begin().await?;
    let account = users::mail_account(&mut *tx, user_id)
        .await?
        .ok_or(Error::InvalidToken)?;
    let taken = users::find_taken(&mut *tx, new_email.key(), new_email.skeleton()).await?;
    let to_new = match taken {
        Some((owner, _)) if owner == user_id => None,
        Some(_) => Some((Template::AccountExists, None)),
        None => {
            let token = tokens::issue(
                services,
                &mut tx,
                user_id,
                Purpose::ChangeEmail,
                Some(new_email.as_str()),
            )
            .await?;
            let link = mail::link(services, "verify-email", token.expose());
            Some((Template::ConfirmNewEmail, Some(link)))
        }
    };
    if let Some((template, link)) = to_new
        && mail::within_quota(services, &mut tx, new_email.key()).await?
    {
        let job = Job::Send {
            to: new_email.as_str().to_owned(),
            locale: account.locale.clone(),
            template,
            link,
        };
        let now = services.clock.now();
        services
            .mail
            .enqueue(&mut tx, Some(user_id), &job, now)
            .await?;
    }
    mail::notify(services, &mut tx, &account, Template::EmailChanged).await?;
    let event = Event::by_user(Kind::EmailChangeRequested, user_id, "pending", json!({}));
    services.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    services.mail.wake();
    Ok(())
}
