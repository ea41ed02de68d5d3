//! authd-bench: measures authd against the machine's physical limits.
//!
//! It starts authd in-process on a fresh PostgreSQL database, or drives one
//! running in another process (`--url`, with that authd's database and
//! config, so that server and load are measured apart), seeds users in
//! bulk, measures the baselines (raw Argon2id, raw RS256, the refresh
//! transaction through sqlx, the HTTP floor), then runs each scenario at
//! every concurrency level, an open-loop mixed load and a flood, and writes
//! a markdown table (stdout), JSON and an SVG chart.
#![forbid(unsafe_code)]

mod baselines;
mod cpu;
mod floor;
mod load;
mod report;
mod scenarios;
mod target;

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use report::{Flood, Overload, Report, ScenarioResult};
use scenarios::Target;

/// authd's allocator, built with the same options (huge pages): the raw
/// Argon2id baseline must hash on the same kind of memory as the server.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    about = "Load benchmark for authd: throughput and latency against the machine's physical limits"
)]
struct Args {
    /// Seeded accounts that logins cycle through.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// How long each scenario runs at each concurrency level (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrency levels, comma-separated.
    #[arg(long, default_value = "1,4,16,64", value_delimiter = ',')]
    levels: Vec<usize>,
    /// An authd already running elsewhere to measure; then
    /// `--database-url` must be its database and `--config-dir` with
    /// `--profile` (and the same `AUTHD_*` variables) its configuration.
    #[arg(long)]
    url: Option<String>,
    /// With `--url`: the server's pid, whose memory is sampled.
    #[arg(long)]
    server_pid: Option<u32>,
    /// With `--url`: the server's config profile.
    #[arg(long, env = "AUTHD_PROFILE", default_value = "test")]
    profile: authd::config::Profile,
    /// Clients in the flood scenario (logins without back-off).
    #[arg(long, default_value_t = 256)]
    flood_clients: usize,
    /// Refreshes per second offered in the open-loop mixed scenario.
    #[arg(long, default_value_t = 300.0)]
    mixed_refresh_rate: f64,
    /// /v1/me calls per second offered in the open-loop mixed scenario.
    #[arg(long, default_value_t = 1000.0)]
    mixed_me_rate: f64,
    /// PostgreSQL server (any database on it); a fresh database is created.
    /// With `--url`, the remote authd's own database.
    #[arg(
        long,
        env = "AUTHD_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Directory with authd's config (the test profile is used).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    /// Where the JSON and SVG results go.
    #[arg(long, default_value = "bench-results")]
    out_dir: PathBuf,
    /// Keep the benchmark database afterwards.
    #[arg(long)]
    keep_db: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.trim().split_at(
        text.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {text:?} (ms, s or m)")),
    }
}

