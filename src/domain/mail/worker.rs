//! The outbox worker: takes due rows (skipping those another replica holds),
//! resolves requests into messages, delivers messages, and deletes what is
//! done. A failed delivery is retried after 1, 2, 4 … seconds, never more
//! than `mail.max_retry_interval_secs` apart, so mail held up by an SMTP
//! outage goes out soon after the server returns; after
//! `mail.give_up_after_secs` it is dropped and logged.
use std::time::Duration;
use time::OffsetDateTime;

use crate::domain::lifecycle::requests;
use crate::domain::mail::Job;
use crate::domain::mail::templates::{self, Template};
use crate::domain::mail::transport::Transport;
use crate::domain::services::Services;
use crate::storage::outbox::{self as store, Due};

/// Rows taken per round.
const BATCH: i64 = 20;

/// Runs until the task is aborted.
pub async fn run(services: &Services, transport: Transport) {
    let poll = Duration::from_millis(services.settings.mail.poll_interval_ms);
    loop {
        match drain(services, &transport).await {
            // A full batch: there may be more at once.
            Ok(handled) if handled >= BATCH as usize => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "mail outbox round failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = services.mail.wake.notified() => {}
        }
    }
}

/// One round of up to `BATCH` rows, each in a transaction of its own (a
/// slow SMTP server then holds one row's lock, not a batch's); returns how
/// many rows it handled.
pub async fn drain(services: &Services, transport: &Transport) -> anyhow::Result<usize> {
    let mut handled = 0;
    while handled < BATCH as usize {
        let now = services.clock.now();
        let mut tx = services.db.begin().await?;
        let Some(row) = store::claim_due(&mut *tx, now, 1).await?.pop() else {
            break;
        };
        handle(services, transport, &mut tx, row, now).await?;
        tx.commit().await?;
        handled += 1;
    }
    Ok(handled)
}

async fn handle(
    services: &Services,
    transport: &Transport,
    tx: &mut sqlx::PgConnection,
    row: Due,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let job = match services.mail.open(row.id, &row.payload) {
        Ok(job) => job,
        Err(e) => {
            // Sealed under another key, or damaged: it can never be sent.
            tracing::error!(error = %e, "unreadable outbox row dropped");
            store::delete(&mut *tx, row.id).await?;
            return Ok(());
        }
    };
    match job {
        Job::Send {
            to,
            locale,
            template,
            link,
        } => {
            deliver(
                services,
                transport,
                tx,
                &row,
                (&to, &locale, template, link),
                now,
            )
            .await
        }
        request => {
            requests::resolve(services, tx, request).await?;
            store::delete(&mut *tx, row.id).await?;
            Ok(())
        }
    }
}

async fn deliver(
    services: &Services,
    transport: &Transport,
    tx: &mut sqlx::PgConnection,
    row: &Due,
    (to, locale, template, link): (&str, &str, Template, Option<String>),
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let mail = &services.settings.mail;
    let message = templates::render(template, locale, &mail.product_name, link.as_deref());
    match transport.send(&mail.from, to, &message).await {
        Ok(()) => {
            services.metrics.mail("sent");
            store::delete(&mut *tx, row.id).await?;
        }
        Err(e)
            if e.recipient_refused
                || (now - row.created_at).whole_seconds() >= mail.give_up_after_secs =>
        {
            tracing::error!(reason = %e.reason, template = ?template, "mail undeliverable; giving up");
            services.metrics.mail("gave_up");
            store::delete(&mut *tx, row.id).await?;
        }
        Err(e) => {
            tracing::warn!(reason = %e.reason, attempt = row.attempts + 1, "mail delivery failed; will retry");
            services.metrics.mail("retried");
            let pause = backoff(row.attempts, mail.max_retry_interval_secs);
            store::reschedule(&mut *tx, row.id, now + pause).await?;
        }
    }
    Ok(())
}

/// 1 s, 2 s, 4 s … after the 1st, 2nd, 3rd … failure, at most `max_secs`.
fn backoff(attempts: i32, max_secs: u64) -> time::Duration {
    let exponent = u32::try_from(attempts).unwrap_or(0).min(16);
    let secs = (1u64 << exponent).min(max_secs.max(1));
    time::Duration::seconds(i64::try_from(secs).unwrap_or(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let secs: Vec<i64> = (0..8).map(|a| backoff(a, 30).whole_seconds()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
