//! Which account a provider's identity signs in to, and its roles.
//!
//! The account is found by (provider, `sub`). Only when the provider is
//! configured with `link_by_verified_email`, says the address is verified,
//! and exactly one local account holds that address (or reads like it), and
//! that account's address is verified too, is an existing account linked;
//! linking removes its password and ends its sessions, so that it too
//! answers to the provider alone. Otherwise, with `auto_provision`, a new account without a password is
//! created. Roles are the default ones plus those `group_roles` maps the
//! provider's groups to, set at every sign-in: a group removed upstream
//! takes its role away.
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::ProviderSettings;
use crate::domain::audit::{Context, Event, Kind};
use crate::domain::email::Email;
use crate::domain::federation::id_token::Identity;
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::federation as store;
use crate::storage::sessions;
use crate::storage::users::{self, NewUser};

type Tx<'t> = sqlx::Transaction<'t, sqlx::Postgres>;

/// Refuses an account outside `hosted_domain` (when set), and an address
/// outside `allowed_email_domains` (when set): only a verified address
/// counts.
pub fn check_domain(settings: &ProviderSettings, identity: &Identity) -> Result<()> {
    if let Some(required) = &settings.hosted_domain
        && !identity
            .hosted_domain
            .as_deref()
            .is_some_and(|hd| hd.eq_ignore_ascii_case(required.trim()))
    {
        return Err(Error::EmailDomainNotAllowed);
    }
    if settings.allowed_email_domains.is_empty() {
        return Ok(());
    }
    let email = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified)
        .and_then(|raw| Email::parse(raw).ok())
        .ok_or(Error::EmailDomainNotAllowed)?;
    let domain = email.key().rsplit_once('@').map_or("", |(_, d)| d);
    let ascii = idna::domain_to_ascii(domain).unwrap_or_default();
    let allowed = settings
        .allowed_email_domains
        .iter()
        .any(|d| idna::domain_to_ascii(d.trim()).is_ok_and(|d| d.eq_ignore_ascii_case(&ascii)));
    if allowed {
        Ok(())
    } else {
        Err(Error::EmailDomainNotAllowed)
    }
}

/// The account a sign-in resolved to.
pub struct Resolved {
    pub user_id: Uuid,
    /// Linking just ended the account's earlier sessions.
    pub sessions_ended: bool,
}

impl Resolved {
    fn found(user_id: Uuid) -> Self {
        Self {
            user_id,
            sessions_ended: false,
        }
    }
}

/// The account `identity` signs in to, found, linked or created in `tx`.
pub async fn resolve(
    services: &Services,
    ctx: &Context,
    tx: &mut Tx<'_>,
    (provider, settings): (&str, &ProviderSettings),
    identity: &Identity,
) -> Result<Resolved> {
    let now = services.clock.now();
    if let Some(user_id) = store::find_identity(&mut **tx, provider, &identity.subject, now).await?
    {
        return Ok(Resolved::found(user_id));
    }
    let email = identity
        .email
        .as_deref()
        .and_then(|raw| Email::parse(raw).ok());
    if settings.link_by_verified_email
        && identity.email_verified
        && let Some(email) = &email
    {
        let candidates = store::link_candidates(&mut **tx, email.key(), email.skeleton()).await?;
        match candidates.as_slice() {
            [] => {}
            [one] if one.exact && one.email_verified => {
                if !store::link(&mut **tx, provider, &identity.subject, one.id, now).await? {
                    return Err(Error::FederationDenied("linked_to_another_subject"));
                }
                // From now on the provider alone decides who this is and
                // which roles they hold: a password (and its sessions)
                // would outlive their removal from a group, or from the
                // company.
                users::remove_password(&mut **tx, one.id, now).await?;
                let revoked =
                    sessions::revoke_all(&mut **tx, one.id, None, "federated_identity_linked", now)
                        .await?;
                let details = json!({ "provider": provider, "sessions_revoked": revoked });
                let event =
                    Event::by_user(Kind::FederatedIdentityLinked, one.id, "success", details);
                services.audit.append(tx, ctx, event).await?;
                return Ok(Resolved {
                    user_id: one.id,
                    sessions_ended: revoked > 0,
                });
            }
            [one] if !one.email_verified => {
                return Err(Error::FederationDenied("local_address_unverified"));
            }
            _ => return Err(Error::FederationDenied("ambiguous_address")),
        }
    }
    if !settings.auto_provision {
        return Err(Error::FederationDenied("not_provisioned"));
    }
    let email = email.ok_or(Error::FederationDenied("no_usable_address"))?;
    let user_id = provision(services, ctx, tx, (provider, identity, &email), now).await?;
    Ok(Resolved::found(user_id))
}

async fn provision(
    services: &Services,
    ctx: &Context,
    tx: &mut Tx<'_>,
    (provider, identity, email): (&str, &Identity, &Email),
    now: OffsetDateTime,
) -> Result<Uuid> {
    let user = NewUser {
        id: Uuid::new_v4(),
        email: email.as_str(),
        locale: crate::domain::mail::templates::DEFAULT_LOCALE,
        email_key: email.key(),
        email_skeleton: email.skeleton(),
        password_hash: None,
        email_verified: identity.email_verified,
        now,
    };
    if !users::insert_if_absent(&mut **tx, &user).await? {
        // The address (or a look-alike) belongs to a local account that
        // this provider may not link to.
        return Err(Error::FederationDenied("address_taken"));
    }
    store::link(&mut **tx, provider, &identity.subject, user.id, now).await?;
    let details = json!({ "provider": provider });
    let event = Event::by_user(Kind::FederatedAccountCreated, user.id, "created", details);
    services.audit.append(tx, ctx, event).await?;
    Ok(user.id)
}

/// The roles the provider's groups give: the default roles, plus each
/// mapped group's role, sorted and without repeats.
pub fn roles_from_groups(
    services: &Services,
    settings: &ProviderSettings,
    groups: &[String],
) -> Vec<String> {
    let mut roles: Vec<String> = services.settings.auth.default_roles.clone();
    roles.extend(
        groups
            .iter()
            .filter_map(|g| settings.group_roles.get(g))
            .cloned(),
    );
    roles.sort();
    roles.dedup();
    roles
}

/// Sets the account's roles to `roles` (audited when they change); refuses
/// a disabled account.
pub async fn apply_roles(
    services: &Services,
    ctx: &Context,
    tx: &mut Tx<'_>,
    (provider, user_id): (&str, Uuid),
    roles: &[String],
) -> Result<()> {
    let user = store::user_for_sign_in(&mut **tx, user_id)
        .await?
        .ok_or(Error::FederationDenied("account_gone"))?;
    if user.disabled {
        return Err(Error::FederationDenied("account_disabled"));
    }
    if user.roles != roles {
        store::set_roles(tx, user_id, roles, services.clock.now()).await?;
        let details = json!({ "by": "federation", "provider": provider, "roles": roles, "before": user.roles });
        // No actor: the provider, not a person, decided.
        let event = Event {
            kind: Kind::RolesChanged,
            actor: None,
            subject: Some(user_id),
            outcome: "success",
            details,
        };
        services.audit.append(tx, ctx, event).await?;
    }
    Ok(())
}
