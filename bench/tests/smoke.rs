//! Runs the benchmark binary for a few seconds, in-process and against an
//! `authd serve` in another process (`--url`), so neither mode can rot.
//! Timings are not asserted (they belong to the benchmark, not to tests);
//! the outputs are.
// A failed expect is a failed test, with the reason in the panic.
#![allow(clippy::expect_used)]
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `authd-bench` with a short run's arguments plus `extra`; its out dir.
fn bench(extra: &[&str], env: &[(&str, String)]) -> (Output, PathBuf) {
    let out = std::env::temp_dir().join(format!(
        "authd-bench-smoke-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_authd-bench"))
        .current_dir(WORKSPACE)
        .args([
            "--duration",
            "200ms",
            "--levels",
            "1,2",
            "--users",
            "10",
            "--flood-clients",
            "8",
            "--mixed-refresh-rate",
            "20",
            "--mixed-me-rate",
            "50",
        ])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("--out-dir")
        .arg(&out)
        .output()
        .expect("run authd-bench");
    (output, out)
}

/// The report has every section, and every scenario really served requests.
fn check_report(output: &Output, out: &Path) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for heading in [
        "Physical baselines",
        "| HTTP floor | 2 |",
        "| login | 2 |",
        "| refresh | 1 |",
        "| me | 2 |",
        "| jwks | 1 |",
        "Mixed (open loop)",
        "mixed: refresh @20/s",
        "mixed: me @50/s",
        "| login+mfa |",
        "Overload",
        "Flood: 8 clients",
        "Where the CPU went",
    ] {
        assert!(
            stdout.contains(heading),
            "missing {heading:?} in:\n{stdout}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("valid JSON");
    let scenarios = json["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 10);
    let served = |s: &serde_json::Value| s["stats"]["ok"].as_u64().unwrap_or(0) > 0;
    assert!(scenarios.iter().all(served), "{json}");
    // Both MFA steps answered with tokens; the open-loop calls and the
    // flood's logins got through.
    assert!(served(&json["mfa"][0]), "{json}");
    let mixed = json["mixed"].as_array().expect("mixed");
    assert_eq!(mixed.len(), 3);
    assert!(mixed.iter().all(served), "{json}");
    assert!(json["flood"]["admitted"]["ok"].as_u64().unwrap_or(0) > 0);
    assert!(json["flood"]["server_rss_mib"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(
        json["baselines"]["argon2_verify_per_sec"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    // Every login and refresh figure is a ratio to its bound measured
    // just before and after its own run.
    let bracketed = scenarios
        .iter()
        .filter(|s| s["scenario"] == "login" || s["scenario"] == "refresh")
        .chain([&mixed[0], &json["mfa"][0]]);
    for row in bracketed {
        let around = &row["baseline_around"];
        let (before, after) = (around["before"].as_f64(), around["after"].as_f64());
        assert!(before > Some(0.0) && after > Some(0.0), "{row}");
        let mean = (before.unwrap_or(0.0) + after.unwrap_or(0.0)) / 2.0;
        let throughput = row["stats"]["throughput"].as_f64().unwrap_or(-1.0);
        let ratio = row["ratio"].as_f64().unwrap_or(-1.0);
        assert!((ratio - throughput / mean).abs() < 1e-9, "{row}");
    }
    assert!(json["flood"]["argon2_around"]["after"].as_f64() > Some(0.0));
    // The CPU meter saw the hashing pool work for logins, and PostgreSQL
    // and the server's request threads work for refreshes; the load
    // generator is told apart only when the server is another process.
    let row = |name: &str, level: u64| {
        scenarios
            .iter()
            .find(|s| s["scenario"] == name && s["concurrency"].as_u64() == Some(level))
            .map(|s| s["cpu"].clone())
            .unwrap_or_default()
    };
    let cores = |cpu: &serde_json::Value, group: &str| cpu[group].as_f64().unwrap_or(0.0);
    let (login, refresh) = (row("login", 2), row("refresh", 1));
    assert!(cores(&login, "hashing_cores") > 0.0, "{login}");
    assert!(cores(&refresh, "postgres_cores") > 0.0, "{refresh}");
    assert!(cores(&refresh, "server_other_cores") > 0.0, "{refresh}");
    assert_eq!(
        refresh["generator_cores"].is_number(),
        !json["in_process"].as_bool().unwrap_or(true),
        "{refresh}"
    );
    let svg = std::fs::read_to_string(out.join("results.svg")).expect("results.svg");
    assert!(svg.starts_with("<svg") && svg.contains("throughput"));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn benchmark_runs_in_process_and_writes_its_reports() {
    let (output, out) = bench(&[], &[]);
    check_report(&output, &out);
}

/// The `authd` binary, built beside this one by `cargo test --workspace`.
fn authd_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_authd-bench")).with_file_name("authd");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (cargo test --workspace)",
        path.display()
    );
    path
}

/// A free port for the child to bind.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn benchmark_drives_an_authd_in_another_process() {
    authd::crypto::install_tls_provider();
    let name = format!("authd_bench_remote_{}", uuid::Uuid::new_v4().simple());
    let database_url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let key_dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&key_dir).expect("key dir");
    let port = free_port();
    // The server and the bench read the same config: the test profile,
    // this database and this master key.
    let env = [
        ("AUTHD_PROFILE", "test".to_owned()),
        ("AUTHD_DATABASE__URL", database_url.clone()),
        (
            "AUTHD_SECRETS__MASTER_KEY_FILE",
            key_dir.join("master.key").display().to_string(),
        ),
        ("AUTHD_HTTP__ADDR", format!("127.0.0.1:{port}")),
        (
            "AUTHD_HTTP__ADMIN_ADDR",
            format!("127.0.0.1:{}", free_port()),
        ),
        ("AUTHD_HTTP__MAX_CONNECTIONS_PER_PEER", "4096".to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    let mut server = tokio::process::Command::new(authd_binary())
        .arg("serve")
        .current_dir(WORKSPACE)
        .env_remove("DATABASE_URL")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true)
        .spawn()
        .expect("start authd serve");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await {
            ready = response.status().is_success();
            if ready {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "authd serve never became ready");

    let pid = server.id().expect("pid").to_string();
    let args = [
        "--url",
        url.as_str(),
        "--database-url",
        database_url.as_str(),
        "--server-pid",
        pid.as_str(),
    ];
    // The server is another process: blocking this thread holds nothing up.
    let (output, out) = bench(&args, &env);
    let _ = server.kill().await;
    let mut admin = PgConnection::connect(ADMIN_URL).await.expect("admin");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop the database");
    let _ = std::fs::remove_dir_all(&key_dir);
    check_report(&output, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("in-process: includes the load generator"));
}
