//! Admin actions on accounts. Each checks that the account exists (404
//! otherwise, like a malformed id), and each, reads included, is audited
//! with the admin as actor, the account as subject, and the reason.
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::admin::authorize::AdminCaller;
use crate::domain::admin::permissions;
use crate::domain::audit::{Context, Event, Kind};
use crate::domain::lifecycle::tokens::{self, Purpose};
use crate::domain::mail::templates::Template;
use crate::domain::mail::{self, Job};
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::admin::{self as store, UserRow};
use crate::storage::{mfa, sessions, users};

/// One page of accounts, and where the next starts.
pub struct UsersPage {
    pub users: Vec<UserRow>,
    pub next: Option<(OffsetDateTime, Uuid)>,
}

/// An admin's action, for the audit log (`"by": "cli"` from the command
/// line, which has no account).
fn event(kind: Kind, caller: AdminCaller, subject: Option<Uuid>, mut details: Value) -> Event {
    if caller.user_id.is_none() {
        details["by"] = json!("cli");
    }
    Event {
        kind,
        actor: caller.user_id,
        subject,
        outcome: "success",
        details,
    }
}

/// Appends the action's audit event in the action's own transaction and
/// commits both: an admin change never lands without its record. The
/// account's cached sessions and profile are dropped at once.
async fn commit_audited(
    services: &Services,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    ctx: &Context,
    event: Event,
) -> Result<()> {
    let subject = event.subject;
    services.audit.append(&mut tx, ctx, event).await?;
    services
        .session_cache
        .commit(&services.db, tx, subject)
        .await?;
    Ok(())
}

