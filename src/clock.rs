//! Time as a dependency: every expiry decision reads the clock in `AppState`,
//! so tests can move time forward instead of sleeping.
use std::sync::Mutex;
use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Wall clock plus an offset that tests can advance, or a pinned instant
/// (for checks that depend on the exact second, such as TOTP steps).
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: Mutex<Duration>,
    pinned: Mutex<Option<OffsetDateTime>>,
}

impl OffsetClock {
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        *offset += by;
    }

    /// From now on the clock reads `at` (plus later `advance`s) and stands
    /// still otherwise.
    pub fn pin(&self, at: OffsetDateTime) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) = Duration::ZERO;
        *self.pinned.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> OffsetDateTime {
        let offset = *self.offset.lock().unwrap_or_else(|p| p.into_inner());
        let pinned = *self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        pinned.unwrap_or_else(OffsetDateTime::now_utc) + offset
    }
}
