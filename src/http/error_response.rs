//! Where errors become HTTP responses: the `ErrorBody` JSON, plus the
//! headers some errors carry (`WWW-Authenticate`, `Retry-After`, the
//! clearing cookie, `Connection: close`). Faults are logged here, once.
//! `html_page` renders the same answer for a browser that navigated to
//! authd (the federation callback).
use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
        let mut response = (self.status(), Json(body(&self))).into_response();
        add_headers(&self, response.headers_mut());
        response
    }
}

fn body(error: &Error) -> ErrorBody<'_> {
    ErrorBody {
        error: error.code(),
        message: error.message(),
        reasons: match error {
            Error::WeakPassword(reasons) => Some(reasons),
            _ => None,
        },
    }
}

/// An error's whole answer, serialised once and sent many times (see
/// `shed`): no JSON is built and nothing is logged per answer.
pub struct Prebuilt {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Prebuilt {
    pub fn new(error: &Error) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        add_headers(error, &mut headers);
        Self {
            status: error.status(),
            headers,
            // Serialising a struct of strings cannot fail.
            body: serde_json::to_vec(&body(error)).unwrap_or_default().into(),
        }
    }

    pub fn response(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// The headers some errors carry.
fn add_headers(error: &Error, headers: &mut HeaderMap) {
    if let Some(secs) = error.retry_after_secs() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if error.closes_connection() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    match error {
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
}

/// `error` as a small HTML page, with the status and headers of the JSON
/// answer. The page holds only the fixed code and message, and its CSP
/// allows nothing but its inline style.
pub fn html_page(error: Error) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed</title>\n\
         <style>body{{font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em}}code{{color:#555}}</style></head>\n\
         <body><h1>Sign-in failed</h1><p>{}</p><p><code>{}</code></p></body></html>\n",
        escape(error.message()),
        error.code()
    );
    let (mut parts, _) = error.into_response().into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    Response::from_parts(parts, Body::from(page))
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
