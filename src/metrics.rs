//! Prometheus metrics, one registry per `Application` (held in `AppState`),
//! rendered in the text format 0.0.4 on the admin listener only.
//!
//! The rule this module enforces: every label value comes from a closed set
//! chosen here (route templates, status codes, fixed outcome names), never
//! from request data, so a client can neither blow up the number of series
//! nor smuggle emails, tokens or raw paths into the metrics.
//!
//! A registry per application rather than a process-global recorder: the
//! test suite runs many applications in one process, and each can then
//! assert exact values without seeing the others' traffic.
use axum::http::StatusCode;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The `Content-Type` of `render`'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Request latency buckets, in seconds: 5 ms to 10 s. Logins and signups
/// sit around one Argon2 run (tens to hundreds of ms); token refreshes and
/// the JWKS far below.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Argon2 queue wait buckets: 1 ms up to the default 2 s maximum wait.
const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
];

/// How a login request ended; the `outcome` label of `authd_logins_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    /// The password was right; the account's second factor is asked for.
    MfaRequired,
    InvalidCredentials,
    EmailNotVerified,
    /// The per-account backoff (`throttle.*`) refused the attempt.
    Throttled,
    Overloaded,
    InvalidRequest,
    Error,
}

impl LoginOutcome {
    const ALL: [Self; 8] = [
        Self::Success,
        Self::MfaRequired,
        Self::InvalidCredentials,
        Self::EmailNotVerified,
        Self::Throttled,
        Self::Overloaded,
        Self::InvalidRequest,
        Self::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::MfaRequired => "mfa_required",
            Self::InvalidCredentials => "invalid_credentials",
            Self::EmailNotVerified => "email_not_verified",
            Self::Throttled => "throttled",
            Self::Overloaded => "overloaded",
            Self::InvalidRequest => "invalid_request",
            Self::Error => "error",
        }
    }
}

/// How a refresh request ended; the `outcome` label of `authd_refreshes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Success,
    Invalid,
    Error,
}

impl RefreshOutcome {
    const ALL: [Self; 3] = [Self::Success, Self::Invalid, Self::Error];

    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Invalid => "invalid",
            Self::Error => "error",
        }
    }
}

/// The hashing pool's own series. The pool is built before the rest of the
/// state, so it holds clones of these (clones share their values).
#[derive(Clone)]
pub struct HashingPoolMetrics {
    /// Time from enqueue until a thread took the job (run or expired).
    pub wait: Histogram,
    pub queue_full: IntCounter,
    pub waited_too_long: IntCounter,
    /// Logins and signups refused before their request was read.
    pub shed: IntCounter,
    rejected: IntCounterVec,
}

impl HashingPoolMetrics {
    /// The series, not yet in any registry (`Metrics::new` registers them;
    /// the pool's unit tests use them bare).
    pub fn new() -> prometheus::Result<Self> {
        let wait = Histogram::with_opts(
            HistogramOpts::new(
                "authd_argon2_wait_seconds",
                "Time Argon2 jobs waited in the hashing pool queue before a thread took them.",
            )
            .buckets(WAIT_BUCKETS.to_vec()),
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "authd_argon2_rejected_total",
                "Argon2 jobs refused with 503 overloaded, by reason.",
            ),
            &["reason"],
        )?;
        Ok(Self {
            wait,
            queue_full: rejected.get_metric_with_label_values(&["queue_full"])?,
            waited_too_long: rejected.get_metric_with_label_values(&["waited_too_long"])?,
            shed: rejected.get_metric_with_label_values(&["shed"])?,
            rejected,
        })
    }
}

/// One listener's connection series (`listener` = `public` or `admin`).
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: IntGauge,
    refused: IntCounterVec,
    timed_out: IntCounterVec,
    accept_errors: IntCounter,
    listener: &'static str,
}

/// Decrements the open-connections gauge when the connection ends.
pub struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl ConnectionMetrics {
    pub fn open(&self) -> OpenConnection {
        self.open.inc();
        OpenConnection(self.open.clone())
    }

    /// A connection closed at accept: `reason` is `peer_limit` or `full`.
    pub fn refused(&self, reason: &'static str) {
        self.refused
            .with_label_values(&[self.listener, reason])
            .inc();
    }

    /// A connection dropped at a deadline (`header_timeout`, ...).
    pub fn timed_out(&self, reason: &'static str) {
        self.timed_out
            .with_label_values(&[self.listener, reason])
            .inc();
    }

    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }
}

