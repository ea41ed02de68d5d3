//! The scenarios, each a function from a concurrency level to a run.
use reqwest::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::cpu::Meter;
use crate::load::{self, Run};
use crate::target::{MFA_SECRET, PASSWORD, mfa_user_email, user_email};

#[derive(Clone)]
pub struct Target {
    pub client: Client,
    pub base_url: String,
    pub users: usize,
    /// Measures where the CPU goes while each run's load is on.
    pub meter: Meter,
}

/// (status, body) of one call; status 0 when no HTTP answer came.
async fn post(target: &Target, path: &str, body: &Value) -> (u16, Option<Value>) {
    match target
        .client
        .post(format!("{}{path}", target.base_url))
        .json(body)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.ok())
        }
        Err(_) => (0, None),
    }
}

async fn get(target: &Target, path: &str, bearer: Option<&str>) -> u16 {
    let mut request = target.client.get(format!("{}{path}", target.base_url));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

fn field(body: &Option<Value>, name: &str) -> Option<String> {
    body.as_ref()?.get(name)?.as_str().map(str::to_owned)
}

/// A native login as seeded user `i`: (status, access token, refresh token).
async fn login(target: &Target, i: usize) -> (u16, Option<String>, Option<String>) {
    let body = json!({ "email": user_email(i % target.users), "password": PASSWORD, "client_type": "native" });
    let (status, body) = post(target, "/v1/auth/login", &body).await;
    (
        status,
        field(&body, "access_token"),
        field(&body, "refresh_token"),
    )
}

/// Logs in until it works (setup must not fail on a transient 503).
async fn setup_login(target: &Target, i: usize) -> (String, String) {
    loop {
        if let (200, Some(access), Some(refresh)) = login(target, i).await {
            return (access, refresh);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn login_storm(target: &Target, workers: usize, duration: Duration) -> Run {
    load::run(target.meter, workers, duration, |w, mut rec| {
        let target = target.clone();
        async move {
            rec.start().await;
            let mut n = w;
            while rec.running() {
                let started = Instant::now();
                let (status, _, _) = login(&target, n).await;
                rec.record(started, status);
                n += workers;
            }
        }
    })
    .await
}

pub async fn refresh(target: &Target, workers: usize, duration: Duration) -> Run {
    load::run(target.meter, workers, duration, |w, mut rec| {
        let target = target.clone();
        async move {
            let (_, mut token) = setup_login(&target, w).await;
            rec.start().await;
            while rec.running() {
                let started = Instant::now();
                let (status, body) = post(
                    &target,
                    "/v1/auth/refresh",
                    &json!({ "refresh_token": token }),
                )
                .await;
                rec.record(started, status);
                match field(&body, "refresh_token") {
                    Some(next) => token = next,
                    None => token = setup_login(&target, w).await.1,
                }
            }
        }
    })
    .await
}

pub async fn me(target: &Target, workers: usize, duration: Duration) -> Run {
    load::run(target.meter, workers, duration, |w, mut rec| {
        let target = target.clone();
        async move {
            let (access, _) = setup_login(&target, w).await;
            rec.start().await;
            while rec.running() {
                let started = Instant::now();
                let status = get(&target, "/v1/me", Some(&access)).await;
                rec.record(started, status);
            }
        }
    })
    .await
}

pub async fn jwks(target: &Target, workers: usize, duration: Duration) -> Run {
    get_storm(target, "/.well-known/jwks.json", workers, duration).await
}

/// Unauthenticated GETs of `path`, as fast as answered.
async fn get_storm(target: &Target, path: &'static str, workers: usize, duration: Duration) -> Run {
    load::run(target.meter, workers, duration, |_, mut rec| {
        let target = target.clone();
        async move {
            rec.start().await;
            while rec.running() {
                let started = Instant::now();
                let status = get(&target, path, None).await;
                rec.record(started, status);
            }
        }
    })
    .await
}

/// The HTTP floor: a trivial handler (see `floor`) at `url`, same client.
pub async fn floor(target: &Target, url: &str, workers: usize, duration: Duration) -> Run {
    let floor = Target {
        base_url: url.to_owned(),
        ..target.clone()
    };
    get_storm(&floor, "/", workers, duration).await
}

/// Sessions the open-loop refreshes take turns with: enough for 300/s with
/// up to ~400 ms in flight. A refresh due while every token is in flight
/// is counted as "not sent" (the generator's limit, not a server error).
const MIXED_SESSIONS: usize = 128;

/// What open-loop `mixed` offers besides the saturating logins.
pub struct Offered {
    pub login_workers: usize,
    pub refresh_per_sec: f64,
    pub me_per_sec: f64,
}

/// Logins saturate the hashing pool (closed loop) while refreshes and
/// /v1/me calls arrive at fixed rates (open loop, latency from when each
/// was due). Returns (logins, refreshes, me).
pub async fn mixed(target: &Target, offered: &Offered, duration: Duration) -> (Run, Run, Run) {
    use std::sync::{Arc, Mutex};
    let mut access = Vec::with_capacity(MIXED_SESSIONS);
    let mut refresh_tokens = Vec::with_capacity(MIXED_SESSIONS);
    for i in 0..MIXED_SESSIONS {
        let (a, r) = setup_login(target, i).await;
        access.push(a);
        refresh_tokens.push(r);
    }
    let access = Arc::new(access);
    let tokens = Arc::new(Mutex::new(refresh_tokens));
    let refreshes = load::open_loop(offered.refresh_per_sec, duration, |_| {
        let (target, tokens) = (target.clone(), Arc::clone(&tokens));
        async move {
            let Some(token) = tokens.lock().ok().and_then(|mut t| t.pop()) else {
                return load::NOT_SENT;
            };
            let body = json!({ "refresh_token": token });
            let (status, body) = post(&target, "/v1/auth/refresh", &body).await;
            if let (Some(next), Ok(mut tokens)) = (field(&body, "refresh_token"), tokens.lock()) {
                tokens.insert(0, next);
            }
            status
        }
    });
    let mes = load::open_loop(offered.me_per_sec, duration, |n| {
        let (target, access) = (target.clone(), Arc::clone(&access));
        async move {
            let token = &access[usize::try_from(n).unwrap_or(0) % access.len()];
            get(&target, "/v1/me", Some(token)).await
        }
    });
    tokio::join!(
        login_storm(target, offered.login_workers, duration),
        refreshes,
        mes,
    )
}

/// A login storm that also checks every 503 carries Retry-After.
pub struct CheckedRun {
    pub run: Run,
    pub rejected: u64,
    pub rejected_with_retry_after: u64,
}

pub async fn login_storm_checked(
    target: &Target,
    workers: usize,
    duration: Duration,
) -> CheckedRun {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let rejected = Arc::new(AtomicU64::new(0));
    let with_retry_after = Arc::new(AtomicU64::new(0));
    let run = load::run(target.meter, workers, duration, |w, mut rec| {
        let target = target.clone();
        let rejected = Arc::clone(&rejected);
        let with_retry_after = Arc::clone(&with_retry_after);
        async move {
            rec.start().await;
            let mut n = w;
            while rec.running() {
                let body = json!({ "email": user_email(n % target.users), "password": PASSWORD, "client_type": "native" });
                let started = Instant::now();
                let response = target.client.post(format!("{}/v1/auth/login", target.base_url)).json(&body).send().await;
                let status = response.as_ref().map_or(0, |r| r.status().as_u16());
                if let Ok(response) = response {
                    if status == 503 {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        if response.headers().contains_key("retry-after") {
                            with_retry_after.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = response.bytes().await;
                }
                rec.record(started, status);
                n += workers;
            }
        }
    })
    .await;
    CheckedRun {
        run,
        rejected: rejected.load(Ordering::Relaxed),
        rejected_with_retry_after: with_retry_after.load(Ordering::Relaxed),
    }
}

/// A login of an MFA account: the password step, then the TOTP step with
/// the current code. Each worker takes its own accounts, each once (a TOTP
/// step is accepted once per account); a worker whose accounts run out
/// stops. The latency recorded is that of both steps together.
pub async fn login_mfa(
    target: &Target,
    workers: usize,
    duration: Duration,
    accounts: usize,
) -> Run {
    load::run(target.meter, workers, duration, |w, mut rec| {
        let target = target.clone();
        async move {
            rec.start().await;
            let mut n = w;
            while rec.running() && n < accounts {
                let started = Instant::now();
                let status = login_with_totp(&target, n).await;
                rec.record(started, status);
                n += workers;
            }
        }
    })
    .await
}

async fn login_with_totp(target: &Target, i: usize) -> u16 {
    let body = json!({ "email": mfa_user_email(i), "password": PASSWORD, "client_type": "native" });
    let (status, body) = post(target, "/v1/auth/login", &body).await;
    let Some(mfa_token) = field(&body, "mfa_token") else {
        return if status == 200 { 0 } else { status };
    };
    let Some(code) = totp_now() else { return 0 };
    let body = json!({ "mfa_token": mfa_token, "code": code });
    post(target, "/v1/auth/login/mfa", &body).await.0
}

fn totp_now() -> Option<String> {
    let totp = totp_rs::Builder::new()
        .with_secret(MFA_SECRET.to_vec())
        .build()
        .ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(totp.generate(now.as_secs()).to_string())
}
