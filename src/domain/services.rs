//! What the domain needs to do its work, and nothing from HTTP: settings,
//! the database pool, the clock, signing keys, the hashing pool, the
//! throttle key, the audit log, the MFA keys and the metrics. Domain services take
//! `&Services`; the HTTP state (`state::App`) holds one and derefs to it.
use sqlx::PgPool;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::DataKey;
use crate::domain::audit::AuditLog;
use crate::domain::clients::Clients;
use crate::domain::federation::Federation;
use crate::domain::keys::KeyStore;
use crate::domain::mail::Mailer;
use crate::domain::mfa::MfaKeys;
use crate::domain::passwords::Passwords;
use crate::domain::session_cache::SessionCache;
use crate::domain::throttle::InFlight;
use crate::domain::verified_tokens::VerifiedTokens;
use crate::metrics::Metrics;

pub struct Services {
    pub settings: Settings,
    pub db: PgPool,
    pub clock: Arc<dyn Clock>,
    pub keys: KeyStore,
    pub clients: Clients,
    pub federation: Federation,
    pub passwords: Passwords,
    pub throttle_key: DataKey,
    pub audit: AuditLog,
    pub mfa: MfaKeys,
    pub mail: Mailer,
    pub metrics: Metrics,
    /// Open sessions and profiles, kept current by change notifications.
    pub session_cache: Arc<SessionCache>,
    pub verified_tokens: VerifiedTokens,
    /// Password and second-factor checks in progress, per account.
    pub checks_in_flight: Arc<InFlight>,
}
