//! Per-client-IP request limits (tower-governor), one bucket per route group.
//! The key is the `ClientIp` resolved by `client_ip::resolve`, never a raw
//! header. Refusals use our error format: 429 `rate_limited` + Retry-After,
//! and are counted in `authd_rate_limited_total{group}`.
use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use prometheus::IntCounter;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::config::{RateLimit, RateLimitSettings};
use crate::domain::throttle::client_network;
use crate::error::Error;
use crate::http::client_ip::ClientIp;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy)]
pub struct ClientIpKey;

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        req.extensions()
            .get::<ClientIp>()
            .map(|c| client_network(c.0))
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

type Config = GovernorConfig<ClientIpKey, NoOpMiddleware>;

pub struct Limiter {
    config: Arc<Config>,
    refused: IntCounter,
}

impl Limiter {
    fn new(limit: RateLimit, refused: IntCounter) -> anyhow::Result<Self> {
        let config = GovernorConfigBuilder::default()
            .period(Duration::from_millis(limit.replenish_ms))
            .burst_size(limit.burst)
            .key_extractor(ClientIpKey)
            .finish()
            .ok_or_else(|| anyhow::anyhow!("rate limit burst and period must be positive"))?;
        Ok(Self {
            config: Arc::new(config),
            refused,
        })
    }

    pub fn layer(&self) -> GovernorLayer<ClientIpKey, NoOpMiddleware, Body> {
        let refused = self.refused.clone();
        GovernorLayer::new(Arc::clone(&self.config)).error_handler(move |error| match error {
            GovernorError::TooManyRequests { wait_time, .. } => {
                refused.inc();
                Error::RateLimited {
                    retry_after_secs: wait_time,
                }
                .into_response()
            }
            other => Error::Internal(anyhow::anyhow!("rate limiter: {other}")).into_response(),
        })
    }

    /// Forgets clients whose buckets are full again, bounding memory.
    pub fn shrink(&self) {
        self.config.limiter().retain_recent();
        self.config.limiter().shrink_to_fit();
    }
}

pub struct RateLimiters {
    pub signup: Limiter,
    pub login: Limiter,
    pub refresh: Limiter,
    pub mail: Limiter,
}

impl RateLimiters {
    pub fn new(settings: &RateLimitSettings, metrics: &Metrics) -> anyhow::Result<Self> {
        Ok(Self {
            signup: Limiter::new(settings.signup, metrics.rate_limited("signup")?)?,
            login: Limiter::new(settings.login, metrics.rate_limited("login")?)?,
            refresh: Limiter::new(settings.refresh, metrics.rate_limited("refresh")?)?,
            mail: Limiter::new(settings.mail, metrics.rate_limited("mail")?)?,
        })
    }

    pub fn shrink(&self) {
        for limiter in [&self.signup, &self.login, &self.refresh, &self.mail] {
            limiter.shrink();
        }
    }
}
