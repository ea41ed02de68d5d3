//! The one error type. Every failure a handler can meet is a variant here,
//! with its data in one place: a stable `error` code, the HTTP status, a
//! fixed human message (never internal details), and when to retry.
//! `http::error_response` is the only place errors become HTTP responses.
use axum::http::StatusCode;

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
    #[error("invalid MFA code")]
    InvalidCode,
    #[error("invalid link token")]
    InvalidLinkToken,
    #[error("invalid MFA token")]
    InvalidMfaToken,
    #[error("MFA already enabled")]
    MfaAlreadyEnabled,
    #[error("MFA not enabled")]
    MfaNotEnabled,
    #[error("MFA setup required")]
    MfaSetupRequired,
    #[error("invalid access token")]
    InvalidToken,
    #[error("forbidden origin")]
    ForbiddenOrigin,
    #[error("forbidden")]
    Forbidden,
    #[error("MFA required")]
    MfaRequired,
    #[error("last admin")]
    LastAdmin,
    #[error("unknown client")]
    InvalidClient,
    #[error("invalid return_to")]
    InvalidReturnTo,
    #[error("invalid federation state: {0}")]
    InvalidState(&'static str),
    #[error("identity provider unavailable")]
    IdpUnavailable,
    #[error("invalid ID token: {0}")]
    InvalidIdToken(&'static str),
    #[error("federation denied: {0}")]
    FederationDenied(&'static str),
    #[error("email domain not allowed")]
    EmailDomainNotAllowed,
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
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("request body timed out")]
    RequestTimeout,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not ready")]
    NotReady,
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("internal error: {0}")]
    Internal(anyhow::Error),
}

