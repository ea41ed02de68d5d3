//! Where errors become HTTP responses: the `ErrorBody` JSON, plus the
//! headers some errors carry (`WWW-Authenticate`, `Retry-After`, the
//! clearing cookie, `Connection: close`). Faults are logged here, once.
use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;
use crate::http::cookies;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<&'a [&'static str]>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        // The cause goes to the log (it never holds request secrets: SQL
        // errors carry statement text, not bound values); the client gets
        // only the code.
        match &self {
            Error::Unavailable(_) => tracing::warn!(error = %self, "request failed"),
            e if e.is_fault() => tracing::error!(error = %self, "request failed"),
            _ => {}
        }
        let body = ErrorBody {
            error: self.code(),
            message: self.message(),
            reasons: match &self {
                Error::WeakPassword(reasons) => Some(reasons),
                _ => None,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        match &self {
            Error::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Error::InvalidRefreshToken => {
                headers.insert(header::SET_COOKIE, cookies::CLEARING_HEADER);
            }
            _ => {}
        }
        response
    }
}
