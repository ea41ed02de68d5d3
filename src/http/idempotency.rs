//! `Idempotency-Key` for the mutating routes: a retry with the same key and
//! the same request within `idempotency.ttl_secs` gets the first response
//! back instead of doing the work twice; the same key with another request
//! gets `422 idempotency_key_reused`. Keys are scoped to the caller: the user
//! of a valid bearer token, else the client IP.
//!
//! Security rule: no token, password, code, secret or cookie is ever stored
//! or logged. Requests are kept only as an HMAC fingerprint (a plain hash of
//! a login body could be brute-forced for the password), and a response that
//! carries a secret (tokens, an MFA token, a TOTP secret, recovery codes) is
//! never stored: its retry gets `409 already_processed` rather than a second
//! session or the secret again. `Set-Cookie` is never stored or replayed.
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, response};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::Cookie;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::crypto::random::sha256;
use crate::error::{Error, Result};
use crate::http::client_ip::ClientIp;
use crate::http::cookies::{self, REFRESH_COOKIE};
use crate::http::extract::{Bearer, body_error};
use crate::state::AppState;
use crate::storage::idempotency::{self as store, Claim, KeyRow, StoredResponse};

/// HKDF label of the key that makes request fingerprints.
pub const FINGERPRINT_LABEL: &str = crate::crypto::master_key::labels::IDEMPOTENCY;
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const MAX_KEY_BYTES: usize = 255;
/// Our responses are a few hundred bytes; this only bounds memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The middleware's state. `refresh_cookie` is set for refresh and logout,
/// whose credential may be the cookie alone (with an empty body): the cookie
/// is then part of the request's fingerprint.
#[derive(Clone)]
pub struct Idempotency {
    state: AppState,
    refresh_cookie: bool,
}

impl Idempotency {
    pub fn new(state: AppState, refresh_cookie: bool) -> Self {
        Self {
            state,
            refresh_cookie,
        }
    }
}

/// Keys created before this have expired.
pub fn expired_before(state: &AppState, now: OffsetDateTime) -> OffsetDateTime {
    now - time::Duration::seconds(state.settings.idempotency.ttl_secs)
}

pub async fn middleware(State(idem): State<Idempotency>, request: Request, next: Next) -> Response {
    handle(idem, request, next)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle(idem: Idempotency, request: Request, next: Next) -> Result<Response> {
    let Some(key) = idempotency_key(request.headers())? else {
        return Ok(next.run(request).await);
    };
    let (mut parts, body) = request.into_parts();
    let scope = scope(&idem.state, &mut parts).await?;
    let body = buffer(body, idem.state.settings.http.max_body_bytes).await?;
    let request_hash = fingerprint(&idem, &parts, &body);
    let entry = Entry {
        state: idem.state,
        scope,
        key,
    };
    // Twice: the row seen by a failed claim may be released (its request
    // failed with a 5xx) before we read it; then the key is free again.
    for _ in 0..2 {
        if entry.claim(&request_hash).await? {
            let request = Request::from_parts(parts, Body::from(body));
            return Ok(entry.execute(request, next).await);
        }
        if let Some(row) = store::find(&entry.state.db, &entry.scope, &entry.key).await? {
            return answer(row, &request_hash);
        }
    }
    Err(Error::IdempotencyInProgress)
}

/// The header's value, if sent: 1..=255 visible ASCII characters, once.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let valid = values.next().is_none()
        && (1..=MAX_KEY_BYTES).contains(&bytes.len())
        && bytes.iter().all(|b| (0x21..=0x7e).contains(b));
    match value.to_str() {
        Ok(key) if valid => Ok(Some(key.to_owned())),
        _ => Err(Error::InvalidRequest(
            "the Idempotency-Key header must be sent once, with 1 to 255 visible ASCII characters (no spaces)".into(),
        )),
    }
}

/// `user:<id>` for a valid bearer token, else `ip:<keyed hash of the
/// client IP>` (the table holds no IP in the clear). An invalid token is
/// not an error here: the handler decides what it needs.
async fn scope(state: &AppState, parts: &mut Parts) -> Result<String> {
    if let Ok(Bearer(claims)) = Bearer::from_request_parts(parts, state).await {
        return Ok(format!("user:{}", claims.sub));
    }
    let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
    let mut input = b"\0scope-ip\0".to_vec();
    input.extend_from_slice(ip.to_string().as_bytes());
    let hashed: String = state
        .idempotency_key
        .hmac(&input)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("ip:{hashed}"))
}

/// The whole body, so it can be fingerprinted and then handed on.
async fn buffer(body: Body, limit: usize) -> Result<Bytes> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Error::PayloadTooLarge),
        Err(e) => Err(body_error(&*e)),
    }
}

/// HMAC over method, path, the refresh cookies where they are a credential,
/// and the body. Method and path hold no NUL, and the cookie part is a count
/// followed by that many fixed-length hashes, so the framing is unambiguous.
fn fingerprint(idem: &Idempotency, parts: &Parts, body: &[u8]) -> [u8; 32] {
    let mut data = Vec::with_capacity(body.len() + 128);
    data.extend_from_slice(parts.method.as_str().as_bytes());
    data.push(0);
    data.extend_from_slice(parts.uri.path().as_bytes());
    data.push(0);
    let sent = cookies::refresh_cookies(&parts.headers);
    let counted = if idem.refresh_cookie { sent.len() } else { 0 };
    data.push(u8::try_from(counted).unwrap_or(u8::MAX));
    for value in sent.iter().take(counted.min(usize::from(u8::MAX))) {
        data.extend_from_slice(&sha256(value.as_bytes()));
    }
    data.extend_from_slice(body);
    idem.state.idempotency_key.hmac(&data)
}

