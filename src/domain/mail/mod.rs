//! Mail: what authd sends, and how it gets there without ever slowing or
//! failing a request. A request only adds a row to a durable outbox, in its
//! own transaction (so a mail is sent exactly when its change commits); a
//! background worker delivers it, retrying with backoff, and deletes it.
//!
//! The rule: the outbox holds no address or token in the clear (payloads
//! are sealed under the outbox data key and deleted once delivered), and
//! mails that anyone can trigger are capped per address.
pub mod templates;
pub mod transport;
pub mod worker;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::crypto::DataKey;
use crate::domain::services::Services;
use crate::error::Result;
use crate::storage::outbox as store;
use templates::Template;

/// `sealed_keys` purpose of the outbox payload key.
pub const OUTBOX_KEY_PURPOSE: &str = "mail-outbox";

/// A row of the outbox: a message to send, or a request to resolve first
/// (into a message or nothing) by the worker, off the request path, so
/// that the request does the same work whether or not an account exists.
#[derive(Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    Send {
        to: String,
        locale: String,
        template: Template,
        link: Option<String>,
    },
    ForgotPassword {
        email_key: String,
    },
    ResendVerification {
        email_key: String,
    },
}

// Addresses and links are secrets here: never print them.
impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Send { template, .. } => write!(f, "Job::Send({template:?}, [REDACTED])"),
            Job::ForgotPassword { .. } => f.write_str("Job::ForgotPassword([REDACTED])"),
            Job::ResendVerification { .. } => f.write_str("Job::ResendVerification([REDACTED])"),
        }
    }
}

/// The outbox's key and the worker's wake-up call.
pub struct Mailer {
    key: DataKey,
    wake: Notify,
}

impl Mailer {
    pub fn new(key: DataKey) -> Self {
        Self {
            key,
            wake: Notify::new(),
        }
    }

    /// Adds `job` to the outbox in the caller's transaction. `user_id` ties
    /// it to an account, so deleting the account deletes it.
    pub async fn enqueue(
        &self,
        conn: &mut PgConnection,
        user_id: Option<Uuid>,
        job: &Job,
        now: OffsetDateTime,
    ) -> Result<()> {
        let id = Uuid::new_v4();
        let plain = serde_json::to_vec(job).map_err(|e| crate::Error::Internal(e.into()))?;
        let sealed = self.key.seal(id.as_bytes(), &plain)?;
        store::insert(&mut *conn, id, user_id, &sealed, now).await?;
        Ok(())
    }

    /// Tells this process's worker there is work (after a commit).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn open(&self, id: Uuid, sealed: &[u8]) -> anyhow::Result<Job> {
        Ok(serde_json::from_slice(
            &self.key.open(id.as_bytes(), sealed)?,
        )?)
    }
}

/// A link to the web app's page `path` carrying `token`.
pub fn link(services: &Services, path: &str, token: &str) -> String {
    let base = services.settings.mail.link_base_url.trim_end_matches('/');
    format!("{base}/{path}?token={token}")
}

/// Counts a mail anyone can trigger to the address with `email_key`; false
/// when the address already got `mail.max_per_address_per_hour` this hour
/// (the mail is then dropped, and the request answers as usual).
pub async fn within_quota(
    services: &Services,
    conn: &mut PgConnection,
    email_key: &str,
) -> Result<bool> {
    let mut input = b"\0mail-quota\0".to_vec();
    input.extend_from_slice(email_key.as_bytes());
    let subject = services.throttle_key.hmac(&input);
    let now = services.clock.now();
    let max = services.settings.mail.max_per_address_per_hour;
    let allowed = store::take_quota(conn, &subject, now - Duration::hours(1), now, max).await?;
    if !allowed {
        tracing::info!("mail to an address dropped: hourly limit reached");
        services.metrics.mail_dropped("address_limit");
    }
    Ok(allowed)
}

/// Tells the account, at its current address, about a change to it (no
/// cap: only the account's own actions trigger these).
pub async fn notify(
    services: &Services,
    conn: &mut PgConnection,
    account: &crate::storage::users::MailAccount,
    template: Template,
) -> Result<()> {
    let job = Job::Send {
        to: account.email.clone(),
        locale: account.locale.clone(),
        template,
        link: None,
    };
    let now = services.clock.now();
    services
        .mail
        .enqueue(conn, Some(account.id), &job, now)
        .await
}
