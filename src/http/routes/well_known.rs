//! Discovery for resource servers: the JWKS and the OpenID configuration
//! (what AppSync and API Gateway JWT/OIDC authorizers read).
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

const CACHEABLE: HeaderValue = HeaderValue::from_static("public, max-age=300");

pub async fn jwks(State(state): State<AppState>) -> Response {
    let jwks = state.keys.current().jwks.to_vec();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, CACHEABLE),
        ],
        jwks,
    )
        .into_response()
}

pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let issuer = state.settings.auth.issuer.trim_end_matches('/');
    // The algorithms of the published keys (both during a switch).
    let mut algorithms: Vec<&str> = state
        .keys
        .current()
        .verifying
        .values()
        .map(|key| key.algorithm.name())
        .collect();
    algorithms.sort_unstable();
    algorithms.dedup();
    let body = json!({
        "issuer": state.settings.auth.issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "scopes_supported": ["openid"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "roles", "amr", "auth_time", "client_id", "scope", "idp"],
    });
    ([(header::CACHE_CONTROL, CACHEABLE)], Json(body)).into_response()
}