pub async fn list(
    services: &Services,
    ctx: &Context,
    caller: AdminCaller,
    prefix: Option<&str>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<UsersPage> {
    let now = services.clock.now();
    let prefix = prefix.map(str::to_lowercase);
    let mut rows =
        store::list_users(&services.db, now, after, prefix.as_deref(), limit + 1).await?;
    let next = crate::domain::paging::trim(&mut rows, limit).map(|r| (r.created_at, r.id));
    let details = json!({ "email_prefix": prefix.is_some(), "returned": rows.len() });
    let listed = event(Kind::AdminUsersListed, caller, None, details);
    services.audit.record(&services.db, ctx, listed).await?;
    Ok(UsersPage { users: rows, next })
}

pub async fn get(
    services: &Services,
    ctx: &Context,
    caller: AdminCaller,
    id: Uuid,
) -> Result<UserRow> {
    let row = store::user(&services.db, id, services.clock.now())
        .await?
        .ok_or(Error::NotFound)?;
    let viewed = event(Kind::AdminUserViewed, caller, Some(id), json!({}));
    services.audit.record(&services.db, ctx, viewed).await?;
    Ok(row)
}

/// Disables (every session ends at once) or enables the account. The last
/// enabled admin cannot be disabled.
pub async fn set_disabled(
    services: &Services,
    ctx: &Context,
    caller: AdminCaller,
    (id, disabled): (Uuid, bool),
    reason: &str,
) -> Result<()> {
    let now = services.clock.now();
    let mut tx = services.db.begin().await?;
    if disabled {
        // Before anything is read: a concurrent disable of the other admin
        // waits, then sees this one.
        store::lock_admins(&mut *tx).await?;
        if store::is_last_admin(&mut *tx, id).await? {
            return Err(Error::LastAdmin);
        }
    }
    if !store::set_disabled(&mut *tx, id, disabled, now).await? {
        return Err(Error::NotFound);
    }
    let mut details = json!({ "reason": reason });
    if disabled {
        let revoked = sessions::revoke_all(&mut *tx, id, None, "account_disabled", now).await?;
        mfa::drop_challenges(&mut *tx, id).await?;
        details["sessions_revoked"] = json!(revoked);
    }
    let kind = if disabled {
        Kind::AccountDisabled
    } else {
        Kind::AccountEnabled
    };
    commit_audited(services, tx, ctx, event(kind, caller, Some(id), details)).await?;
    Ok(())
}

/// Replaces the account's roles (`user` is always kept). Unknown roles are
/// refused, and so is a change that leaves no enabled admin. Sessions of an
/// account that now holds an admin-plane role fall under the admin cap.
pub async fn set_roles(
    services: &Services,
    ctx: &Context,
    caller: AdminCaller,
    id: Uuid,
    requested: &[String],
    reason: &str,
) -> Result<Vec<String>> {
    if let Some(unknown) = requested.iter().find(|r| !permissions::is_known(r)) {
        let known: Vec<&str> = permissions::ROLES.iter().map(|(name, _)| *name).collect();
        return Err(Error::InvalidRequest(format!(
            "unknown role {unknown:?} (known: {})",
            known.join(", ")
        )));
    }
    let mut roles: Vec<String> = requested.to_vec();
    roles.push("user".into());
    roles.sort();
    roles.dedup();
    let now = services.clock.now();
    let mut tx = services.db.begin().await?;
    if users::email_of(&mut *tx, id).await?.is_none() {
        return Err(Error::NotFound);
    }
    if !store::replace_roles(&mut tx, id, &roles, now).await? {
        return Err(Error::LastAdmin);
    }
    store::cap_sessions(&mut *tx, id, services.settings.admin.session_max_secs).await?;
    let details = json!({ "reason": reason, "roles": roles });
    commit_audited(
        services,
        tx,
        ctx,
        event(Kind::RolesChanged, caller, Some(id), details),
    )
    .await?;
    Ok(roles)
}

pub async fn revoke_sessions(
    services: &Services,
    ctx: &Context,
    caller: AdminCaller,
    id: Uuid,
    reason: &str,
) -> Result<u64> {
    let now = services.clock.now();
    let mut tx = services.db.begin().await?;
    let target = store::user(&mut *tx, id, now)
        .await?
        .ok_or(Error::NotFound)?;
    if !caller.outranks(&target.roles) {
        return Err(Error::Forbidden);
    }
    let revoked = sessions::revoke_all(&mut *tx, id, None, "revoked_by_admin", now).await?;
    let details = json!({ "reason": reason, "sessions_revoked": revoked });
    commit_audited(
        services,
        tx,
        ctx,
        event(Kind::SessionsRevokedByAdmin, caller, Some(id), details),
    )
    .await?;
    Ok(revoked)
}

/// Removes TOTP and the recovery codes (a lost phone); the account is told
/// by mail.
pub async fn reset_mfa(
    services: &Services,
    ctx: &Context,
    caller: AdminCaller,
    id: Uuid,
    reason: &str,
) -> Result<()> {
    let now = services.clock.now();
    let mut tx = services.db.begin().await?;
    let account = users::mail_account(&mut *tx, id)
        .await?
        .ok_or(Error::NotFound)?;
    let removed = mfa::remove(&mut tx, id, now).await?;
    if removed {
        mail::notify(services, &mut tx, &account, Template::MfaDisabled).await?;
    }
    let details = json!({ "reason": reason, "had_mfa": removed });
    commit_audited(
        services,
        tx,
        ctx,
        event(Kind::MfaResetByAdmin, caller, Some(id), details),
    )
    .await?;
    services.mail.wake();
    Ok(())
}

/// Mails an unverified account a new verification link (no mail for a
/// verified one; the call still succeeds).
pub async fn resend_verification(
    services: &Services,
    ctx: &Context,
    caller: AdminCaller,
    id: Uuid,
    reason: &str,
) -> Result<()> {
    let mut tx = services.db.begin().await?;
    let account = users::mail_account(&mut *tx, id)
        .await?
        .ok_or(Error::NotFound)?;
    let sent = !account.email_verified && !account.disabled;
    if sent {
        let token = tokens::issue(services, &mut tx, id, Purpose::VerifyEmail, None).await?;
        let job = Job::Send {
            to: account.email.clone(),
            locale: account.locale.clone(),
            template: Template::VerifyEmail,
            link: Some(mail::link(services, "verify-email", token.expose())),
        };
        let now = services.clock.now();
        services.mail.enqueue(&mut tx, Some(id), &job, now).await?;
    }
    let details = json!({ "reason": reason, "sent": sent });
    commit_audited(
        services,
        tx,
        ctx,
        event(Kind::VerificationResentByAdmin, caller, Some(id), details),
    )
    .await?;
    services.mail.wake();
    Ok(())
}