/// Code that returns `anyhow` (key handling, sealing) may carry a database
/// error up: it keeps its class, so an outage met there is still a 503.
impl From<anyhow::Error> for Error {
    fn from(error: anyhow::Error) -> Self {
        match error.downcast::<sqlx::Error>() {
            Ok(database) => database.into(),
            Err(other) => Error::Internal(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A database that cannot be reached, or that refuses work for reasons of
/// its own (shutting down, out of connections or resources), is an outage
/// the client should wait out: `503 unavailable`, not a `500`.
impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        let unavailable = match &error {
            // `Protocol`: the server broke off mid-message, e.g. it went
            // away during the connection handshake.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE classes 08 (connection exception) and 53
            // (insufficient resources), and 57P01-57P03 (shutting down,
            // crashed, starting up).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("53") || c.starts_with("57P")
            }),
            _ => false,
        };
        // 22021 and 22P05: text the database cannot store (a NUL in a
        // string or in JSON). authd never makes such text itself, so it
        // came from the client, wherever a field reached a query unchecked.
        let unstorable = matches!(&error, sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c == "22021" || c == "22P05"));
        if unavailable {
            Error::Unavailable(error)
        } else if unstorable {
            Error::InvalidRequest("the request contains a NUL character".into())
        } else {
            Error::Database(error)
        }
    }
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
        "invalid_code",
        "invalid_mfa_token",
        "mfa_already_enabled",
        "mfa_not_enabled",
        "mfa_setup_required",
        "invalid_token",
        "forbidden_origin",
        "forbidden",
        "mfa_required",
        "last_admin",
        "invalid_client",
        "invalid_return_to",
        "invalid_state",
        "idp_unavailable",
        "invalid_id_token",
        "federation_denied",
        "email_domain_not_allowed",
        "idempotency_key_reused",
        "idempotency_in_progress",
        "already_processed",
        "rate_limited",
        "overloaded",
        "unavailable",
        "request_timeout",
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
            Error::InvalidCode => "invalid_code",
            // The contract's name: a mailed link's token is a token too.
            Error::InvalidLinkToken => "invalid_token",
            Error::InvalidMfaToken => "invalid_mfa_token",
            Error::MfaAlreadyEnabled => "mfa_already_enabled",
            Error::MfaNotEnabled => "mfa_not_enabled",
            Error::MfaSetupRequired => "mfa_setup_required",
            Error::InvalidToken => "invalid_token",
            Error::ForbiddenOrigin => "forbidden_origin",
            Error::Forbidden => "forbidden",
            Error::MfaRequired => "mfa_required",
            Error::LastAdmin => "last_admin",
            Error::InvalidClient => "invalid_client",
            Error::InvalidReturnTo => "invalid_return_to",
            Error::InvalidState(_) => "invalid_state",
            Error::IdpUnavailable => "idp_unavailable",
            Error::InvalidIdToken(_) => "invalid_id_token",
            Error::FederationDenied(_) => "federation_denied",
            Error::EmailDomainNotAllowed => "email_domain_not_allowed",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::IdempotencyInProgress => "idempotency_in_progress",
            Error::AlreadyProcessed => "already_processed",
            Error::RateLimited { .. } => "rate_limited",
            Error::Overloaded => "overloaded",
            Error::Unavailable(_) => "unavailable",
            Error::RequestTimeout => "request_timeout",
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
            | Error::InvalidCode
            | Error::InvalidLinkToken
            | Error::InvalidClient
            | Error::InvalidReturnTo
            | Error::InvalidState(_)
            | Error::WeakPassword(_) => StatusCode::BAD_REQUEST,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::InvalidCredentials
            | Error::InvalidRefreshToken
            | Error::InvalidToken
            | Error::InvalidMfaToken
            | Error::InvalidIdToken(_) => StatusCode::UNAUTHORIZED,
            Error::MfaAlreadyEnabled | Error::MfaNotEnabled | Error::MfaSetupRequired => {
                StatusCode::CONFLICT
            }
            Error::EmailNotVerified
            | Error::ForbiddenOrigin
            | Error::Forbidden
            | Error::MfaRequired
            | Error::FederationDenied(_)
            | Error::EmailDomainNotAllowed => StatusCode::FORBIDDEN,
            Error::LastAdmin => StatusCode::CONFLICT,
            Error::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Error::IdempotencyInProgress | Error::AlreadyProcessed => StatusCode::CONFLICT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Overloaded | Error::NotReady | Error::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::IdpUnavailable => StatusCode::BAD_GATEWAY,
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
            Error::InvalidCode => "the code is not valid",
            Error::InvalidLinkToken => "the link is invalid, already used or expired",
            Error::InvalidMfaToken => "the MFA token is invalid, used up or expired; log in again",
            Error::MfaAlreadyEnabled => "multi-factor authentication is already enabled",
            Error::MfaNotEnabled => "multi-factor authentication is not enabled",
            Error::MfaSetupRequired => "start the TOTP setup first",
            Error::InvalidToken => "the access token is missing, invalid or expired",
            Error::ForbiddenOrigin => "requests from this origin are not allowed",
            Error::Forbidden => "your roles do not allow this",
            Error::MfaRequired => "this needs a session that passed multi-factor authentication",
            Error::LastAdmin => "the last admin cannot lose the admin role",
            Error::InvalidClient => "client_id is not a registered client",
            Error::InvalidReturnTo => {
                "return_to must be a relative path or a URL under an allowed origin"
            }
            Error::InvalidState(_) => {
                "this sign-in is invalid, already used or expired; start again"
            }
            Error::IdpUnavailable => "the identity provider could not be reached; retry shortly",
            Error::InvalidIdToken(_) => "the identity provider's answer could not be verified",
            Error::FederationDenied(_) => {
                "this sign-in through the identity provider is not allowed"
            }
            Error::EmailDomainNotAllowed => {
                "the identity provider's email address is not in an allowed domain"
            }
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
            Error::Unavailable(_) => "the service is temporarily unavailable; retry shortly",
            Error::RequestTimeout => "the request body did not arrive in time",
            Error::NotFound => "no such resource",
            Error::MethodNotAllowed => "method not allowed on this resource",
            Error::NotReady => "the service is not ready",
            Error::Database(_) | Error::Internal(_) => "internal error",
        }
    }
}

impl Error {
    /// Seconds a client should wait before retrying (`Retry-After`), for
    /// the errors that are about time rather than about the request.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after_secs } => Some((*retry_after_secs).max(1)),
            Error::Overloaded => Some(1),
            // About the database's acquire timeout: by then a restarted
            // PostgreSQL is usually back.
            Error::Unavailable(_) | Error::NotReady => Some(2),
            Error::IdpUnavailable => Some(5),
            _ => None,
        }
    }

    /// Whether the connection should close after this answer: the request
    /// body was not (fully) read, so the stream cannot carry another request.
    pub fn closes_connection(&self) -> bool {
        matches!(self, Error::PayloadTooLarge | Error::RequestTimeout)
    }

    /// Errors whose cause belongs in the log (the client gets only the code).
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Error::Database(_) | Error::Internal(_) | Error::Unavailable(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_outage_carried_by_anyhow_is_still_unavailable() {
        let carried = anyhow::Error::from(sqlx::Error::PoolTimedOut).context("opening a key");
        assert_eq!(Error::from(carried).code(), "unavailable");
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut");
        assert_eq!(
            Error::from(anyhow::Error::from(sqlx::Error::Io(io))).code(),
            "unavailable"
        );
        assert_eq!(
            Error::from(anyhow::anyhow!("a sealing key does not open")).code(),
            "internal_error"
        );
    }
}
