//! Mailed tokens: 256 random bits (the same opaque token type as refresh
//! tokens), stored as SHA-256, single use, short-lived.
use sqlx::PgConnection;
use time::Duration;
use uuid::Uuid;

use crate::domain::refresh_tokens::PlainToken;
use crate::domain::services::Services;
use crate::error::Result;
use crate::storage::account_tokens::{self as store, NewToken};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ChangeEmail,
    ResetPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ChangeEmail => "change_email",
            Purpose::ResetPassword => "reset_password",
        }
    }

    fn lifetime(self) -> Duration {
        match self {
            Purpose::VerifyEmail | Purpose::ChangeEmail => Duration::hours(24),
            Purpose::ResetPassword => Duration::minutes(30),
        }
    }

    /// Whether a new token voids the unused older ones: a reset link or an
    /// address change is only good in its latest version.
    fn replaces_older(self) -> bool {
        matches!(self, Purpose::ResetPassword | Purpose::ChangeEmail)
    }
}

/// Voids the user's unused tokens of these purposes, in the caller's
/// transaction.
pub async fn void(conn: &mut PgConnection, user_id: Uuid, purposes: &[Purpose]) -> Result<()> {
    let names: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
    store::void(conn, user_id, &names).await?;
    Ok(())
}

/// A new token for `user_id`, stored (hashed) in the caller's transaction.
pub async fn issue(
    services: &Services,
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: Purpose,
    new_email: Option<&str>,
) -> Result<PlainToken> {
    if purpose.replaces_older() {
        void(&mut *conn, user_id, &[purpose]).await?;
    }
    let token = PlainToken::generate()?;
    let now = services.clock.now();
    let new = NewToken {
        hash: &token.hash(),
        user_id,
        purpose: purpose.as_str(),
        new_email,
        now,
        expires_at: now + purpose.lifetime(),
    };
    store::insert(&mut *conn, &new).await?;
    Ok(token)
}
