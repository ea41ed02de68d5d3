//! The tamper-evident audit log.
//!
//! Every security-relevant action appends one event. Events never hold an
//! email address, password, token, code or secret: only ids, the client IP,
//! a truncated user agent, the request id, an outcome and small details.
//!
//! Each event is chained: `hash = HMAC-SHA256(audit key, prev_hash ||
//! canonical(event))`. The audit key is random and stored sealed under the
//! master key, so database access alone cannot forge a consistent chain, and
//! a master-key rotation re-seals it without breaking the chain. Appends take
//! a transaction-scoped lock, so sequence numbers have no forks or gaps; they
//! run inside the caller's transaction (atomic with the action) and always
//! as its last statement, never across an Argon2 call.
use serde_json::Value;
use sqlx::types::ipnetwork::IpNetwork;
use sqlx::{PgConnection, PgPool};
use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

mod activity;
mod canonical;

pub use activity::{ActivityEvent, ActivityPage, activity};
use canonical::{canonical, personal_aad};

use crate::crypto::DataKey;
use crate::domain::user_keys::UserKeys;
use crate::error::Result;
use crate::storage::audit::{self as store, StoredEvent};
use serde::{Deserialize, Serialize};

const KEY_PURPOSE: &str = "audit-hmac";
const GENESIS: [u8; 32] = [0; 32];
const MAX_USER_AGENT_CHARS: usize = 256;

/// Who and where an action came from.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Context {
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>, request_id: Option<&str>) -> Self {
        Self {
            ip,
            user_agent: user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
            request_id: request_id.map(str::to_owned),
        }
    }

    /// Actions taken by an operator through the command line.
    pub fn cli() -> Self {
        Self::new(None, Some("authd-cli"), None)
    }
}

/// The kinds of events; their names are stable identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Signup,
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    Logout,
    RefreshTokenReuseDetected,
    SigningKeyRotated,
    MasterKeyRotated,
    MfaSetup,
    MfaActivated,
    MfaDisabled,
    RecoveryCodesRegenerated,
    MfaChallenged,
    MfaSucceeded,
    MfaFailed,
    RecoveryCodeUsed,
    EmailVerified,
    EmailChangeRequested,
    EmailChanged,
    PasswordChanged,
    SessionRevoked,
    AccountDeleted,
    AdminUsersListed,
    AdminUserViewed,
    AccountDisabled,
    AccountEnabled,
    RolesChanged,
    SessionsRevokedByAdmin,
    MfaResetByAdmin,
    VerificationResentByAdmin,
    AdminAuditRead,
    FederationFailed,
    FederatedAccountCreated,
    FederatedIdentityLinked,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Signup => "signup",
            Kind::LoginSucceeded => "login_succeeded",
            Kind::LoginFailed => "login_failed",
            Kind::LoginThrottled => "login_throttled",
            Kind::Logout => "logout",
            Kind::RefreshTokenReuseDetected => "refresh_token_reuse_detected",
            Kind::SigningKeyRotated => "signing_key_rotated",
            Kind::MasterKeyRotated => "master_key_rotated",
            Kind::MfaSetup => "mfa_setup",
            Kind::MfaActivated => "mfa_activated",
            Kind::MfaDisabled => "mfa_disabled",
            Kind::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Kind::MfaChallenged => "mfa_challenged",
            Kind::MfaSucceeded => "mfa_succeeded",
            Kind::MfaFailed => "mfa_failed",
            Kind::RecoveryCodeUsed => "recovery_code_used",
            Kind::EmailVerified => "email_verified",
            Kind::EmailChangeRequested => "email_change_requested",
            Kind::EmailChanged => "email_changed",
            Kind::PasswordChanged => "password_changed",
            Kind::SessionRevoked => "session_revoked",
            Kind::AccountDeleted => "account_deleted",
            Kind::AdminUsersListed => "admin_users_listed",
            Kind::AdminUserViewed => "admin_user_viewed",
            Kind::AccountDisabled => "account_disabled",
            Kind::AccountEnabled => "account_enabled",
            Kind::RolesChanged => "roles_changed",
            Kind::SessionsRevokedByAdmin => "sessions_revoked_by_admin",
            Kind::MfaResetByAdmin => "mfa_reset_by_admin",
            Kind::VerificationResentByAdmin => "verification_resent_by_admin",
            Kind::AdminAuditRead => "admin_audit_read",
            Kind::FederationFailed => "federation_failed",
            Kind::FederatedAccountCreated => "federated_account_created",
            Kind::FederatedIdentityLinked => "federated_identity_linked",
        }
    }
}

