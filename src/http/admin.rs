//! The admin listener's router: `GET /metrics` (Prometheus text format) and
//! nothing else. It is served on `http.admin_addr`, never on the public
//! listener, and is not part of the public API (`RouteTable`, openapi.yaml):
//! metrics reveal traffic and failure patterns, so only an operator's
//! network should reach them.
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::Error;
use crate::metrics::{self, Sample};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Result<Response, Error> {
    // Gauges of live state are read now, so a scrape sees the present.
    let sample = Sample {
        argon2_queue_depth: state.passwords.pool().queue_depth(),
        db_connections: state.db.size(),
        db_idle: state.db.num_idle(),
    };
    let body = state
        .metrics
        .render(sample)
        .map_err(|e| Error::Internal(anyhow::anyhow!("rendering metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        body,
    )
        .into_response())
}
