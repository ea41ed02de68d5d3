//! Deleting one's own account: the password, and a second factor when MFA
//! is on. Every session ends at once (they go with the account), and the
//! address is free for a new signup. The last enabled admin cannot delete
//! theirs, as they could not be disabled.
//!
//! Crypto-shredding: the account's data key goes with the account, so the
//! personal fields of its audit events (sealed under that key) can no
//! longer be read, while the events themselves, and the chain, stay as
//! they were. Nothing else about the account remains in the clear: its
//! sessions, tokens, MFA rows and queued mail are deleted with it, and
//! throttle counters, idempotency keys and mail quotas are keyed by keyed
//! hashes, never by its address or IPs.
use serde_json::json;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::credentials::{self, Account};
use crate::domain::mfa::factor::{self, Against, Factor};
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::{admin, users};

pub async fn delete_account(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    password: &str,
    second_factor: Option<&Factor>,
) -> Result<()> {
    let user = credentials::check_password(
        services,
        ctx,
        Account::ById(user_id),
        password,
        Kind::AccountDeleted,
    )
    .await?;
    // Before the factor is spent, so a refusal costs no recovery code;
    // checked again under the lock below.
    if admin::is_last_admin(&services.db, user_id).await? {
        return Err(Error::LastAdmin);
    }
    if user.mfa_enabled {
        let factor = second_factor.ok_or_else(|| {
            Error::InvalidRequest("MFA is on: send code or recovery_code too".into())
        })?;
        factor::confirm(
            services,
            ctx,
            user_id,
            factor,
            Against::Active,
            Kind::AccountDeleted,
        )
        .await?;
    }
    let mut tx = services.db.begin().await?;
    // As for disabling an admin: under the lock, so that two admins
    // deleting themselves at once cannot each count on the other.
    admin::lock_admins(&mut *tx).await?;
    if admin::is_last_admin(&mut *tx, user_id).await? {
        return Err(Error::LastAdmin);
    }
    // Recorded first, sealed under the account's key, which goes next.
    let event = Event::by_user(Kind::AccountDeleted, user_id, "success", json!({}));
    services.audit.append(&mut tx, ctx, event).await?;
    if !users::delete(&mut *tx, user_id).await? {
        return Err(Error::InvalidToken);
    }
    services
        .session_cache
        .commit(&services.db, tx, Some(user_id))
        .await?;
    Ok(())
}
