//! Per-client-IP request limits (tower-governor), one bucket per route group.
//! The key is the `ClientIp` resolved by `client_ip::resolve`, never a raw
//! header. Refusals use our error format: 429 `rate_limited` + Retry-After.
use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::config::{RateLimit, RateLimitSettings};
use crate::error::Error;
use crate::http::client_ip::ClientIp;

#[derive(Debug, Clone, Copy)]
pub struct ClientIpKey;

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        req.extensions()
            .get::<ClientIp>()
            .map(|c| c.0)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

type Config = GovernorConfig<ClientIpKey, NoOpMiddleware>;

pub struct Limiter(Arc<Config>);

impl Limiter {
    fn new(limit: RateLimit) -> anyhow::Result<Self> {
        let config = GovernorConfigBuilder::default()
            .period(Duration::from_millis(limit.replenish_ms))
            .burst_size(limit.burst)
            .key_extractor(ClientIpKey)
            .finish()
            .ok_or_else(|| anyhow::anyhow!("rate limit burst and period must be positive"))?;
        Ok(Self(Arc::new(config)))
    }

    pub fn layer(&self) -> GovernorLayer<ClientIpKey, NoOpMiddleware, Body> {
        GovernorLayer::new(Arc::clone(&self.0)).error_handler(|error| match error {
            GovernorError::TooManyRequests { wait_time, .. } => Error::RateLimited {
                retry_after_secs: wait_time,
            }
            .into_response(),
            other => Error::Internal(anyhow::anyhow!("rate limiter: {other}")).into_response(),
        })
    }

    /// Forgets clients whose buckets are full again, bounding memory.
    pub fn shrink(&self) {
        self.0.limiter().retain_recent();
        self.0.limiter().shrink_to_fit();
    }
}

pub struct RateLimiters {
    pub signup: Limiter,
    pub login: Limiter,
    pub refresh: Limiter,
}

impl RateLimiters {
    pub fn new(settings: &RateLimitSettings) -> anyhow::Result<Self> {
        Ok(Self {
            signup: Limiter::new(settings.signup)?,
            login: Limiter::new(settings.login)?,
            refresh: Limiter::new(settings.refresh)?,
        })
    }

    pub fn shrink(&self) {
        for limiter in [&self.signup, &self.login, &self.refresh] {
            limiter.shrink();
        }
    }
}
