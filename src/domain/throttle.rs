//! Per-account brute-force defence, stored in PostgreSQL so it holds across
//! replicas. Failures are counted per (account, client IP) with exponential
//! backoff, so an attacker elsewhere cannot lock the owner out; a higher
//! account-wide ceiling catches attacks spread over many IPs.
//!
//! Each factor has counters of its own, so failures of one never lock the
//! other. Passwords are counted under an HMAC of the normalised email, so
//! unknown addresses are throttled exactly like real ones and nothing
//! reveals which exist; second factors (TOTP and recovery codes) under an
//! HMAC of the user id, in another domain of the same key.
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::config::ThrottleSettings;
use crate::crypto::DataKey;
use crate::error::{Error, Result};
use crate::storage::throttle::{self as store, Standing};
use crate::storage::users::LoginUser;

pub const SUBJECT_LABEL: &str = crate::crypto::master_key::labels::LOGIN_THROTTLE;
const ACCOUNT_SCOPE: &str = "*";

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What every per-IP limit counts as one client: an IPv4 address (as
/// `canonical` reads it), or an IPv6 address's /64. One host commonly holds
/// a whole /64, and would otherwise get a fresh allowance with each of its
/// 2^64 addresses.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// The checks in progress in this process, one per subject (an account's
/// password, or its second factor) at a time. The counters are read before
/// a check and written after it, so parallel guesses at one account would
/// otherwise all be judged on the standing before any of them failed: a
/// burst of them at each unblock instead of one.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashSet<[u8; 32]>>);

/// A subject's turn; the next check of it may start once this drops.
#[derive(Debug)]
struct Turn {
    in_flight: Arc<InFlight>,
    subject: [u8; 32],
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut checking = self
            .in_flight
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        checking.remove(&self.subject);
    }
}

pub struct Attempt {
    subject: [u8; 32],
    ip_scope: String,
    /// Seen by `check`; a counter created after it by a concurrent failure
    /// from the same IP merely stays until it decays.
    has_ip_counter: bool,
    /// A second factor's counters (`throttle.mfa_*`), not a password's.
    second_factor: bool,
    turn: Option<Turn>,
}

impl Attempt {
    /// A password for the account with this email key.
    pub fn password(key: &DataKey, email_key: &str, ip: IpAddr) -> Self {
        Self::new(key, key.hmac(email_key.as_bytes()), ip)
    }

    /// A second factor for this account. The prefix keeps these subjects
    /// apart from every email key (no address starts with a NUL).
    pub fn second_factor(key: &DataKey, user_id: Uuid, ip: IpAddr) -> Self {
        let mut input = b"\0mfa\0".to_vec();
        input.extend_from_slice(user_id.as_bytes());
        Self {
            second_factor: true,
            ..Self::new(key, key.hmac(&input), ip)
        }
    }

