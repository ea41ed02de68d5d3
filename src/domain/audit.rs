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

use crate::crypto::DataKey;
use crate::error::Result;
use crate::storage::audit::{self as store, StoredEvent};

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
}

impl AuditLog {
    /// Opens the sealed audit key, creating it on first use.
    pub async fn load_or_create(
        db: &PgPool,
        master: &crate::crypto::MasterKey,
        now: OffsetDateTime,
    ) -> anyhow::Result<Self> {
        let key = crate::domain::data_keys::load_or_create(db, master, KEY_PURPOSE, now).await?;
        Ok(Self { key })
    }

    /// Appends `event` inside the caller's transaction; returns its sequence
    /// number. Call it last: the chain lock is held until commit.
    pub async fn append(
        &self,
        conn: &mut PgConnection,
        ctx: &Context,
        event: Event,
    ) -> Result<i64> {
        store::lock_chain(&mut *conn).await?;
        let (head, occurred_at) = store::head_and_now(&mut *conn).await?;
        let (seq, prev_hash) = match head {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_vec()),
        };
        let mut stored = StoredEvent {
            seq,
            occurred_at,
            event_type: event.kind.as_str().to_owned(),
            actor_user_id: event.actor,
            subject_user_id: event.subject,
            client_ip: ctx.ip.map(IpNetwork::from),
            user_agent: ctx.user_agent.clone(),
            request_id: ctx.request_id.clone(),
            outcome: event.outcome.to_owned(),
            details: event.details,
            prev_hash,
            hash: Vec::new(),
        };
        stored.hash = self.chain_hash(&stored)?.to_vec();
        store::insert(&mut *conn, &stored).await?;
        Ok(seq)
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

/// Length-prefixed fields in a fixed order; absent fields have their own
/// marker so `None` and `""` differ. Built from values as PostgreSQL returns
/// them, so an event read back hashes the same as when it was written. A
/// field too long for its 32-bit prefix is an error, never a truncated or
/// ambiguous encoding.
fn canonical(e: &StoredEvent) -> anyhow::Result<Vec<u8>> {
    let micros = e.occurred_at.unix_timestamp_nanos() / 1000;
    let fields: [Option<String>; 10] = [
        Some(e.seq.to_string()),
        Some(micros.to_string()),
        Some(e.event_type.clone()),
        e.actor_user_id.map(|u| u.to_string()),
        e.subject_user_id.map(|u| u.to_string()),
        e.client_ip.map(|ip| ip.ip().to_string()),
        e.user_agent.clone(),
        e.request_id.clone(),
        Some(e.outcome.clone()),
        Some(canonical_json(&e.details)),
    ];
    let mut out = Vec::new();
    for field in fields {
        match field {
            Some(text) => {
                let length = u32::try_from(text.len())
                    .ok()
                    .filter(|&n| n != ABSENT)
                    .ok_or_else(|| anyhow::anyhow!("an audit field is too long to encode"))?;
                out.extend(length.to_be_bytes());
                out.extend(text.as_bytes());
            }
            None => out.extend(ABSENT.to_be_bytes()),
        }
    }
    Ok(out)
}

/// The length prefix that marks an absent field.
const ABSENT: u32 = u32::MAX;

/// JSON with object keys sorted at every level (jsonb reorders keys).
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        scalar => scalar.to_string(),
    }
}

/// One page of a user's own activity, newest first.
pub struct ActivityPage {
    pub events: Vec<StoredEvent>,
    /// Pass back to get older events; `None` on the last page.
    pub next_before: Option<i64>,
}

pub async fn activity(
    db: &PgPool,
    user_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<ActivityPage> {
    let mut events = store::for_user(db, user_id, before.unwrap_or(i64::MAX), limit + 1).await?;
    let more = usize::try_from(limit).is_ok_and(|l| events.len() > l);
    if more {
        events.pop();
    }
    let next_before = if more {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(ActivityPage {
        events,
        next_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap_or_default();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap_or_default();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#);
    }

    #[test]
    fn user_agents_are_truncated() {
        let ctx = Context::new(None, Some(&"x".repeat(1000)), None);
        assert_eq!(ctx.user_agent.map(|u| u.len()), Some(256));
    }
}
