//! Liveness and readiness probes.
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::state::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready only while PostgreSQL answers within two seconds.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>> {
    let ping = sqlx::query("SELECT 1").execute(&state.db);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Ok(Json(json!({ "status": "ready" }))),
        _ => Err(Error::NotReady),
    }
}
