//! The one application state, shared by every handler and background task.
use sqlx::PgPool;
use std::ops::Deref;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::DataKey;
use crate::domain::audit::AuditLog;
use crate::domain::keys::KeyStore;
use crate::domain::passwords::Passwords;
use crate::http::rate_limit::RateLimiters;
use crate::metrics::Metrics;

pub struct App {
    pub settings: Settings,
    pub db: PgPool,
    pub clock: Arc<dyn Clock>,
    pub keys: KeyStore,
    pub passwords: Passwords,
    pub throttle_key: DataKey,
    /// Keys the fingerprints of idempotent requests (see `http::idempotency`).
    pub idempotency_key: DataKey,
    pub rate_limiters: RateLimiters,
    pub audit: AuditLog,
    pub metrics: Metrics,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