    /// The IP scope is a keyed hash of the address too: the table holds
    /// neither addresses nor IPs (nothing to shred when an account goes).
    fn new(key: &DataKey, subject: [u8; 32], ip: IpAddr) -> Self {
        let mut input = b"\0ip\0".to_vec();
        input.extend_from_slice(client_network(ip).to_string().as_bytes());
        let ip_scope = key
            .hmac(&input)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            subject,
            ip_scope,
            has_ip_counter: false,
            second_factor: false,
            turn: None,
        }
    }

    /// Takes the subject's turn for the whole check, or refuses with
    /// `rate_limited` while another check of it is running here.
    pub fn take_turn(&mut self, in_flight: &Arc<InFlight>) -> Result<()> {
        let mut checking = in_flight.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !checking.insert(self.subject) {
            return Err(Error::RateLimited {
                retry_after_secs: 1,
            });
        }
        self.turn = Some(Turn {
            in_flight: Arc::clone(in_flight),
            subject: self.subject,
        });
        Ok(())
    }

    /// Refuses the attempt while either counter is in backoff.
    pub async fn check(&mut self, db: &PgPool, now: OffsetDateTime) -> Result<()> {
        let standing = self.read(db, now).await?;
        self.judge(standing, now)
    }

    /// The standing of this attempt's counters.
    pub async fn read(&self, db: &PgPool, now: OffsetDateTime) -> Result<Standing> {
        Ok(store::standing(db, &self.subject, &self.ip_scope, ACCOUNT_SCOPE, now).await?)
    }

    /// The account whose address has `email_key`, if any, and the standing
    /// of this attempt's counters, in one round trip.
    pub async fn read_with_user(
        &self,
        db: &PgPool,
        email_key: &str,
        now: OffsetDateTime,
    ) -> Result<(Option<LoginUser>, Standing)> {
        let keys = (&self.subject[..], self.ip_scope.as_str(), ACCOUNT_SCOPE);
        Ok(store::standing_with_user(db, email_key, keys, now).await?)
    }

    /// Refuses the attempt while one of its counters is blocked.
    pub fn judge(&mut self, standing: Standing, now: OffsetDateTime) -> Result<()> {
        self.has_ip_counter = standing.has_ip_counter;
        match standing.blocked_until {
            Some(until) => Err(Error::RateLimited {
                retry_after_secs: seconds_until(now, until),
            }),
            None => Ok(()),
        }
    }

    /// Counts the failure in the caller's transaction, so it commits
    /// together with the audit event that records it.
    pub async fn failed(
        &self,
        conn: &mut PgConnection,
        settings: &ThrottleSettings,
        now: OffsetDateTime,
    ) -> Result<()> {
        let (account_free, window_secs) = if self.second_factor {
            (settings.mfa_account_free_failures, settings.mfa_window_secs)
        } else {
            (settings.account_free_failures, settings.window_secs)
        };
        let window_start = now - Duration::seconds(window_secs);
        for (scope, free) in [
            (self.ip_scope.as_str(), settings.ip_free_failures),
            (ACCOUNT_SCOPE, account_free),
        ] {
            let failures =
                store::record_failure(&mut *conn, &self.subject, scope, now, window_start).await?;
            if let Some(delay) = backoff(failures, free, settings) {
                store::block(&mut *conn, &self.subject, scope, now + delay).await?;
            }
        }
        Ok(())
    }

    /// A correct password (or second factor) forgives this IP's failures of
    /// that factor; the account-wide counter only decays, so a distributed
    /// attack keeps being slowed.
    /// (Nothing to clear, and no round trip, when `check` saw no counter.)
    pub async fn succeeded(&self, db: &PgPool) -> Result<()> {
        if self.has_ip_counter {
            store::clear(db, &self.subject, &self.ip_scope).await?;
        }
        Ok(())
    }
}

fn seconds_until(now: OffsetDateTime, until: OffsetDateTime) -> u64 {
    let secs = (until - now).whole_seconds().max(0);
    u64::try_from(secs).unwrap_or(0).max(1)
}

/// `base * 2^(failures - free - 1)` once `failures` exceeds `free`, capped.
pub fn backoff(failures: i32, free: i32, settings: &ThrottleSettings) -> Option<Duration> {
    let over = failures.checked_sub(free).filter(|o| *o > 0)?;
    let exponent = u32::try_from(over - 1).unwrap_or(0).min(30);
    let secs = settings.base_delay_secs.saturating_mul(1_i64 << exponent);
    Some(Duration::seconds(secs.min(settings.max_delay_secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_counts_as_its_64_and_ipv4_as_itself() {
        let net = |s: &str| client_network(s.parse().unwrap());
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:ffff::9"));
        assert_eq!(net("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::");
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:198.51.100.7").to_string(), "198.51.100.7");
        assert_ne!(net("198.51.100.7"), net("198.51.100.8"));
    }

    #[test]
    fn backoff_doubles_after_free_failures_and_caps() {
        let s = ThrottleSettings {
            ip_free_failures: 5,
            account_free_failures: 100,
            base_delay_secs: 1,
            max_delay_secs: 900,
            window_secs: 3600,
            mfa_account_free_failures: 10,
            mfa_window_secs: 86400,
        };
        let delays: Vec<_> = (4..=9)
            .map(|f| backoff(f, 5, &s).map(|d| d.whole_seconds()))
            .collect();
        assert_eq!(delays, vec![None, None, Some(1), Some(2), Some(4), Some(8)]);
        assert_eq!(backoff(60, 5, &s).map(|d| d.whole_seconds()), Some(900));
    }
}
