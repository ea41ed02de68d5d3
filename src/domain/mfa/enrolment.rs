//! Turning TOTP on and off for one's own account, and renewing recovery
//! codes. Setup and disable ask for the password again (a stolen access
//! token alone changes nothing); activation proves the authenticator works
//! before MFA is enforced; every change is audited without the secret or a
//! code.
use serde_json::json;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::credentials::{self, Account};
use crate::domain::mail::{self, templates::Template};
use crate::domain::mfa::factor::{self, Against, Factor};
use crate::domain::mfa::recovery::{self, RecoveryCode};
use crate::domain::mfa::{qr, totp};
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::{mfa as store, users};

/// What setup shows once: the secret three ways. `Debug` shows none.
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_png: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment([REDACTED])")
    }
}

/// A new pending enrolment (replacing a pending one), once the password is
/// confirmed; `mfa_already_enabled` while one is active.
pub async fn setup(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    password: &str,
) -> Result<Enrolment> {
    let user = credentials::check_password(
        services,
        ctx,
        Account::ById(user_id),
        password,
        Kind::MfaSetup,
    )
    .await?;
    if user.mfa_enabled {
        return Err(Error::MfaAlreadyEnabled);
    }
    let email = users::email_of(&services.db, user_id)
        .await?
        .ok_or(Error::InvalidToken)?;
    let secret = totp::TotpSecret::generate()?;
    let sealed = secret.seal(&services.mfa.secrets, user_id)?;
    let mut tx = services.db.begin().await?;
    if !store::put_pending(&mut *tx, user_id, &sealed, services.clock.now()).await? {
        return Err(Error::MfaAlreadyEnabled);
    }
    let event = Event::by_user(Kind::MfaSetup, user_id, "pending", json!({}));
    services.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    let otpauth_uri = totp::otpauth_uri(&services.settings.mfa.issuer, &email, &secret);
    Ok(Enrolment {
        secret: secret.base32(),
        qr_png: totp::base64(&qr::png(&otpauth_uri)?),
        otpauth_uri,
    })
}

/// Activates the pending enrolment with a first code from the app; returns
/// the first recovery codes.
pub async fn activate(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    code: &str,
) -> Result<Vec<RecoveryCode>> {
    match store::totp(&services.db, user_id).await? {
        None => return Err(Error::MfaSetupRequired),
        Some(row) if row.state == "active" => return Err(Error::MfaAlreadyEnabled),
        Some(_) => {}
    }
    let factor = Factor::Totp(code.to_owned());
    factor::confirm(
        services,
        ctx,
        user_id,
        &factor,
        Against::Pending,
        Kind::MfaActivated,
    )
    .await?;
    let (codes, hashes) = recovery::generate(&services.mfa.recovery, user_id)?;
    let now = services.clock.now();
    let mut tx = services.db.begin().await?;
    if !store::activate(&mut tx, user_id, now).await? {
        return Err(Error::MfaSetupRequired);
    }
    store::replace_recovery_codes(&mut tx, user_id, &hashes, now).await?;
    tell(services, &mut tx, user_id, Template::MfaEnabled).await?;
    let event = Event::by_user(Kind::MfaActivated, user_id, "success", json!({}));
    services.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    services.mail.wake();
    Ok(codes)
}

/// Turns MFA off, given the password and a code (or a recovery code); the
/// recovery codes go too.
pub async fn disable(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    password: &str,
    factor: &Factor,
) -> Result<()> {
    let user = credentials::check_password(
        services,
        ctx,
        Account::ById(user_id),
        password,
        Kind::MfaDisabled,
    )
    .await?;
    if !user.mfa_enabled {
        return Err(Error::MfaNotEnabled);
    }
    factor::confirm(
        services,
        ctx,
        user_id,
        factor,
        Against::Active,
        Kind::MfaDisabled,
    )
    .await?;
    let mut tx = services.db.begin().await?;
    store::remove(&mut tx, user_id, services.clock.now()).await?;
    tell(services, &mut tx, user_id, Template::MfaDisabled).await?;
    let event = Event::by_user(Kind::MfaDisabled, user_id, "success", json!({}));
    services.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    services.mail.wake();
    Ok(())
}

/// Mails the account about the change, at its current address.
async fn tell(
    services: &Services,
    tx: &mut sqlx::PgConnection,
    user_id: Uuid,
    template: Template,
) -> Result<()> {
    match users::mail_account(&mut *tx, user_id).await? {
        Some(account) => mail::notify(services, tx, &account, template).await,
        None => Ok(()),
    }
}

/// A fresh set of recovery codes for a TOTP code; the old set stops
/// working.
pub async fn regenerate(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    code: &str,
) -> Result<Vec<RecoveryCode>> {
    if !matches!(store::totp(&services.db, user_id).await?, Some(row) if row.state == "active") {
        return Err(Error::MfaNotEnabled);
    }
    let factor = Factor::Totp(code.to_owned());
    let kind = Kind::RecoveryCodesRegenerated;
    factor::confirm(services, ctx, user_id, &factor, Against::Active, kind).await?;
    let (codes, hashes) = recovery::generate(&services.mfa.recovery, user_id)?;
    let mut tx = services.db.begin().await?;
    store::replace_recovery_codes(&mut tx, user_id, &hashes, services.clock.now()).await?;
    let event = Event::by_user(kind, user_id, "success", json!({}));
    services.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    Ok(codes)
}