/// What is read from the running service at scrape time rather than
/// counted as it happens.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub argon2_queue_depth: usize,
    pub db_connections: u32,
    pub db_idle: usize,
}

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    logins: IntCounterVec,
    refreshes: IntCounterVec,
    reuse_detected: IntCounter,
    rate_limited: IntCounterVec,
    argon2_queue_depth: IntGauge,
    db_connections: IntGaugeVec,
    hashing_pool: HashingPoolMetrics,
    connections_open: IntGaugeVec,
    connections_refused: IntCounterVec,
    connections_timed_out: IntCounterVec,
    accept_errors: IntCounterVec,
    mail: IntCounterVec,
    session_checks: IntCounterVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let metrics = Self {
            registry: Registry::new(),
            http_requests: IntCounterVec::new(
                Opts::new(
                    "authd_http_requests_total",
                    "HTTP requests on the public listener, by method, route template and status.",
                ),
                &["method", "route", "status"],
            )?,
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "authd_http_request_duration_seconds",
                    "Time from request to response head on the public listener.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["method", "route"],
            )?,
            logins: IntCounterVec::new(
                Opts::new("authd_logins_total", "Login requests, by outcome."),
                &["outcome"],
            )?,
            refreshes: IntCounterVec::new(
                Opts::new("authd_refreshes_total", "Refresh requests, by outcome."),
                &["outcome"],
            )?,
            reuse_detected: IntCounter::new(
                "authd_refresh_reuse_detected_total",
                "Spent refresh tokens presented again outside the leeway; each revoked its session.",
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new(
                    "authd_rate_limited_total",
                    "Requests refused by the per-IP rate limit, by route group.",
                ),
                &["group"],
            )?,
            argon2_queue_depth: IntGauge::new(
                "authd_argon2_queue_depth",
                "Argon2 jobs waiting for a hashing thread.",
            )?,
            db_connections: IntGaugeVec::new(
                Opts::new(
                    "authd_db_pool_connections",
                    "Open PostgreSQL connections in the pool, by state.",
                ),
                &["state"],
            )?,
            hashing_pool: HashingPoolMetrics::new()?,
            connections_open: IntGaugeVec::new(
                Opts::new(
                    "authd_connections_open",
                    "Open client connections, by listener.",
                ),
                &["listener"],
            )?,
            connections_refused: IntCounterVec::new(
                Opts::new(
                    "authd_connections_refused_total",
                    "Connections closed as soon as accepted, by listener and reason (peer_limit, full).",
                ),
                &["listener", "reason"],
            )?,
            connections_timed_out: IntCounterVec::new(
                Opts::new(
                    "authd_connections_timed_out_total",
                    "Connections dropped at a deadline, by listener and reason (header_timeout, idle_timeout, request_timeout).",
                ),
                &["listener", "reason"],
            )?,
            mail: IntCounterVec::new(
                Opts::new(
                    "authd_mail_total",
                    "Mail handled by the outbox worker, by outcome (sent, retried, gave_up, address_limit).",
                ),
                &["outcome"],
            )?,
            session_checks: IntCounterVec::new(
                Opts::new(
                    "authd_session_checks_total",
                    "Bearer requests' session checks, by where the answer came from (cache, database).",
                ),
                &["source"],
            )?,
            accept_errors: IntCounterVec::new(
                Opts::new(
                    "authd_accept_errors_total",
                    "Failed accept calls (e.g. the file-descriptor limit), each followed by a back-off.",
                ),
                &["listener"],
            )?,
        };
        metrics.register_all()?;
        metrics.zero_known_series()?;
        Ok(metrics)
    }

    fn register_all(&self) -> prometheus::Result<()> {
        let r = &self.registry;
        r.register(Box::new(self.http_requests.clone()))?;
        r.register(Box::new(self.http_duration.clone()))?;
        r.register(Box::new(self.logins.clone()))?;
        r.register(Box::new(self.refreshes.clone()))?;
        r.register(Box::new(self.reuse_detected.clone()))?;
        r.register(Box::new(self.rate_limited.clone()))?;
        r.register(Box::new(self.argon2_queue_depth.clone()))?;
        r.register(Box::new(self.db_connections.clone()))?;
        r.register(Box::new(self.hashing_pool.wait.clone()))?;
        r.register(Box::new(self.connections_open.clone()))?;
        r.register(Box::new(self.connections_refused.clone()))?;
        r.register(Box::new(self.connections_timed_out.clone()))?;
        r.register(Box::new(self.accept_errors.clone()))?;
        r.register(Box::new(self.mail.clone()))?;
        r.register(Box::new(self.session_checks.clone()))?;
        r.register(Box::new(self.hashing_pool.rejected.clone()))
    }

    /// Series with a fixed label set exist from the start at 0, so that
    /// `rate()` and `increase()` see their first increment.
    fn zero_known_series(&self) -> prometheus::Result<()> {
        for outcome in LoginOutcome::ALL {
            self.logins
                .get_metric_with_label_values(&[outcome.label()])?;
        }
        for outcome in RefreshOutcome::ALL {
            self.refreshes
                .get_metric_with_label_values(&[outcome.label()])?;
        }
        for state in ["idle", "in_use"] {
            self.db_connections.get_metric_with_label_values(&[state])?;
        }
        for source in ["cache", "database"] {
            self.session_checks
                .get_metric_with_label_values(&[source])?;
        }
        Ok(())
    }

    /// Clones of the hashing pool's series, for `HashingPool::new`.
    pub fn hashing_pool(&self) -> HashingPoolMetrics {
        self.hashing_pool.clone()
    }

    /// The connection series of one listener (`public` or `admin`).
    pub fn connections(&self, listener: &'static str) -> prometheus::Result<ConnectionMetrics> {
        Ok(ConnectionMetrics {
            open: self
                .connections_open
                .get_metric_with_label_values(&[listener])?,
            refused: self.connections_refused.clone(),
            timed_out: self.connections_timed_out.clone(),
            accept_errors: self
                .accept_errors
                .get_metric_with_label_values(&[listener])?,
            listener,
        })
    }

    /// The counter a rate limiter bumps for each request it refuses.
    pub fn rate_limited(&self, group: &'static str) -> prometheus::Result<IntCounter> {
        self.rate_limited.get_metric_with_label_values(&[group])
    }

    /// One finished request. `method` and `route` must come from closed
    /// sets (see `http::request_metrics`).
    pub fn http_request(&self, method: &str, route: &str, status: StatusCode, seconds: f64) {
        self.http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    pub fn login(&self, outcome: LoginOutcome) {
        self.logins.with_label_values(&[outcome.label()]).inc();
    }

    pub fn refresh(&self, outcome: RefreshOutcome) {
        self.refreshes.with_label_values(&[outcome.label()]).inc();
    }

    /// One mail handled: `outcome` is `sent`, `retried`, `gave_up` or
    /// `address_limit`.
    pub fn mail(&self, outcome: &'static str) {
        self.mail.with_label_values(&[outcome]).inc();
    }

    /// A mail not sent, for `reason`.
    pub fn mail_dropped(&self, reason: &'static str) {
        self.mail(reason);
    }

    /// A bearer request's session check, answered from the cache or not.
    pub fn session_check(&self, cached: bool) {
        let source = if cached { "cache" } else { "database" };
        self.session_checks.with_label_values(&[source]).inc();
    }

    pub fn refresh_reuse_detected(&self) {
        self.reuse_detected.inc();
    }

    /// The exposition text, after refreshing the sampled gauges.
    pub fn render(&self, sample: Sample) -> prometheus::Result<String> {
        let depth = i64::try_from(sample.argon2_queue_depth).unwrap_or(i64::MAX);
        self.argon2_queue_depth.set(depth);
        let idle = i64::try_from(sample.db_idle).unwrap_or(i64::MAX);
        let in_use = i64::from(sample.db_connections).saturating_sub(idle).max(0);
        self.db_connections.with_label_values(&["idle"]).set(idle);
        self.db_connections
            .with_label_values(&["in_use"])
            .set(in_use);
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}
