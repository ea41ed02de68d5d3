//! Logins and signups refused before their request is read while the
//! hashing pool has no room. A flood's excess then costs a path compare and
//! a prebuilt answer: no body read or parsed, no JSON built, no log line,
//! no per-route metrics (counted in `authd_argon2_rejected_total{reason=
//! "shed"}` and, for logins, `authd_logins_total{outcome="overloaded"}`). The answer is the one the handler would give: 503
//! `overloaded` with Retry-After. Whatever gets past still reserves its
//! place in the pool, so this only moves refusals earlier. With
//! `password.shed_delay_ms` the answer waits that long (a timer, no CPU),
//! so a client that retries at once costs at most one refusal per delay.
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::Error;
use crate::http::error_response::Prebuilt;
use crate::metrics::LoginOutcome;
use crate::state::AppState;

/// The routes whose first expensive step is a hash.
const HASHING_PATHS: [&str; 2] = ["/v1/auth/login", "/v1/auth/signup"];

#[derive(Clone)]
pub struct Shed {
    state: AppState,
    refusal: Arc<Prebuilt>,
    delay: Option<Duration>,
}

impl Shed {
    pub fn new(state: AppState) -> Self {
        let delay = Some(state.settings.password.shed_delay_ms)
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        Self {
            state,
            refusal: Arc::new(Prebuilt::new(&Error::Overloaded)),
            delay,
        }
    }
}

pub async fn when_saturated(State(shed): State<Shed>, request: Request, next: Next) -> Response {
    if request.method() == Method::POST
        && HASHING_PATHS.contains(&request.uri().path())
        && shed.state.passwords.pool().full()
    {
        if request.uri().path() == HASHING_PATHS[0] {
            shed.state.metrics.login(LoginOutcome::Overloaded);
        }
        if let Some(delay) = shed.delay {
            tokio::time::sleep(delay).await;
        }
        return shed.refusal.response();
    }
    next.run(request).await
}
