//! Physical baselines on this machine, measured in the same run: what the
//! hardware allows without HTTP, so each scenario can be read as a ratio.
use argon2::password_hash::PasswordHash;
use authd::config::PasswordSettings;
use authd::domain::audit::Context;
use authd::domain::refresh_tokens::PlainToken;
use authd::domain::sessions;
use authd::state::AppState;
use jsonwebtoken::Validation;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Baselines {
    pub cores: usize,
    /// Argon2id verifications per second on all cores, configured parameters.
    pub argon2_verify_per_sec: f64,
    /// The active signing key's algorithm (`keys.algorithm`: RS256 or ES256).
    pub signing_alg: String,
    /// Signatures / verifications per second on all cores, with that key.
    pub jwt_sign_per_sec: f64,
    pub jwt_verify_per_sec: f64,
    /// Refresh transactions (the same SQL as a refresh, through sqlx, no
    /// HTTP) per second, at the concurrency that serves them best of 1..16.
    pub refresh_tx_per_sec: f64,
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs `work` on every core for `duration`; total calls per second. Each
/// thread's rate counts up to the end of its last call (which may end after
/// `duration`), so slow calls are neither over- nor under-counted.
fn on_all_cores(duration: Duration, work: impl Fn() + Send + Sync + 'static) -> f64 {
    let work = Arc::new(work);
    let start = Instant::now();
    let deadline = start + duration;
    let threads: Vec<_> = (0..cores())
        .map(|_| {
            let work = Arc::clone(&work);
            std::thread::spawn(move || {
                let mut calls = 0u64;
                while Instant::now() < deadline {
                    work();
                    calls += 1;
                }
                calls as f64 / start.elapsed().as_secs_f64()
            })
        })
        .collect();
    threads.into_iter().filter_map(|t| t.join().ok()).sum()
}

/// Argon2id verifications of `phc` per second on all cores: each thread
/// computes the hash into one reused working area (the cheapest way to do
/// it, so the baseline is not flattered by allocation costs) and compares.
pub fn argon2_verify(
    settings: &PasswordSettings,
    phc: &str,
    duration: Duration,
) -> anyhow::Result<f64> {
    let params = argon2::Params::new(
        settings.argon2_memory_kib,
        settings.argon2_iterations,
        settings.argon2_parallelism,
        None,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let parsed = PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("{e}"))?;
    let expected = parsed
        .hash
        .ok_or_else(|| anyhow::anyhow!("no hash"))?
        .as_bytes()
        .to_vec();
    let mut salt_buf = [0u8; 64];
    let salt = parsed
        .salt
        .ok_or_else(|| anyhow::anyhow!("no salt"))?
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_vec();
    Ok(on_all_cores(duration, move || {
        thread_local! {
            static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params.clone(),
        );
        let mut out = vec![0u8; expected.len()];
        BLOCKS.with(|cell| {
            let mut blocks = cell.borrow_mut();
            blocks.resize(params.block_count(), argon2::Block::default());
            let _ = argon.hash_password_into_with_memory(
                crate::target::PASSWORD.as_bytes(),
                &salt,
                &mut out,
                &mut blocks[..],
            );
        });
        assert_eq!(out, expected, "the baseline must verify successfully");
    }))
}

/// A scenario's bound (raw Argon2id for logins, min(sign/s, refresh
/// transaction/s) for refreshes) measured just before and just after it,
/// which it is then compared with the mean of: a shared host's speed drifts
/// by tens of percent within a minute (Argon2id 82-121 verify/s across one
/// hour's runs on this project's machine, and 67 then 98 verify/s around
/// one 5 s run), so a bound taken minutes earlier misstates the ratio.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Around {
    pub before: f64,
    pub after: f64,
}

impl Around {
    pub fn mean(self) -> f64 {
        (self.before + self.after) / 2.0
    }
}

/// Measures raw Argon2id on demand: at the start, and for `Around`.
pub struct Argon2Probe {
    pub settings: PasswordSettings,
    pub phc: String,
}

impl Argon2Probe {
    pub async fn measure(&self, duration: Duration) -> anyhow::Result<f64> {
        let (settings, phc) = (self.settings.clone(), self.phc.clone());
        tokio::task::spawn_blocking(move || argon2_verify(&settings, &phc, duration)).await?
    }
}

/// Measures what bounds a refresh, min(sign/s, refresh transaction/s), on
/// demand, for `Around`: both drift with the host as Argon2id does.
pub struct RefreshProbe {
    pub state: AppState,
    pub user_id: Uuid,
    pub duration: Duration,
}