/// One event to append.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub actor: Option<Uuid>,
    pub subject: Option<Uuid>,
    pub outcome: &'static str,
    pub details: Value,
}

impl Event {
    /// The account the event's personal fields (the request's IP and user
    /// agent) belong to: the actor, whose request it was, else the
    /// subject. An admin's address is the admin's: sealed under the
    /// admin's key, it is neither shown to the account acted on nor lost
    /// when that account is deleted (`StoredEvent::owners` reads it back).
    pub fn owner(&self) -> Option<Uuid> {
        self.actor.or(self.subject)
    }

    /// An action a user took on their own account.
    pub fn by_user(kind: Kind, user: Uuid, outcome: &'static str, details: Value) -> Self {
        Self {
            kind,
            actor: Some(user),
            subject: Some(user),
            outcome,
            details,
        }
    }
}

pub struct AuditLog {
    key: DataKey,
    user_keys: UserKeys,
}

/// The personal fields of an event, as sealed under an account's key.
#[derive(Serialize, Deserialize)]
struct Personal {
    ip: Option<IpAddr>,
    user_agent: Option<String>,
}

impl AuditLog {
    /// Opens the sealed audit key, creating it on first use.
    pub async fn load_or_create(
        db: &PgPool,
        master: &crate::crypto::MasterKey,
        now: OffsetDateTime,
    ) -> anyhow::Result<Self> {
        let key = crate::domain::data_keys::load_or_create(db, master, KEY_PURPOSE, now).await?;
        let sealing = master.derive(crate::crypto::master_key::labels::DATA_KEYS)?;
        Ok(Self {
            key,
            user_keys: UserKeys::new(sealing),
        })
    }

    /// Per-account keys (for reading one's own events, and for deletion).
    pub fn user_keys(&self) -> &UserKeys {
        &self.user_keys
    }

    /// Holds off every append (and so every new account data key) until
    /// the caller's transaction ends.
    pub async fn lock_chain(&self, conn: &mut PgConnection) -> Result<()> {
        store::lock_chain(conn).await?;
        Ok(())
    }

