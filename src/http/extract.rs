//! Request extractors that turn every malformed input into our error format:
//! JSON bodies (415 without a JSON content type, 413 over the size limit,
//! 400 for bad syntax or shape), the refresh credential (cookie or body),
//! and the bearer access token.
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::domain::access_tokens::{self, AccessClaims};
use crate::domain::accounts;
use crate::domain::audit;
use crate::error::{Error, Result};
use crate::http::client_ip::ClientIp;
use crate::http::cookies;
use crate::http::server::body::BodyTimedOut;
use crate::state::AppState;

/// Refresh tokens are 43 characters; openapi.yaml allows up to this many,
/// and anything longer is a malformed request, not an unknown token.
pub const MAX_REFRESH_TOKEN_CHARS: usize = 512;

/// `axum::Json`, with rejections in our error format and error messages that
/// never echo the offending input (it may be a password).
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let headers = request.headers().clone();
        let body = read_body(request, state).await?;
        parse_json(&headers, &body).map(AppJson)
    }
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                body_error(&rejection)
            }
        })
}

/// A body that could not be read: it stalled past its deadline (`408`), or
/// the client broke it off (`400`).
pub fn body_error(error: &(dyn std::error::Error + 'static)) -> Error {
    if BodyTimedOut::is_cause_of(error) {
        Error::RequestTimeout
    } else {
        Error::InvalidRequest("the request body could not be read".into())
    }
}

fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    if !is_json {
        return Err(Error::UnsupportedMediaType);
    }
    // serde reads a struct from an array too (its fields by position), so
    // `[null]` would pass for an empty object: every body here is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Error::InvalidRequest(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Error::InvalidRequest(describe_data_error(&e)),
        _ => Error::MalformedJson,
    })
}

/// serde's messages for wrong types quote the value; only the ones that
/// name a field (never a value) are passed on.
fn describe_data_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let safe = ["missing field", "unknown field", "unknown variant"];
    match safe.iter().find(|p| text.starts_with(*p)) {
        Some(_) => text
            .split(", expected")
            .next()
            .unwrap_or("invalid request body")
            .split(" at line")
            .next()
            .unwrap_or("invalid request body")
            .to_owned(),
        None => format!(
            "a field has the wrong type (line {}, column {})",
            error.line(),
            error.column()
        ),
    }
}

/// Where a refresh token came from; the answer goes back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Cookie,
    Body,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    client_id: Option<String>,
}

/// The refresh token of a refresh or logout request: from a JSON body
/// `{refresh_token}` when it has one, else from the cookie (a browser may
/// send `{client_id}` alone). More than one refresh cookie is refused (see
/// `cookies`), and so is a token longer than `MAX_REFRESH_TOKEN_CHARS`.
/// Longer than any client id (`domain::clients`): refused as malformed.
const MAX_CLIENT_ID_CHARS: usize = 64;

pub struct RefreshCredential {
    pub token: Option<SecretString>,
    pub channel: Channel,
    pub client_id: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for RefreshCredential {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let headers = request.headers().clone();
        // Checked whichever channel carries the token: a tossed or
        // oversized cookie makes the whole request suspect.
        let cookie = match cookies::refresh_cookies(&headers)[..] {
            [] => None,
            [ref one] => Some(SecretString::from(one.as_str())),
            [_, _, ..] => return Err(Error::InvalidRefreshToken),
        };
        check_length(cookie.as_ref())?;
        let body = read_body(request, state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self {
                token: cookie,
                channel: Channel::Cookie,
                client_id: None,
            });
        }
        let parsed: RefreshBody = parse_json(&headers, &body)?;
        check_length(parsed.refresh_token.as_ref())?;
        if parsed
            .client_id
            .as_ref()
            .is_some_and(|id| id.len() > MAX_CLIENT_ID_CHARS)
        {
            return Err(Error::InvalidRequest(format!(
                "client_id must be at most {MAX_CLIENT_ID_CHARS} characters"
            )));
        }
        Ok(match parsed.refresh_token {
            Some(token) => Self {
                token: Some(token),
                channel: Channel::Body,
                client_id: parsed.client_id,
            },
            None => Self {
                token: cookie,
                channel: Channel::Cookie,
                client_id: parsed.client_id,
            },
        })
    }
}

