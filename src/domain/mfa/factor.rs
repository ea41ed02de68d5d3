//! Checking a second factor: a TOTP code or a recovery code, under the
//! per-account MFA throttle. A correct factor is spent at once (its time
//! step, or the recovery code), so it cannot be used again; a wrong one is
//! counted and audited.
use serde_json::json;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::mfa::{recovery, totp::TotpSecret};
use crate::domain::services::Services;
use crate::domain::throttle::Attempt;
use crate::error::{Error, Result};
use crate::storage::mfa as store;

/// What the user offered.
#[derive(Clone)]
pub enum Factor {
    Totp(String),
    RecoveryCode(String),
}

// Codes are secrets: never print them.
impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Factor::Totp(_) => "Factor::Totp([REDACTED])",
            Factor::RecoveryCode(_) => "Factor::RecoveryCode([REDACTED])",
        })
    }
}

/// Which factor was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    RecoveryCode,
}

impl Method {
    /// RFC 8176 `amr` values for a session that passed the password and
    /// this factor. A recovery code is no one-time password of a device, so
    /// it gets no `otp`, but a marker of its own.
    pub fn amr(self) -> Vec<String> {
        let values: &[&str] = match self {
            Method::Totp => &["pwd", "otp", "mfa"],
            Method::RecoveryCode => &["pwd", "mfa", RECOVERY_CODE_AMR],
        };
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::RecoveryCode => "recovery_code",
        }
    }
}

/// The `amr` marker of a session opened with a recovery code.
pub const RECOVERY_CODE_AMR: &str = "recovery_code";

/// Which enrolment a TOTP code is checked against: the pending one (to
/// activate it) or the active one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    Pending,
    Active,
}

impl Against {
    fn state(self) -> &'static str {
        match self {
            Against::Pending => "pending",
            Against::Active => "active",
        }
    }
}

/// The MFA throttle's leave to check a factor for `user_id`: taken first,
/// so that a throttled attempt spends nothing (not even an attempt of a
/// login challenge).
pub struct Guard {
    attempt: Attempt,
    user_id: Uuid,
}

impl Guard {
    /// Refuses with `rate_limited` (audited as `failure_kind`, refused)
    /// while the account's MFA counters are in backoff.
    pub async fn check(
        services: &Services,
        ctx: &Context,
        user_id: Uuid,
        failure_kind: Kind,
    ) -> Result<Self> {
        let ip = ctx
            .ip
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("MFA check without a client IP")))?;
        let mut attempt = Attempt::second_factor(&services.throttle_key, user_id, ip);
        attempt.take_turn(&services.checks_in_flight)?;
        if let Err(throttled) = attempt.check(&services.db, services.clock.now()).await {
            let details = json!({ "reason": "throttled" });
            let event = Event::by_user(failure_kind, user_id, "refused", details);
            services.audit.record(&services.db, ctx, event).await?;
            return Err(throttled);
        }
        Ok(Self { attempt, user_id })
    }

    /// Accepts and spends `factor`, or fails with `invalid_code` (a wrong
    /// or replayed factor, counted and audited as `failure_kind`). A
    /// recovery code is accepted only against an active enrolment.
    pub async fn confirm(
        self,
        services: &Services,
        ctx: &Context,
        factor: &Factor,
        against: Against,
        failure_kind: Kind,
    ) -> Result<Method> {
        let mut tx = services.db.begin().await?;
        let Some(method) = self
            .spend_in(services, ctx, &mut tx, factor, against)
            .await?
        else {
            tx.rollback().await?;
            return Err(self.refuse(services, ctx, factor, failure_kind).await);
        };
        tx.commit().await?;
        self.succeeded(services).await?;
        Ok(method)
    }

    /// Spends `factor` inside the caller's transaction, so that it commits
    /// with whatever the factor unlocks, or not at all; `None` for a wrong
    /// one. Then the caller commits and calls `succeeded`, or rolls back
    /// first and calls `refuse` (never both transactions open at once: a
    /// burst of wrong codes must not hold two connections each).
    pub async fn spend_in(
        &self,
        services: &Services,
        ctx: &Context,
        tx: &mut sqlx::PgConnection,
        factor: &Factor,
        against: Against,
    ) -> Result<Option<Method>> {
        let user_id = self.user_id;
        let Some(method) = spend(services, &mut *tx, user_id, factor, against).await? else {
            return Ok(None);
        };
        if method == Method::RecoveryCode {
            let remaining = store::recovery_codes_remaining(&mut *tx, user_id).await?;
            let details = json!({ "remaining": remaining });
            let event = Event::by_user(Kind::RecoveryCodeUsed, user_id, "success", details);
            services.audit.append(&mut *tx, ctx, event).await?;
        }
        Ok(Some(method))
    }

    /// Counts and audits a wrong factor (as `failure_kind`); the error to
    /// answer with, `invalid_code` unless recording it failed.
    pub async fn refuse(
        &self,
        services: &Services,
        ctx: &Context,
        factor: &Factor,
        failure_kind: Kind,
    ) -> Error {
        let reason = match factor {
            Factor::Totp(_) => "wrong_totp_code",
            Factor::RecoveryCode(_) => "wrong_recovery_code",
        };
        let details = json!({ "reason": reason });
        let event = Event::by_user(failure_kind, self.user_id, "failure", details);
        let now = services.clock.now();
        let recorded = async {
            let mut tx = services.db.begin().await?;
            self.attempt
                .failed(&mut tx, &services.settings.throttle, now)
                .await?;
            services.audit.append(&mut tx, ctx, event).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        match recorded.await {
            Ok(()) => Error::InvalidCode,
            Err(error) => error,
        }
    }

    /// A right factor forgives this IP's wrong ones (after the commit).
    pub async fn succeeded(self, services: &Services) -> Result<()> {
        self.attempt.succeeded(&services.db).await
    }
}

/// `Guard::check` then `Guard::confirm`.
pub async fn confirm(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    factor: &Factor,
    against: Against,
    failure_kind: Kind,
) -> Result<Method> {
    Guard::check(services, ctx, user_id, failure_kind)
        .await?
        .confirm(services, ctx, factor, against, failure_kind)
        .await
}

/// Spends the factor if it is right; `None` if it is not (or was spent).
async fn spend(
    services: &Services,
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    factor: &Factor,
    against: Against,
) -> Result<Option<Method>> {
    let now = services.clock.now();
    match factor {
        Factor::Totp(code) => {
            let Some(row) = store::totp(&mut *conn, user_id).await? else {
                return Ok(None);
            };
            if row.state != against.state() {
                return Ok(None);
            }
            let secret = TotpSecret::open(&services.mfa.secrets, user_id, &row.secret_enc)?;
            let Some(step) = secret.matching_step(code, now) else {
                return Ok(None);
            };
            let fresh = store::accept_step(&mut *conn, user_id, against.state(), step).await?;
            Ok(fresh.then_some(Method::Totp))
        }
        Factor::RecoveryCode(code) if against == Against::Active => {
            let Some(hash) = recovery::hash_input(&services.mfa.recovery, user_id, code) else {
                return Ok(None);
            };
            let spent = store::spend_recovery_code(&mut *conn, user_id, &hash, now).await?;
            Ok(spent.then_some(Method::RecoveryCode))
        }
        Factor::RecoveryCode(_) => Ok(None),
    }
}