/// A key that is already taken: replay, or explain why not.
fn answer(row: KeyRow, request_hash: &[u8]) -> Result<Response> {
    if row.request_hash != request_hash {
        return Err(Error::IdempotencyKeyReused);
    }
    match (row.state.as_str(), row.stored) {
        ("completed", true) => replay(row),
        ("completed", false) => Err(Error::AlreadyProcessed),
        _ => Err(Error::IdempotencyInProgress),
    }
}

fn replay(row: KeyRow) -> Result<Response> {
    let status = row
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored response has a bad status")))?;
    let mut builder = Response::builder()
        .status(status)
        .header(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    if let Some(value) = row
        .response_content_type
        .and_then(|ct| HeaderValue::from_str(&ct).ok())
    {
        builder = builder.header(header::CONTENT_TYPE, value);
    }
    builder
        .body(Body::from(row.response_body.unwrap_or_default()))
        .map_err(|e| Error::Internal(e.into()))
}

/// A claimed key and where its outcome goes.
#[derive(Clone)]
struct Entry {
    state: AppState,
    scope: String,
    key: String,
}

impl Entry {
    async fn claim(&self, request_hash: &[u8]) -> Result<bool> {
        let now = self.state.clock.now();
        let claim = Claim {
            scope: &self.scope,
            key: &self.key,
            request_hash,
            now,
            expired_before: expired_before(&self.state, now),
        };
        Ok(store::claim(&self.state.db, &claim).await?)
    }

    /// Runs the handler in its own task: if the client hangs up, the work
    /// still finishes and its outcome is recorded, instead of the key being
    /// left `in_progress` (answering 409 to every retry) until it expires.
    async fn execute(&self, request: Request, next: Next) -> Response {
        let entry = self.clone();
        let task = async move {
            let response = next.run(request).await;
            entry.record(response).await
        };
        match tokio::spawn(task.in_current_span()).await {
            Ok(response) => response,
            Err(e) => {
                // A panic: what happened is unknown, as after a 5xx.
                self.release().await;
                Error::Internal(anyhow::anyhow!("idempotent request task failed: {e}"))
                    .into_response()
            }
        }
    }

    async fn record(&self, response: Response) -> Response {
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            // Nothing (or nothing certain) happened: let a retry run again.
            self.release().await;
            return response;
        }
        let (parts, body) = response.into_parts();
        let Ok(body) = buffer(body, MAX_RESPONSE_BYTES).await else {
            self.release().await;
            return Error::Internal(anyhow::anyhow!("response body could not be buffered"))
                .into_response();
        };
        self.complete(&parts, &body).await;
        Response::from_parts(parts, Body::from(body))
    }

    async fn complete(&self, parts: &response::Parts, body: &[u8]) {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let stored = StoredResponse {
            status: parts.status.as_u16(),
            body,
            content_type,
        };
        let replayable = (!carries_secrets(&parts.headers, body)).then_some(&stored);
        let result = store::complete(
            &self.state.db,
            &self.scope,
            &self.key,
            stored.status,
            replayable,
        )
        .await;
        if let Err(e) = result {
            // The work is done; the client still gets its answer. A retry
            // sees the key `in_progress` until it expires.
            tracing::warn!(error = %e, "could not record an idempotent response");
        }
    }

    async fn release(&self) {
        if let Err(e) = store::release(&self.state.db, &self.scope, &self.key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    }
}

/// Fields of a JSON response body that hold a secret.
const SECRET_FIELDS: [&str; 7] = [
    "access_token",
    "refresh_token",
    "mfa_token",
    "secret",
    "otpauth_uri",
    "qr_png",
    "recovery_codes",
];

/// Judged on the response itself, not the route, so that no endpoint can
/// leak a secret into the table by forgetting to opt out: a refresh cookie
/// being set, or a secret field in a JSON body.
fn carries_secrets(headers: &HeaderMap, body: &[u8]) -> bool {
    let sets_cookie = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| Cookie::parse(v).ok())
        .any(|c| c.name() == REFRESH_COOKIE && !c.value().is_empty());
    let secret_field = serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| {
        v.as_object()
            .is_some_and(|o| SECRET_FIELDS.iter().any(|f| o.contains_key(*f)))
    });
    sets_cookie || secret_field
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(key: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(key) {
            headers.insert(IDEMPOTENCY_KEY, value);
        }
        headers
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255_bytes() {
        assert_eq!(idempotency_key(&HeaderMap::new()).ok(), Some(None));
        let ok = "a".repeat(255);
        assert_eq!(
            idempotency_key(&headers(ok.as_bytes())).ok(),
            Some(Some(ok))
        );
        for bad in [&b""[..], &[b'a'; 256], b"a b", b"a\tb", b"caf\xc3\xa9"] {
            assert!(idempotency_key(&headers(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn responses_with_secrets_are_recognised() {
        let none = HeaderMap::new();
        for field in SECRET_FIELDS {
            let body = format!(r#"{{"{field}":"x"}}"#);
            assert!(carries_secrets(&none, body.as_bytes()), "{field}");
        }
        assert!(!carries_secrets(&none, br#"{"status":"accepted"}"#));
        assert!(!carries_secrets(&none, b""));
        let mut cookie = HeaderMap::new();
        cookie.append(
            header::SET_COOKIE,
            HeaderValue::from_static("__Host-authd_refresh=abc; Path=/"),
        );
        assert!(carries_secrets(&cookie, b""));
        let mut clearing = HeaderMap::new();
        clearing.append(
            header::SET_COOKIE,
            HeaderValue::from_static("__Host-authd_refresh=; Max-Age=0"),
        );
        assert!(!carries_secrets(&clearing, b""));
    }
}
