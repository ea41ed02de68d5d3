//! /v1/auth/federation: sign-in through an identity provider. Browsers
//! navigate here, so a failure is an HTML page for them (by `Accept`) and
//! the JSON error body for anyone else.
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::domain::federation::sign_in::{self, Callback, STATE_TTL};
use crate::domain::federation::start_path;
use crate::error::{Error, Result};
use crate::http::cookies;
use crate::http::error_response::html_page;
use crate::http::extract::{AppPath, AppQuery, Caller};
use crate::state::AppState;

/// Longest accepted value of a callback parameter (codes are opaque, but
/// no provider needs more).
const MAX_PARAM_CHARS: usize = 2048;

#[derive(Serialize)]
pub struct ProviderEntry<'a> {
    id: &'a str,
    display_name: &'a str,
    start_url: String,
}

#[derive(Serialize)]
pub struct ProviderList<'a> {
    providers: Vec<ProviderEntry<'a>>,
}

/// The configured providers, for a sign-in page's buttons.
pub async fn providers(State(state): State<AppState>) -> Response {
    let providers = state
        .federation
        .providers()
        .map(|p| ProviderEntry {
            id: &p.id,
            display_name: p.display_name(),
            start_url: start_path(&p.id),
        })
        .collect();
    Json(ProviderList { providers }).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    return_to: Option<String>,
    client_id: Option<String>,
}

/// 302 to the provider's authorization endpoint, with the state cookie.
pub async fn start(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    query: Result<AppQuery<StartQuery>>,
) -> Response {
    let started = async {
        let AppQuery(query) = query?;
        let started = sign_in::start(
            &state,
            &id,
            query.return_to.as_deref(),
            query.client_id.as_deref(),
        )
        .await?;
        let cookie =
            cookies::federation_cookie(&id, started.state.expose(), STATE_TTL.whole_seconds());
        let location = HeaderValue::from_str(&started.authorization_url)
            .map_err(|_| Error::Internal(anyhow::anyhow!("authorization URL is not a header")))?;
        Ok::<_, Error>(
            (
                StatusCode::FOUND,
                [
                    (header::LOCATION, location),
                    (header::SET_COOKIE, cookies::header(&cookie)?),
                ],
            )
                .into_response(),
        )
    }
    .await;
    started.unwrap_or_else(|error| error_for(&headers, error))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// Finishes the sign-in: 303 to `return_to` with the refresh cookie.
pub async fn callback(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    query: Result<AppQuery<CallbackQuery>>,
) -> Response {
    let finished = async {
        let AppQuery(query) = query?;
        let too_long = [&query.state, &query.code, &query.error, &query.iss]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_PARAM_CHARS));
        if too_long {
            return Err(Error::InvalidRequest(format!(
                "callback parameters must be at most {MAX_PARAM_CHARS} characters"
            )));
        }
        let callback = Callback {
            state: query.state,
            code: query.code.map(SecretString::from),
            error: query.error,
            iss: query.iss,
        };
        let cookie_state = cookies::federation_state(&headers, &id);
        let finished =
            sign_in::finish(&state, &ctx, &id, callback, cookie_state.as_deref()).await?;
        let refresh = cookies::refresh_cookie(
            finished.issued.refresh_token.expose(),
            finished.issued.refresh_max_age,
        );
        let location = HeaderValue::from_str(&finished.return_to)
            .map_err(|_| Error::Internal(anyhow::anyhow!("return_to is not a header")))?;
        Ok((
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, location),
                (header::SET_COOKIE, cookies::header(&refresh)?),
            ],
        )
            .into_response())
    }
    .await;
    let mut response = finished.unwrap_or_else(|error| error_for(&headers, error));
    // One callback per state, whatever its outcome.
    if state.federation.provider(&id).is_ok()
        && let Ok(clearing) = cookies::header(&cookies::clearing_federation_cookie(&id))
    {
        response.headers_mut().append(header::SET_COOKIE, clearing);
    }
    response
}

/// The error as a page for a browser, as JSON for anyone else.
fn error_for(headers: &HeaderMap, error: Error) -> Response {
    let wants_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    if wants_html {
        html_page(error)
    } else {
        error.into_response()
    }
}
