//! CSRF defence for cookie-carrying requests, and CORS for the configured
//! browser origins. A browser always sends `Origin` on a cross-site POST, so
//! a refresh or logout whose `Origin` is present but not allowed is refused.
//! Native clients send no `Origin` and are unaffected.
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::Error;
use crate::http::idempotency;

#[derive(Clone)]
pub struct AllowedOrigins(Arc<[HeaderValue]>);

impl AllowedOrigins {
    pub fn new(origins: &[String]) -> Self {
        Self(parse(origins).into())
    }
}

fn parse(origins: &[String]) -> Vec<HeaderValue> {
    origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect()
}

pub async fn require_allowed_origin(
    State(allowed): State<AllowedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    match request.headers().get(header::ORIGIN) {
        Some(origin) if !allowed.0.contains(origin) => Error::ForbiddenOrigin.into_response(),
        _ => next.run(request).await,
    }
}

pub fn cors(origins: &[String]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(parse(origins)))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-request-id"),
            idempotency::IDEMPOTENCY_KEY,
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            idempotency::IDEMPOTENT_REPLAYED,
        ])
        .max_age(Duration::from_secs(600))
}