fn check_length(token: Option<&SecretString>) -> Result<()> {
    match token {
        Some(t) if t.expose_secret().chars().count() > MAX_REFRESH_TOKEN_CHARS => Err(
            Error::InvalidRequest("refresh_token must be at most 512 characters".into()),
        ),
        _ => Ok(()),
    }
}

/// A verified `Authorization: Bearer` access token.
pub struct Bearer(pub Arc<AccessClaims>);

impl FromRequestParts<AppState> for Bearer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(&parts.headers).ok_or(Error::InvalidToken)?;
        let claims = access_tokens::authenticate(state, token).await?;
        Ok(Bearer(claims))
    }
}

/// The token of the one `Authorization: Bearer <token>` header (scheme
/// case-insensitive, RFC 7235), or `None` for anything else: no header,
/// two headers, another scheme, or no token.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A bearer token whose session is still open and whose account is enabled
/// (one database query): what every call that acts on the account needs.
#[derive(Clone)]
pub struct Authenticated(pub Arc<AccessClaims>);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        // Already checked by `authenticate` in front of this route.
        if let Some(done) = parts.extensions.get::<Authenticated>() {
            return Ok(done.clone());
        }
        let Bearer(claims) = Bearer::from_request_parts(parts, state).await?;
        accounts::require_live_session(state, claims.sub, claims.sid).await?;
        Ok(Authenticated(claims))
    }
}

/// Middleware for routes that need an authenticated caller: refuses before
/// anything else runs (rate-limit buckets aside), so that no idempotency
/// record, body parsing or other answer can tell an anonymous caller more
/// than `401`.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match Authenticated::from_request_parts(&mut parts, &state).await {
        Ok(authenticated) => {
            parts.extensions.insert(authenticated);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}

/// Where a request came from, for the audit log: client IP (as resolved by
/// `client_ip::resolve`), truncated user agent, request id.
pub struct Caller(pub audit::Context);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let header =
            |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        Ok(Caller(audit::Context::new(
            Some(ip),
            header(header::USER_AGENT),
            request_id,
        )))
    }
}

/// Query parameters, with rejections in our error format.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| AppQuery(q.0))
            .map_err(|_| Error::InvalidRequest("invalid query parameters".into()))
    }
}

/// A path parameter, with rejections in our error format: a segment that
/// does not decode (`%FF`) names nothing this service has, so `404
/// not_found`, like an unknown id.
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| AppPath(p.0))
            .map_err(|_| Error::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                map.append(header::AUTHORIZATION, value);
            }
        }
        map
    }

    #[test]
    fn bearer_tokens_are_taken_only_from_one_bearer_header() {
        assert_eq!(
            bearer_token(&headers(&[b"Bearer abc.def"])),
            Some("abc.def")
        );
        assert_eq!(bearer_token(&headers(&[b"bearer  abc "])), Some("abc"));
        for bad in [&b"Basic abc"[..], b"Bearer", b"Bearer ", b"Bearerabc", b""] {
            assert_eq!(bearer_token(&headers(&[bad])), None, "{bad:?}");
        }
        assert_eq!(bearer_token(&headers(&[b"Bearer a", b"Bearer b"])), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    proptest::proptest! {
        /// Whatever the header: no panic, and a token comes back only from
        /// a `Bearer` scheme, non-empty and without surrounding spaces.
        #[test]
        fn the_bearer_parser_never_panics(value in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..200)) {
            let map = headers(&[&value]);
            if let Some(token) = bearer_token(&map) {
                let text = String::from_utf8_lossy(&value);
                proptest::prop_assert!(text.to_ascii_lowercase().starts_with("bearer "));
                proptest::prop_assert!(!token.is_empty() && token.trim() == token);
            }
        }
    }
}
