//! The dedicated pool for password hashing. Argon2 is CPU-bound for tens of
//! milliseconds, so it never runs on the async executor: a fixed number of
//! threads take jobs from a bounded queue; when the queue is full, or a job
//! waited too long, the caller gets `Error::Overloaded` (503 + Retry-After)
//! at once instead of unbounded latency. Memory stays bounded too: at most
//! `threads` Argon2 instances exist at any moment. Queue waits and refusals
//! are counted in `HashingPoolMetrics`.
//!
//! The threads run at `password.pool_nice`, against `http.worker_nice` for
//! the request threads: how the two share the cores is `scheduling`'s.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::{Error, Result};
use crate::metrics::HashingPoolMetrics;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A reserved place in the pool; dropping it unused frees it.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

pub struct HashingPool {
    slots: Arc<Semaphore>,
    sender: SyncSender<(Instant, Job)>,
    queued: Arc<AtomicUsize>,
    max_wait: Duration,
    metrics: HashingPoolMetrics,
}

impl HashingPool {
    /// `threads == 0` means one per available core.
    pub fn new(
        threads: usize,
        queue: usize,
        max_wait: Duration,
        nice: i32,
        metrics: HashingPoolMetrics,
    ) -> anyhow::Result<Self> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        // Slots bound the work in flight; the channel can hold all of it.
        let slots = Arc::new(Semaphore::new(threads + queue));
        let (sender, receiver) = sync_channel::<(Instant, Job)>(threads + queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let queued = Arc::new(AtomicUsize::new(0));
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            let queued = Arc::clone(&queued);
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    if nice != 0
                        && let Err(error) = crate::scheduling::set_current_nice(nice)
                    {
                        tracing::warn!(%error, nice, "could not set the hashing threads' nice");
                    }
                    worker(&receiver, &queued)
                })?;
        }
        Ok(Self {
            slots,
            sender,
            queued,
            max_wait,
            metrics,
        })
    }

    /// Jobs waiting for a thread right now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Whether a request that would hash should be refused unread: the
    /// pool is full now (counted). A `false` promises nothing: the request
    /// still reserves its place, and may be refused then.
    pub fn full(&self) -> bool {
        let full = self.slots.available_permits() == 0;
        if full {
            self.metrics.shed.inc();
        }
        full
    }

    /// Takes a place in the pool (running or queued), or refuses at once.
    /// Callers reserve before any other work, so an overloaded pool turns
    /// requests away before they cost database round trips.
    pub fn reserve(&self) -> Result<Slot> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .map(|_permit| Slot { _permit })
            .map_err(|_| {
                self.metrics.queue_full.inc();
                Error::Overloaded
            })
    }

    /// Reserves a place and runs `work` in it.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let slot = self.reserve()?;
        self.run_in(slot, work).await
    }

    /// Runs `work` on the pool in a reserved place and waits for its result
    /// without blocking the executor.
    pub async fn run_in<T, F>(&self, slot: Slot, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let max_wait = self.max_wait;
        let job: Job = Box::new(move || {
            // A caller that went away (client disconnected) needs no answer.
            if !tx.is_closed() {
                let _ = tx.send(work());
            }
        });
        let enqueued = Instant::now();
        let (wait, expired) = (
            self.metrics.wait.clone(),
            self.metrics.waited_too_long.clone(),
        );
        let wrapped: Job = Box::new(move || {
            // The place is freed when the job ends (or is dropped unrun).
            let _slot = slot;
            let waited = enqueued.elapsed();
            wait.observe(waited.as_secs_f64());
            if waited <= max_wait {
                job();
            } else {
                expired.inc();
            }
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send((enqueued, wrapped)) {
            Ok(()) => {}
            Err(error) => {
                // Disconnected would mean every worker is gone, which the
                // workers' endless loop rules out; only Full is counted.
                if matches!(error, TrySendError::Full(_)) {
                    self.metrics.queue_full.inc();
                }
                self.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(Error::Overloaded);
            }
        }
        // A dropped sender means the job expired in the queue.
        rx.await.map_err(|_| Error::Overloaded)
    }
}

fn worker(receiver: &Mutex<Receiver<(Instant, Job)>>, queued: &AtomicUsize) {
    loop {
        let next = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((_, job)) = next else { return };
        queued.fetch_sub(1, Ordering::Relaxed);
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> HashingPoolMetrics {
        let Ok(metrics) = HashingPoolMetrics::new() else {
            panic!("metrics")
        };
        metrics
    }

    #[tokio::test]
    async fn runs_work_off_the_executor() {
        let pool =
            HashingPool::new(1, 4, Duration::from_secs(5), 0, metrics()).map_err(|e| e.to_string());
        let Ok(pool) = pool else { panic!("pool") };
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .map_err(|e| e.code());
        assert_eq!(name, Ok(Some("argon2-0".to_owned())));
    }

    #[tokio::test]
    async fn hashing_threads_run_at_the_configured_nice() {
        let Ok(pool) = HashingPool::new(1, 4, Duration::from_secs(5), 9, metrics()) else {
            panic!("pool")
        };
        let worker = pool.run(crate::scheduling::current_nice).await;
        assert_eq!(worker.map_err(|e| e.code()), Ok(Some(9)));
    }

    #[tokio::test]
    async fn refuses_work_beyond_the_queue_bound() {
        let counted = metrics();
        let Ok(pool) = HashingPool::new(1, 1, Duration::from_secs(5), 0, counted.clone()) else {
            panic!("pool")
        };
        let pool = Arc::new(pool);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        // One job occupies the thread, one fills the queue; the third is refused.
        let mut running = Vec::new();
        for _ in 0..2 {
            let pool = Arc::clone(&pool);
            let rx = Arc::clone(&release_rx);
            running.push(tokio::spawn(async move {
                pool.run(move || {
                    let _ = rx.lock().map(|r| r.recv());
                })
                .await
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let third = pool.run(|| ()).await;
        assert!(matches!(third, Err(Error::Overloaded)));
        assert_eq!(counted.queue_full.get(), 1);
        for _ in 0..2 {
            let _ = release_tx.send(());
        }
        for handle in running {
            assert!(matches!(handle.await, Ok(Ok(()))));
        }
    }

    #[tokio::test]
    async fn drops_jobs_that_waited_too_long() {
        let counted = metrics();
        let Ok(pool) = HashingPool::new(1, 4, Duration::from_millis(20), 0, counted.clone()) else {
            panic!("pool")
        };
        let pool = Arc::new(pool);
        let slow = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                pool.run(|| std::thread::sleep(Duration::from_millis(200)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let late = pool.run(|| ()).await;
        assert!(matches!(late, Err(Error::Overloaded)));
        assert!(matches!(slow.await, Ok(Ok(()))));
        assert_eq!(counted.waited_too_long.get(), 1);
        assert_eq!(counted.queue_full.get(), 0);
        assert_eq!(counted.wait.get_sample_count(), 2);
    }
}
