//! The load runner: N workers hammer one operation for a fixed time after a
//! common start; every request's latency and status is recorded.
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

use crate::cpu::{CpuUse, Mark, Meter};

/// The status recorded for an open-loop call that was due but could not be
/// sent (nothing to send it with): the generator's limit, not the server's.
pub const NOT_SENT: u16 = 1;

/// Status 0 stands for a transport error (no HTTP answer), `NOT_SENT` for
/// a call the load generator could not make.
#[derive(Clone, Copy)]
struct Sample {
    micros: u64,
    status: u16,
}

/// What one worker hands back: samples and a clock to stop by.
pub struct Recorder {
    samples: Vec<Sample>,
    shared: Arc<Mutex<Vec<Sample>>>,
    barrier: Arc<Barrier>,
    duration: Duration,
    deadline: Option<Instant>,
    meter: Meter,
    /// The CPU reading at the common start (setup is not measured).
    start_mark: Arc<Mutex<Option<Mark>>>,
}

impl Recorder {
    /// Waits until every worker finished its setup, then starts the clock.
    pub async fn start(&mut self) {
        if self.barrier.wait().await.is_leader()
            && let Ok(mut mark) = self.start_mark.lock()
        {
            *mark = Some(self.meter.mark());
        }
        self.deadline = Some(Instant::now() + self.duration);
    }

    pub fn running(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() < d)
    }

    pub fn record(&mut self, started: Instant, status: u16) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.samples.push(Sample { micros, status });
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.append(&mut self.samples);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub workers: usize,
    pub seconds: f64,
    pub requests: u64,
    pub ok: u64,
    /// Successful (2xx) responses per second.
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Non-2xx answers by status ("transport" for no answer, "not sent"
    /// for calls the generator could not make).
    pub errors: BTreeMap<String, u64>,
}

impl Stats {
    /// Statistics of only the samples with status `status`.
    fn from_samples(workers: usize, seconds: f64, samples: &[Sample]) -> Self {
        let mut latencies: Vec<u64> = samples.iter().map(|s| s.micros).collect();
        latencies.sort_unstable();
        let pct = |p: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * (latencies.len() as f64)).ceil() as usize;
            latencies[rank.clamp(1, latencies.len()) - 1] as f64 / 1000.0
        };
        let ok = samples
            .iter()
            .filter(|s| (200..300).contains(&s.status))
            .count() as u64;
        let mut errors = BTreeMap::new();
        for sample in samples.iter().filter(|s| !(200..300).contains(&s.status)) {
            let key = match sample.status {
                0 => "transport".to_owned(),
                NOT_SENT => "not sent".to_owned(),
                status => status.to_string(),
            };
            *errors.entry(key).or_insert(0) += 1;
        }
        Stats {
            workers,
            seconds,
            requests: samples.len() as u64,
            ok,
            throughput: ok as f64 / seconds.max(f64::EPSILON),
            p50_ms: pct(50.0),
            p95_ms: pct(95.0),
            p99_ms: pct(99.0),
            max_ms: latencies.last().map_or(0.0, |m| *m as f64 / 1000.0),
            errors,
        }
    }
}

/// All samples of one run, to summarise whole or by status.
pub struct Run {
    workers: usize,
    seconds: f64,
    samples: Vec<Sample>,
    /// Where the CPU went from the common start until every worker stopped.
    pub cpu: Option<CpuUse>,
}

impl Run {
    pub fn stats(&self) -> Stats {
        Stats::from_samples(self.workers, self.seconds, &self.samples)
    }

    /// Latency statistics of the answers with this status only.
    pub fn stats_for_status(&self, status: u16) -> Stats {
        self.stats_where(|s| s == status)
    }

    /// Latency statistics of the answers whose status passes `keep`.
    pub fn stats_where(&self, keep: impl Fn(u16) -> bool) -> Stats {
        let only: Vec<Sample> = self
            .samples
            .iter()
            .copied()
            .filter(|s| keep(s.status))
            .collect();
        Stats::from_samples(self.workers, self.seconds, &only)
    }
}

/// Open loop: starts `op(n)` every `1 / rate` seconds for `duration`,
/// whether or not earlier calls have answered, and counts each latency
/// from the moment the call was due. A server that stalls thus shows as
/// latency, not as fewer requests (a closed loop, whose clients wait, would
/// hide it: its p99 under saturation measures only the client count).
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, op: F) -> Run
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = u16> + Send + 'static,
{
    let shared = Arc::new(Mutex::new(Vec::new()));
    let start = tokio::time::Instant::now();
    let calls = (rate * duration.as_secs_f64()).floor() as u64;
    let mut handles = Vec::new();
    for n in 0..calls {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due).await;
        let call = op(n);
        let shared = Arc::clone(&shared);
        handles.push(tokio::spawn(async move {
            let status = call.await;
            let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
            if let Ok(mut shared) = shared.lock() {
                shared.push(Sample { micros, status });
            }
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
    let samples = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
    Run {
        workers: 0,
        seconds: duration.as_secs_f64(),
        samples,
        cpu: None,
    }
}

/// Runs `workers` copies of `worker` (given its index and a recorder); each
/// does its setup, calls `Recorder::start`, and loops while `running()`.
pub async fn run<F, Fut>(meter: Meter, workers: usize, duration: Duration, worker: F) -> Run
where
    F: Fn(usize, Recorder) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let shared = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(workers));
    let start_mark = Arc::new(Mutex::new(None));
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let recorder = Recorder {
                samples: Vec::new(),
                shared: Arc::clone(&shared),
                barrier: Arc::clone(&barrier),
                duration,
                deadline: None,
                meter,
                start_mark: Arc::clone(&start_mark),
            };
            tokio::spawn(worker(i, recorder))
        })
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
    let samples = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
    let start = start_mark.lock().ok().and_then(|mut m| m.take());
    Run {
        workers,
        seconds: duration.as_secs_f64(),
        samples,
        cpu: start.and_then(|mark| meter.since(&mark)),
    }
}