/// Samples the server's resident set (VmRSS of `pid`, or of this process)
/// until stopped.
fn rss_sampler(
    pid: Option<u32>,
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let status = pid.map_or("/proc/self/status".to_owned(), |p| {
        format!("/proc/{p}/status")
    });
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let rss = std::fs::read_to_string(&status).ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            });
            if let Some(kib) = rss {
                peak_kib.fetch_max(kib, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// A run against its baseline measured around it (`baselines::around`).
fn result_around(
    scenario: &str,
    run: &load::Run,
    baseline: &str,
    around: baselines::Around,
) -> ScenarioResult {
    ScenarioResult {
        baseline_around: Some(around),
        ..result(scenario, run, Some((baseline, around.mean())))
    }
}

const ARGON2: &str = "argon2 verify/s";

fn result(scenario: &str, run: &load::Run, baseline: Option<(&str, f64)>) -> ScenarioResult {
    let stats = run.stats();
    ScenarioResult {
        scenario: scenario.into(),
        concurrency: stats.workers,
        baseline: baseline.map(|(name, _)| name.to_owned()),
        ratio: baseline.map(|(_, per_sec)| stats.throughput / per_sec.max(f64::EPSILON)),
        baseline_around: None,
        stats,
        cpu: run.cpu,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    authd::crypto::install_tls_provider();
    let args = Args::parse();
    std::fs::create_dir_all(&args.out_dir)?;
    let system = match &args.url {
        Some(url) => {
            eprintln!("driving authd at {url}; seeding {} users", args.users);
            let (db, config) = (&args.database_url, &args.config_dir);
            target::Remote::connect(url, db, config, args.profile, args.server_pid).await?
        }
        None => {
            eprintln!(
                "starting authd on a fresh database and seeding {} users",
                args.users
            );
            target::Local::start(&args.database_url, &args.config_dir).await?
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let peak_kib = Arc::new(AtomicU64::new(0));
    let sampler = rss_sampler(system.pid, Arc::clone(&stop), Arc::clone(&peak_kib));
    system.seed_users(args.users).await?;
    system.seed_mfa_users(args.users).await?;
    let settings = system.state.settings.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.flood_clients.max(256))
        .build()?;
    let target = Target {
        client,
        base_url: system.base_url.clone(),
        users: args.users,
        meter: cpu::Meter::new(args.url.is_none(), args.server_pid),
    };

    eprintln!("measuring baselines");
    let phc: String = sqlx::query_scalar(
        "SELECT password_hash FROM users WHERE email_key LIKE 'bench-user-%' LIMIT 1",
    )
    .fetch_one(&system.db)
    .await?;
    let user_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email_key LIKE 'bench-user-%' LIMIT 1")
            .fetch_one(&system.db)
            .await?;
    let argon2 = baselines::Argon2Probe {
        settings: settings.password.clone(),
        phc,
    };
    let argon = argon2.measure(args.duration).await?;
    // Logins and refreshes are compared with their bound measured just
    // before and after each run (`baselines::Around`).
    let bracket = args.duration.min(Duration::from_secs(2));
    let refresh_probe = baselines::RefreshProbe {
        state: system.state.clone(),
        user_id,
        duration: bracket,
    };
    let (sign, verify) = {
        let (state, d) = (system.state.clone(), args.duration);
        tokio::task::spawn_blocking(move || baselines::jwt(&state, d)).await??
    };
    let refresh_tx = baselines::refresh_transaction(&system.state, user_id, args.duration).await?;
    let base = baselines::Baselines {
        cores: baselines::cores(),
        argon2_verify_per_sec: argon,
        signing_alg: system
            .state
            .keys
            .current()
            .active
            .algorithm()
            .name()
            .to_owned(),
        jwt_sign_per_sec: sign,
        jwt_verify_per_sec: verify,
        refresh_tx_per_sec: refresh_tx,
    };
    let refresh_baseline = format!("min({} sign/s, refresh tx/s)", base.signing_alg);
    let floor_url = floor::serve().await?;

    let mut results = Vec::new();
    for &level in &args.levels {
        eprintln!("concurrency {level}: HTTP floor, login, refresh, /v1/me, jwks");
        let d = args.duration;
        let floor = scenarios::floor(&target, &floor_url, level, d).await;
        let floor_per_sec = floor.stats().throughput;
        results.push(result("HTTP floor", &floor, None));
        let (logins, around) = baselines::around(
            || argon2.measure(bracket),
            scenarios::login_storm(&target, level, d),
        )
        .await?;
        results.push(result_around("login", &logins, ARGON2, around));
        let (refreshes, around) = baselines::around(
            || refresh_probe.measure(),
            scenarios::refresh(&target, level, d),
        )
        .await?;
        results.push(result_around(
            "refresh",
            &refreshes,
            &refresh_baseline,
            around,
        ));
        results.push(result(
            "me",
            &scenarios::me(&target, level, d).await,
            Some(("HTTP floor", floor_per_sec)),
        ));
        results.push(result(
            "jwks",
            &scenarios::jwks(&target, level, d).await,
            Some(("HTTP floor", floor_per_sec)),
        ));
    }

    let pool_threads = match settings.password.pool_threads {
        0 => base.cores,
        n => n,
    };
    let offered = scenarios::Offered {
        login_workers: pool_threads * 4,
        refresh_per_sec: args.mixed_refresh_rate,
        me_per_sec: args.mixed_me_rate,
    };
    eprintln!(
        "mixed: logins saturating the pool; {} refresh/s and {} /v1/me/s offered",
        offered.refresh_per_sec, offered.me_per_sec
    );
    // The logins' run spans the whole mixed load: its CPU is all of it.
    let ((logins, refreshes, mes), around) = baselines::around(
        || argon2.measure(bracket),
        scenarios::mixed(&target, &offered, args.duration),
    )
    .await?;
    let mixed = vec![
        result_around("mixed: login", &logins, ARGON2, around),
        result(
            &format!("mixed: refresh @{}/s", offered.refresh_per_sec),
            &refreshes,
            None,
        ),
        result(&format!("mixed: me @{}/s", offered.me_per_sec), &mes, None),
    ];

    eprintln!("login+mfa: the password step, then a TOTP code");
    let mfa_workers = pool_threads * 2;
    let (mfa_run, around) = baselines::around(
        || argon2.measure(bracket),
        scenarios::login_mfa(&target, mfa_workers, args.duration, args.users),
    )
    .await?;
    let mfa = vec![result_around("login+mfa", &mfa_run, ARGON2, around)];

    let clients = 4 * (pool_threads + settings.password.pool_queue);
    eprintln!("overload: {clients} concurrent logins");
    let overload_run = scenarios::login_storm_checked(&target, clients, args.duration).await;
    let overload = Overload {
        clients,
        admitted: overload_run.run.stats_for_status(200),
        all: overload_run.run.stats(),
        rejected_503: overload_run.rejected,
        rejected_with_retry_after: overload_run.rejected == overload_run.rejected_with_retry_after,
        queue_bound_ms: settings.password.pool_max_wait_ms,
    };

    eprintln!("flood: {} clients, no back-off", args.flood_clients);
    let run_peak_kib = peak_kib.swap(0, Ordering::Relaxed);
    let flood_storm = scenarios::login_storm_checked(&target, args.flood_clients, args.duration);
    let run_and_peak = async {
        let run = flood_storm.await;
        (run, peak_kib.load(Ordering::Relaxed))
    };
    let ((flood_run, flood_peak_kib), flood_around) =
        baselines::around(|| argon2.measure(bracket), run_and_peak).await?;
    let admitted = flood_run.run.stats_for_status(200);
    let flood = Flood {
        clients: args.flood_clients,
        admitted_ratio: admitted.throughput / flood_around.mean().max(f64::EPSILON),
        argon2_around: flood_around,
        admitted,
        refused: flood_run.run.stats_where(|status| status != 200),
        server_rss_mib: flood_peak_kib as f64 / 1024.0,
        cpu: flood_run.run.cpu,
    };

    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let report = Report {
        date: time::OffsetDateTime::now_utc().date().to_string(),
        parameters: serde_json::json!({
            "url": args.url,
            "users": args.users,
            "duration_s": args.duration.as_secs_f64(),
            "levels": args.levels,
            "argon2": { "m_kib": settings.password.argon2_memory_kib, "t": settings.password.argon2_iterations, "p": settings.password.argon2_parallelism },
            "pool_threads": pool_threads,
            "pool_queue": settings.password.pool_queue,
            "pool_max_wait_ms": settings.password.pool_max_wait_ms,
            "shed_delay_ms": settings.password.shed_delay_ms,
            "db_max_connections": settings.database.max_connections,
            "flood_clients": args.flood_clients,
            "mixed_refresh_rate": args.mixed_refresh_rate,
            "mixed_me_rate": args.mixed_me_rate,
        }),
        baselines: base,
        scenarios: results,
        mixed,
        mfa,
        overload,
        flood,
        max_rss_mib: run_peak_kib.max(flood_peak_kib) as f64 / 1024.0,
        in_process: args.url.is_none(),
    };
    println!("{}", report::markdown(&report));
    report::write_json(&report, &args.out_dir.join("results.json"))?;
    report::write_svg(&report, &args.out_dir.join("results.svg"))?;
    eprintln!(
        "wrote {} and {}",
        args.out_dir.join("results.json").display(),
        args.out_dir.join("results.svg").display()
    );
    system.stop(args.keep_db).await?;
    Ok(())
}
