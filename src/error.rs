//! The one error type. Every failure a handler can meet is a variant here,
//! and `IntoResponse` below is the only place errors become HTTP responses:
//! a stable `error` code, a fixed human message, never internal details.
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::cookies;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("malformed JSON body")]
    MalformedJson,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("invalid email address")]
    InvalidEmail,
    #[error("weak password")]
    WeakPassword(Vec<&'static str>),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("email not verified")]
    EmailNotVerified,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("invalid access token")]
    InvalidToken,
    #[error("forbidden origin")]
    ForbiddenOrigin,
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    #[error("idempotency key in progress")]
    IdempotencyInProgress,
    #[error("idempotent request already processed")]
    AlreadyProcessed,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("hashing pool overloaded")]
    Overloaded,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not ready")]
    NotReady,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<&'a [&'static str]>,
}

impl Error {
    /// Every code this type can produce; openapi.yaml must list exactly these.
    pub const CODES: &'static [&'static str] = &[
        "invalid_request",
        "malformed_json",
        "unsupported_media_type",
        "payload_too_large",
        "invalid_email",
        "weak_password",
        "invalid_credentials",
        "email_not_verified",
        "invalid_refresh_token",
        "invalid_token",
        "forbidden_origin",
        "idempotency_key_reused",
        "idempotency_in_progress",
        "already_processed",
        "rate_limited",
        "overloaded",
        "not_found",
        "method_not_allowed",
        "not_ready",
        "internal_error",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::MalformedJson => "malformed_json",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::PayloadTooLarge => "payload_too_large",
            Error::InvalidEmail => "invalid_email",
            Error::WeakPassword(_) => "weak_password",
            Error::InvalidCredentials => "invalid_credentials",
            Error::EmailNotVerified => "email_not_verified",
            Error::InvalidRefreshToken => "invalid_refresh_token",
            Error::InvalidToken => "invalid_token",
            Error::ForbiddenOrigin => "forbidden_origin",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::IdempotencyInProgress => "idempotency_in_progress",
            Error::AlreadyProcessed => "already_processed",
            Error::RateLimited { .. } => "rate_limited",
            Error::Overloaded => "overloaded",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::NotReady => "not_ready",
            Error::Database(_) | Error::Internal(_) => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidRequest(_)
            | Error::MalformedJson
            | Error::InvalidEmail
            | Error::WeakPassword(_) => StatusCode::BAD_REQUEST,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::InvalidCredentials | Error::InvalidRefreshToken | Error::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            Error::EmailNotVerified | Error::ForbiddenOrigin => StatusCode::FORBIDDEN,
            Error::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Error::IdempotencyInProgress | Error::AlreadyProcessed => StatusCode::CONFLICT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Overloaded | Error::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Fixed text per code: never built from user input or internal errors.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidRequest(detail) => detail,
            Error::MalformedJson => "the request body is not valid JSON",
            Error::UnsupportedMediaType => "send the request body as application/json",
            Error::PayloadTooLarge => "the request body is too large",
            Error::InvalidEmail => "the email address is not valid",
            Error::WeakPassword(_) => "the password does not meet the password policy",
            Error::InvalidCredentials => "the email or password is incorrect",
            Error::EmailNotVerified => "verify the email address before logging in",
            Error::InvalidRefreshToken => "the refresh token is invalid or expired; log in again",
            Error::InvalidToken => "the access token is missing, invalid or expired",
            Error::ForbiddenOrigin => "requests from this origin are not allowed",
            Error::IdempotencyKeyReused => {
                "this Idempotency-Key was already used with a different request"
            }
            Error::IdempotencyInProgress => {
                "a request with this Idempotency-Key is still in progress; retry later"
            }
            Error::AlreadyProcessed => {
                "the first request with this Idempotency-Key succeeded and its tokens cannot be shown again; log in or refresh again without this key"
            }
            Error::RateLimited { .. } => "too many requests; retry later",
            Error::Overloaded => "the service is busy; retry shortly",
            Error::NotFound => "no such resource",
            Error::MethodNotAllowed => "method not allowed on this resource",
            Error::NotReady => "the service is not ready",
            Error::Database(_) | Error::Internal(_) => "internal error",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if matches!(self, Error::Database(_) | Error::Internal(_)) {
            // The cause goes to the log (it never holds request secrets: SQL
            // errors carry statement text, not bound values); the client gets
            // only the code.
            tracing::error!(error = %self, "request failed");
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
        match &self {
            Error::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Error::InvalidRefreshToken => {
                headers.insert(header::SET_COOKIE, cookies::clearing_header());
            }
            Error::RateLimited { retry_after_secs } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(&1).to_owned()),
                );
            }
            Error::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