impl RefreshProbe {
    pub async fn measure(&self) -> anyhow::Result<f64> {
        // What autovacuum would have done by now (it is off on this
        // project's machine): statistics for the tables the earlier runs
        // grew, which also drops the plans this pool's connections cached
        // while those tables were nearly empty (a sequential scan of
        // `sessions` that made the transaction a third slower later on).
        sqlx::query("ANALYZE").execute(&self.state.db).await?;
        let (state, duration) = (self.state.clone(), self.duration);
        let sign = tokio::task::spawn_blocking(move || jwt_sign(&state, duration)).await??;
        let transaction = refresh_transaction(&self.state, self.user_id, self.duration).await?;
        Ok(sign.min(transaction))
    }
}

/// Runs `scenario` between two measurements of its baseline.
pub async fn around<T, F>(
    measure: impl Fn() -> F,
    scenario: impl Future<Output = T>,
) -> anyhow::Result<(T, Around)>
where
    F: Future<Output = anyhow::Result<f64>>,
{
    let before = measure().await?;
    let out = scenario.await;
    let after = measure().await?;
    Ok((out, Around { before, after }))
}

fn bench_claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "bench", "sub": Uuid::new_v4(), "aud": "bench", "exp": 4_000_000_000_i64, "iat": 1,
        "jti": Uuid::new_v4(), "sid": Uuid::new_v4(), "roles": ["user"], "amr": ["pwd"], "auth_time": 1,
    })
}

/// Signs as the service does (the key parsed once) with its active key.
pub fn jwt_sign(state: &AppState, duration: Duration) -> anyhow::Result<f64> {
    let set = state.keys.current();
    let claims = bench_claims();
    set.active.sign("at+jwt", &claims)?;
    Ok(on_all_cores(duration, move || {
        let _ = set.active.sign("at+jwt", &claims);
    }))
}

/// Signs (as the service does: the key parsed once) and verifies with the
/// service's own active key.
pub fn jwt(state: &AppState, duration: Duration) -> anyhow::Result<(f64, f64)> {
    let set = state.keys.current();
    let kid = set.active.kid.clone();
    let token = set.active.sign("at+jwt", &bench_claims())?;
    let decoding = set
        .verifying
        .get(&kid)
        .map(|k| k.key.clone())
        .ok_or_else(|| anyhow::anyhow!("no key"))?;
    let sign = jwt_sign(state, duration)?;
    let mut validation = Validation::new(set.active.algorithm().jwt());
    validation.set_audience(&["bench"]);
    let verify = on_all_cores(duration, move || {
        let _ = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation);
    });
    Ok((sign, verify))
}

/// The refresh transaction (`authd::domain::sessions::rotate`: the same SQL
/// a refresh runs) straight through sqlx on the service's pool, no HTTP.
pub async fn refresh_transaction(
    state: &AppState,
    user_id: Uuid,
    duration: Duration,
) -> anyhow::Result<f64> {
    let mut best: f64 = 0.0;
    for workers in [1, 4, 16] {
        // Sessions opened as a login opens them, before the clock starts:
        // only their refreshes are timed.
        let mut tokens = Vec::with_capacity(workers);
        for _ in 0..workers {
            tokens.push(open_session(state, user_id).await?);
        }
        let count = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + duration / 3;
        let handles: Vec<_> = tokens
            .into_iter()
            .map(|token| {
                let state = state.clone();
                let count = Arc::clone(&count);
                tokio::spawn(async move { refresh_loop(&state, token, deadline, &count).await })
            })
            .collect();
        for handle in handles {
            handle.await??;
        }
        // Up to when the last refresh ended, which may be past the deadline.
        best = best.max(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64());
    }
    Ok(best)
}

async fn open_session(state: &AppState, user_id: Uuid) -> anyhow::Result<PlainToken> {
    let client = state
        .clients
        .stored(&state.db, None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no default client"))?;
    let opening = sessions::Opening {
        user_id,
        client_type: sessions::ClientType::Native,
        client: &client,
        amr: vec!["pwd".to_owned()],
        idp: None,
    };
    let opened = sessions::open_session(state, &Context::default(), opening)
        .await
        .map_err(|e| anyhow::anyhow!("opening a session: {e}"))?;
    Ok(opened.refresh_token)
}

async fn refresh_loop(
    state: &AppState,
    mut token: PlainToken,
    deadline: Instant,
    count: &AtomicU64,
) -> anyhow::Result<()> {
    let ctx = Context::default();
    while Instant::now() < deadline {
        let (_, child) = sessions::rotate(state, &ctx, &token, OffsetDateTime::now_utc())
            .await
            .map_err(|e| anyhow::anyhow!("refresh transaction: {e}"))?;
        token = child;
        count.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
