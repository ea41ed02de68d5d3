//! Spawning an app per test and speaking to it like a client would.
#![allow(dead_code)]

use authd::clock::{Clock, OffsetClock};
use authd::config::{Profile, Settings};
use authd::crypto::MasterKey;
use authd::startup::Application;
use authd::state::AppState;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use tokio::task::JoinHandle;

#[path = "fault_proxy.rs"]
pub mod fault_proxy;
#[path = "idp.rs"]
pub mod idp;
#[path = "smtp_sink.rs"]
pub mod smtp_sink;

pub const PASSWORD: &str = "correct horse battery staple";
pub const REFRESH_COOKIE: &str = "__Host-authd_refresh";

pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`).
    pub admin_addr: SocketAddr,
    pub client: Client,
    pub state: AppState,
    pub clock: Arc<OffsetClock>,
    pub db: PgPool,
    pub db_name: String,
    /// The master key file, for starting another app on this database.
    pub master_key_file: String,
    /// When false, dropping the app leaves its database (another app on it
    /// drops it).
    pub owns_database: bool,
}

fn admin_url() -> String {
    std::env::var("AUTHD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn database_url(database: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{database}")
}

pub fn test_settings() -> Settings {
    // Test clients (reqwest) need a rustls provider; authd's do not.
    authd::crypto::install_tls_provider();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings = Settings::load(Profile::Test, &dir).expect("test settings");
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.http.admin_addr = "127.0.0.1:0".parse().unwrap();
    settings.http.allowed_origins = vec!["https://app.example.com".into()];
    settings.mail.file_dir = tempdir().into();
    settings
}

/// Mail goes to `sink` (plain SMTP on loopback), promptly retried.
pub fn mail_to(settings: &mut Settings, sink: SocketAddr) {
    settings.mail.transport = authd::config::MailTransport::Smtp;
    settings.mail.smtp.host = sink.ip().to_string();
    settings.mail.smtp.port = sink.port();
    settings.mail.smtp.tls = authd::config::SmtpTls::None;
    settings.mail.poll_interval_ms = 50;
    settings.mail.max_retry_interval_secs = 1;
}

/// A fresh, migrated database.
pub async fn create_database() -> (String, PgPool) {
    let name = format!("authd_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect(&database_url(&name))
        .await
        .unwrap();
    authd::storage::db::migrate(&pool).await.unwrap();
    (name, pool)
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_until(configure, std::future::pending()).await.0
}

/// Like `spawn_with`, but the app serves until `shutdown` resolves; the
/// handle yields what `run_until_stopped` returned.
pub async fn spawn_until(
    configure: impl FnOnce(&mut Settings),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (TestApp, JoinHandle<std::io::Result<()>>) {
    let mut settings = test_settings();
    configure(&mut settings);
    let (db_name, pool) = create_database().await;
    start(settings, pool.clone(), pool, db_name, shutdown).await
}

/// An app whose database connections go through a `FaultProxy` (the
/// returned `TestApp::db` connects directly, for the test's own checks).
pub async fn spawn_behind_proxy(
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, fault_proxy::FaultProxy) {
    let mut settings = test_settings();
    configure(&mut settings);
    let (db_name, direct) = create_database().await;
    let url: sqlx::postgres::PgConnectOptions = database_url(&db_name).parse().unwrap();
    let upstream = tokio::net::lookup_host((url.get_host(), url.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = fault_proxy::FaultProxy::start(upstream).await;
    let proxied = authd::storage::db::pool_options(&settings.database)
        .connect_with(url.host("127.0.0.1").port(proxy.addr.port()))
        .await
        .unwrap();
    let (app, _) = start(settings, proxied, direct, db_name, std::future::pending()).await;
    (app, proxy)
}

async fn start(
    settings: Settings,
    app_pool: PgPool,
    pool: PgPool,
    db_name: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (TestApp, JoinHandle<std::io::Result<()>>) {
    let master_key_file = format!("{}/master.key", tempdir());
    let master = MasterKey::load_or_generate(Path::new(&master_key_file), true).unwrap();
    start_with_key(
        settings,
        app_pool,
        pool,
        db_name,
        shutdown,
        master,
        master_key_file,
    )
    .await
}

/// Another app on `app`'s database and master key (as after a restart).
pub async fn spawn_again(
    app: &TestApp,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, JoinHandle<std::io::Result<()>>) {
    let mut settings = test_settings();
    configure(&mut settings);
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect(&database_url(&app.db_name))
        .await
        .unwrap();
    let master = MasterKey::load("test", Path::new(&app.master_key_file)).unwrap();
    let (mut again, handle) = start_with_key(
        settings,
        pool.clone(),
        pool,
        app.db_name.clone(),
        std::future::pending(),
        master,
        app.master_key_file.clone(),
    )
    .await;
    again.owns_database = false;
    (again, handle)
}

async fn start_with_key(
    settings: Settings,
    app_pool: PgPool,
    pool: PgPool,
    db_name: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
    master: MasterKey,
    master_key_file: String,
) -> (TestApp, JoinHandle<std::io::Result<()>>) {
    let clock = Arc::new(OffsetClock::default());
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let app = Application::with_pool(settings, app_pool, &master, dyn_clock)
        .await
        .expect("build app");
    let addr = app.local_addr().unwrap();
    let admin_addr = app.admin_addr().unwrap();
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until_stopped(shutdown));
    let app = TestApp {
        addr,
        admin_addr,
        client: client_from("127.0.0.1"),
        state,
        clock,
        db: pool,
        db_name,
        master_key_file,
        owns_database: true,
    };
    (app, server)
}

/// A client whose connections come from `source` (any 127.0.0.0/8 address
/// works on Linux loopback), to act as distinct client IPs.
pub fn client_from(source: &str) -> Client {
    Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if !self.owns_database {
            return;
        }
        let name = self.db_name.clone();
        // Dropping a database needs a connection outside this test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.post_json_with(&self.client, path, body).await
    }

    pub async fn post_json_with(&self, client: &Client, path: &str, body: &Value) -> Response {
        client.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn signup(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/v1/auth/signup",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Signs up `email` with `PASSWORD` and checks it was accepted.
    pub async fn create_user(&self, email: &str) {
        let response = self.signup(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }

    pub async fn login(&self, email: &str, password: &str, client_type: &str) -> Response {
        self.login_with(&self.client, email, password, client_type)
            .await
    }

    pub async fn login_with(
        &self,
        client: &Client,
        email: &str,
        password: &str,
        client_type: &str,
    ) -> Response {
        let body = json!({ "email": email, "password": password, "client_type": client_type });
        self.post_json_with(client, "/v1/auth/login", &body).await
    }

    /// Logs in natively and returns (access_token, refresh_token).
    pub async fn login_native(&self, email: &str) -> (String, String) {
        let response = self.login(email, PASSWORD, "native").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        (
            str_field(&body, "access_token"),
            str_field(&body, "refresh_token"),
        )
    }

    pub async fn refresh_body(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    pub async fn refresh_cookie(&self, refresh_token: &str) -> Response {
        self.client
            .post(self.url("/v1/auth/refresh"))
            .header("cookie", format!("{REFRESH_COOKIE}={refresh_token}"))
            .send()
            .await
            .unwrap()
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.client
            .get(self.url("/v1/me"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    /// The JSON body of an anonymous GET of `path`.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }
}

pub fn str_field(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {field} in {body}"))
        .to_owned()
}

/// The `Set-Cookie` header for the refresh cookie, if any.
pub fn refresh_set_cookie(response: &Response) -> Option<String> {
    set_cookie(response, REFRESH_COOKIE)
}

/// The response's `Set-Cookie` header for cookie `name` (the last one).
pub fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .rfind(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The cookie's value from a `Set-Cookie` header.
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap()
}

pub fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

/// Decodes a JWT's header and claims without verifying it.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let bytes = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    let header = next();
    let claims = next();
    (header, claims)
}

pub async fn error_code(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (status, str_field(&body, "error"))
}

impl TestApp {
    /// What `authd keys rotate` does, followed by the reload every replica
    /// performs periodically. Returns the new kid.
    pub async fn rotate_keys(&self) -> String {
        self.rotate_keys_with(self.state.keys.sealing_key(), false)
            .await
    }

    pub async fn rotate_keys_with(
        &self,
        sealing: &authd::crypto::DataKey,
        immediately: bool,
    ) -> String {
        let settings = &self.state.settings;
        let rotation = authd::domain::keys::Rotation::from_settings(
            &settings.keys,
            &settings.auth,
            immediately,
        );
        let ctx = authd::domain::audit::Context::cli();
        let kid = authd::domain::keys::rotate(
            &self.db,
            sealing,
            (&self.state.audit, &ctx),
            rotation,
            self.clock.now(),
        )
        .await
        .unwrap();
        let _ = self.state.keys.reload(&self.db, self.clock.now()).await;
        kid
    }

    pub async fn reload_keys(&self) {
        self.state
            .keys
            .reload(&self.db, self.clock.now())
            .await
            .unwrap();
    }
}

pub async fn drop_database(pool: PgPool, name: &str) {
    pool.close().await;
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// The Prometheus text served at `admin_addr`'s `/metrics`.
pub async fn metrics_text(admin_addr: SocketAddr) -> String {
    // reqwest's client needs the process's TLS provider even for http.
    authd::crypto::install_tls_provider();
    reqwest::get(format!("http://{admin_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A port nothing listens on now (for a child process to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory under the system temp dir.
pub fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!("authd-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}

/// `oathtool --totp` (an implementation independent of authd's) for the
/// base32 `secret` at `at`.
pub fn oathtool(secret: &str, at: time::OffsetDateTime) -> String {
    let output = std::process::Command::new("oathtool")
        .args(["--totp", "--base32", secret, "--now"])
        .arg(format!("@{}", at.unix_timestamp()))
        .output()
        .expect("oathtool is installed (apt-get install oathtool)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Five seconds into the current 30-second TOTP step: codes made at
/// `step_start() + k * 30 s` belong to distinct, increasing steps.
pub fn step_start() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    time::OffsetDateTime::from_unix_timestamp(now - now % 30 + 5).unwrap()
}
