//! A connection flood against the real binary at its default settings: the
//! process must never hit its file-descriptor limit, the probes must keep
//! answering, and memory must come back down once the flood ends.
use crate::helpers::*;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};

struct Served {
    child: Child,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    db: (String, sqlx::PgPool),
}

/// `authd serve` with the test profile's defaults, under `ulimit -n`
/// (hard and soft) when given.
async fn serve(nofile: Option<u32>) -> Served {
    // reqwest's clients below need the process's TLS provider.
    authd::crypto::install_tls_provider();
    let (name, pool) = create_database().await;
    let dir = tempdir();
    let key_file = format!("{dir}/master.key");
    std::fs::write(&key_file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let script = match nofile {
        Some(n) => format!("ulimit -n {n} && exec \"$0\" serve"),
        None => "exec \"$0\" serve".to_owned(),
    };
    let child = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_authd")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("AUTHD_PROFILE", "test")
        .env("RUST_LOG", "warn")
        .env("AUTHD_DATABASE__URL", database_url(&name))
        .env("AUTHD_SECRETS__MASTER_KEY_FILE", &key_file)
        .env("AUTHD_HTTP__ADDR", addr.to_string())
        .env("AUTHD_HTTP__ADMIN_ADDR", admin_addr.to_string())
        // The flood comes from 127.0.1.0/24; the probe from 127.0.0.1.
        .env("AUTHD_HTTP__PROBE_NETWORKS", r#"["127.0.0.1/32"]"#)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let served = Served {
        child,
        addr,
        admin_addr,
        db: (name, pool),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&served, "127.0.0.1", "/healthz").await != Some(200) {
        assert!(Instant::now() < deadline, "authd did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    served
}

/// The status of a GET on a new connection from `source`, if one came.
async fn get(served: &Served, source: &str, path: &str) -> Option<u16> {
    let client = reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{}{path}", served.addr))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

/// Connections that each send half a request head and then wait, as a
/// slowloris client does, from `sources` addresses at once.
async fn flood(addr: SocketAddr, sources: u8, per_source: usize) -> Vec<TcpStream> {
    let mut tasks = tokio::task::JoinSet::new();
    for source in 0..sources {
        tasks.spawn(async move {
            let mut held = Vec::new();
            for _ in 0..per_source {
                let socket = TcpSocket::new_v4().unwrap();
                socket
                    .bind(SocketAddr::new(IpAddr::from([127, 0, 1, source]), 0))
                    .unwrap();
                if let Ok(mut stream) = socket.connect(addr).await {
                    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: a").await;
                    held.push(stream);
                }
            }
            held
        });
    }
    tasks.join_all().await.into_iter().flatten().collect()
}

fn rss_kib(child: &Child) -> u64 {
    let pid = child.id().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn stop(mut served: Served) -> String {
    served.child.start_kill().unwrap();
    let _ = served.child.wait().await;
    let mut stderr = String::new();
    let mut pipe = served.child.stderr.take().unwrap();
    let _ = pipe.read_to_string(&mut stderr).await;
    let (name, pool) = served.db;
    drop_database(pool, &name).await;
    stderr
}

#[tokio::test]
async fn a_flood_larger_than_the_fd_limit_leaves_the_probes_and_the_process_standing() {
    // 256 descriptors: the derived cap is 256 - 64 - 16 (database) - 32
    // (admin) - 16 (reserve) = 128 connections. The flood opens 600.
    let served = serve(Some(256)).await;
    let held = flood(served.addr, 6, 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(&served, "127.0.0.1", "/healthz").await, Some(200));
    assert_eq!(get(&served, "127.0.0.1", "/readyz").await, Some(200));
    let metrics = metrics_text(served.admin_addr).await;
    assert!(
        metrics.contains(r#"authd_connections_refused_total{listener="public",reason="full"}"#),
        "{metrics}"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get(&served, "127.0.0.9", "/.well-known/jwks.json").await,
        Some(200)
    );
    let stderr = stop(served).await;
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    assert!(!stderr.contains("accept failed"), "{stderr}");
}

#[tokio::test]
async fn memory_comes_back_down_after_a_flood() {
    let served = serve(None).await;
    let baseline = rss_kib(&served.child);
    // 40 addresses × 110 connections: more than the 4096 the default cap
    // admits, each holding half a request head.
    let held = flood(served.addr, 40, 110).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = rss_kib(&served.child);
    assert_eq!(get(&served, "127.0.0.1", "/healthz").await, Some(200));
    drop(held);
    // jemalloc's background thread returns freed pages within its decay
    // time (10 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = rss_kib(&served.child);
    while after > baseline + 16 * 1024 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = rss_kib(&served.child);
    }
    assert!(
        peak > baseline && after <= baseline + 16 * 1024,
        "RSS baseline {baseline} KiB, peak {peak} KiB, after {after} KiB"
    );
    let stderr = stop(served).await;
    assert!(!stderr.contains("Too many open files"), "{stderr}");
}
