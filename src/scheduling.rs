//! How the two kinds of CPU work share the cores when both want them all:
//! Argon2 hashing (the pool threads, `password.pool_nice`) and everything
//! else (the tokio worker threads: HTTP, JSON, signatures, refusals;
//! `http.worker_nice`). Linux shares a contended core between runnable
//! threads in proportion to their nice weights (nice 0 weighs 1024, each
//! step about 1.25× less), and gives idle cycles to whoever wants them. So
//! with both at nice 0 (the default; one thread of each kind per core),
//! hashing keeps about half the machine however many requests arrive (a
//! flood of refusals cannot starve logins), the workers keep half however
//! many logins wait (refresh and /v1/me keep answering), and either takes
//! all of it when the other is idle; workers at nice 5 would leave hashing
//! about three quarters. docs/performance.md has the alternatives measured.
//!
//! A thread can only set its own nice (and, unprivileged, only raise it),
//! and tokio's workers start before the configuration is read: so each
//! worker applies the configured value itself, the next time it wakes.
use std::cell::Cell;
use std::sync::atomic::{AtomicI32, Ordering};

/// The nice the tokio workers should run at (set from the configuration).
static WORKER_NICE: AtomicI32 = AtomicI32::new(0);

thread_local! {
    static APPLIED: Cell<i32> = const { Cell::new(0) };
}

/// The multi-threaded runtime `authd` runs on: its workers follow
/// `set_worker_nice`.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_unpark(follow_worker_nice)
        .build()
}

/// Asks the runtime's workers to run at `nice` from their next wake-up.
pub fn set_worker_nice(nice: i32) {
    WORKER_NICE.store(nice, Ordering::Relaxed);
}

fn follow_worker_nice() {
    let wanted = WORKER_NICE.load(Ordering::Relaxed);
    APPLIED.with(|applied| {
        if applied.get() != wanted {
            // Set or not, do not retry on every wake-up.
            applied.set(wanted);
            if let Err(error) = set_current_nice(wanted) {
                tracing::warn!(%error, nice = wanted, "could not set the request threads' nice");
            }
        }
    });
}

/// Sets the calling thread's nice (0..=19).
pub fn set_current_nice(nice: i32) -> Result<(), String> {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    let value = crossplatform_value(nice).ok_or_else(|| format!("nice {nice} is out of 0..=19"))?;
    let value = ThreadPriorityValue::try_from(value).map_err(|e| e.to_string())?;
    set_current_thread_priority(ThreadPriority::Crossplatform(value)).map_err(|e| e.to_string())
}

/// thread_priority sets a nice only through its 0..=99 scale, which it maps
/// as `trunc(40 × (1 − p / 99)) − 20` on Linux: the `p` that lands on `nice`.
fn crossplatform_value(nice: i32) -> Option<u8> {
    if !(0..=19).contains(&nice) {
        return None;
    }
    (0..=99u8).find(|p| ((40.0 * (1.0 - f32::from(*p) / 99.0)) as i32) - 20 == nice)
}

/// The calling thread's nice, from /proc (Linux).
pub fn current_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    after_comm.split_whitespace().nth(16)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nice_is_reachable_and_lands_exactly() {
        for nice in 0..=19 {
            assert!(crossplatform_value(nice).is_some(), "nice {nice}");
        }
        assert_eq!(crossplatform_value(-1), None);
        assert_eq!(crossplatform_value(20), None);
        let thread = std::thread::spawn(|| set_current_nice(7).map(|()| current_nice()));
        assert_eq!(thread.join().ok(), Some(Ok(Some(7))));
    }

    #[test]
    fn the_runtime_workers_follow_the_configured_nice() {
        let Ok(runtime) = runtime() else {
            panic!("runtime")
        };
        // Let the workers start and go idle, as they are when the
        // configuration has been read.
        std::thread::sleep(std::time::Duration::from_millis(100));
        set_worker_nice(3);
        // A spawned task runs on a worker, woken after the value was set.
        let nice =
            runtime.block_on(async { tokio::spawn(async { current_nice() }).await.ok().flatten() });
        assert_eq!(nice, Some(3));
    }
}