    /// Appends `event` inside the caller's transaction; returns its sequence
    /// number. Call it last: the chain lock is held until commit.
    pub async fn append(
        &self,
        conn: &mut PgConnection,
        ctx: &Context,
        event: Event,
    ) -> Result<i64> {
        // Personal fields are sealed under their owner's key, read with the lock.
        let owner = event
            .owner()
            .filter(|_| ctx.ip.is_some() || ctx.user_agent.is_some());
        let head = store::lock_head(&mut *conn, owner).await?;
        let (sealed_key, occurred_at) = (head.owner_key, head.occurred_at);
        let (seq, prev_hash) = match head.head_seq.zip(head.head_hash) {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_vec()),
        };
        let personal = match owner {
            Some(owner) => {
                self.seal_personal(conn, (owner, sealed_key), ctx, (seq, occurred_at))
                    .await?
            }
            None => None,
        };
        let in_clear = personal.is_none();
        let mut stored = StoredEvent {
            seq,
            occurred_at,
            event_type: event.kind.as_str().to_owned(),
            actor_user_id: event.actor,
            subject_user_id: event.subject,
            client_ip: ctx.ip.filter(|_| in_clear).map(IpNetwork::from),
            user_agent: ctx.user_agent.clone().filter(|_| in_clear),
            request_id: ctx.request_id.clone(),
            outcome: event.outcome.to_owned(),
            details: event.details,
            personal_enc: personal,
            prev_hash,
            hash: Vec::new(),
        };
        stored.hash = self.chain_hash(&stored)?.to_vec();
        store::insert(&mut *conn, &stored).await?;
        Ok(seq)
    }

    /// The client IP and user agent sealed under the account's key, for an
    /// event about an account that still exists; `None` otherwise (the
    /// fields are then stored as they are: they belong to no account).
    async fn seal_personal(
        &self,
        conn: &mut PgConnection,
        (user_id, sealed_key): (Uuid, Option<Vec<u8>>),
        ctx: &Context,
        (seq, now): (i64, OffsetDateTime),
    ) -> Result<Option<Vec<u8>>> {
        let key = self
            .user_keys
            .open_or_create(conn, user_id, sealed_key, now)
            .await?;
        let Some(key) = key else {
            return Ok(None);
        };
        let personal = Personal {
            ip: ctx.ip,
            user_agent: ctx.user_agent.clone(),
        };
        let plain = serde_json::to_vec(&personal).map_err(|e| crate::Error::Internal(e.into()))?;
        Ok(Some(key.seal(&personal_aad(seq, user_id), &plain)?))
    }

    /// The client IP and user agent of `event`: in the clear, or opened
    /// with the key `key_of` gives for the account that sealed them (none
    /// once that account is deleted, or for a reader not allowed them).
    pub fn personal<'k>(
        event: &StoredEvent,
        key_of: impl Fn(Uuid) -> Option<&'k DataKey>,
    ) -> (Option<IpAddr>, Option<String>) {
        let Some(sealed) = &event.personal_enc else {
            return (event.client_ip.map(|ip| ip.ip()), event.user_agent.clone());
        };
        let opened = event.owners().find_map(|owner| {
            let plain = key_of(owner)?
                .open(&personal_aad(event.seq, owner), sealed)
                .ok()?;
            serde_json::from_slice::<Personal>(&plain).ok()
        });
        match opened {
            Some(p) => (p.ip, p.user_agent),
            None => (None, None),
        }
    }

    /// Appends `event` in a transaction of its own.
    pub async fn record(&self, db: &PgPool, ctx: &Context, event: Event) -> Result<i64> {
        let mut tx = db.begin().await?;
        let seq = self.append(&mut tx, ctx, event).await?;
        tx.commit().await?;
        Ok(seq)
    }

    fn chain_hash(&self, event: &StoredEvent) -> anyhow::Result<[u8; 32]> {
        let mut input = event.prev_hash.clone();
        input.extend(canonical(event)?);
        Ok(self.key.hmac(&input))
    }

    /// Walks the whole chain from the first event.
    pub async fn verify(&self, db: &PgPool) -> anyhow::Result<Verdict> {
        let mut expected_seq = 1;
        let mut prev = GENESIS.to_vec();
        loop {
            let page = store::page(db, expected_seq - 1, 1000).await?;
            if page.is_empty() {
                return Ok(Verdict::Intact {
                    events: expected_seq - 1,
                });
            }
            for event in page {
                if let Some(reason) = self.check(&event, expected_seq, &prev) {
                    return Ok(Verdict::Broken {
                        seq: expected_seq,
                        reason,
                    });
                }
                prev = event.hash;
                expected_seq += 1;
            }
        }
    }

    fn check(&self, event: &StoredEvent, expected_seq: i64, prev: &[u8]) -> Option<String> {
        if event.seq != expected_seq {
            return Some(format!(
                "events {expected_seq}..{} are missing (deleted)",
                event.seq - 1
            ));
        }
        if event.prev_hash != prev {
            return Some("prev_hash does not match the previous event's hash".into());
        }
        match self.chain_hash(event) {
            Ok(hash) if hash[..] == event.hash[..] => None,
            Ok(_) => Some("hash mismatch: the event was altered".into()),
            Err(e) => Some(format!("the event cannot be encoded: {e}")),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact { events: i64 },
    Broken { seq: i64, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_truncated() {
        let ctx = Context::new(None, Some(&"x".repeat(1000)), None);
        assert_eq!(ctx.user_agent.map(|u| u.len()), Some(256));
    }
}
