//! Configuration: `config/default.toml`, then the profile overlay chosen by
//! `AUTHD_PROFILE`, then `AUTHD_<SECTION>__<KEY>` environment variables (and
//! `DATABASE_URL`). Unknown keys are errors, so a typo cannot silently fall
//! back to a default.
use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

use crate::secret_files;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Test,
    Prod,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Test => "test",
            Profile::Prod => "prod",
        }
    }
}

impl FromStr for Profile {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "dev" => Ok(Profile::Dev),
            "test" => Ok(Profile::Test),
            "prod" => Ok(Profile::Prod),
            other => anyhow::bail!("unknown profile {other:?} (expected dev, test or prod)"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(skip, default = "default_profile")]
    pub profile: Profile,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub password: PasswordSettings,
    pub rate_limit: RateLimitSettings,
    pub throttle: ThrottleSettings,
    pub idempotency: IdempotencySettings,
    pub keys: KeySettings,
    pub mfa: MfaSettings,
    pub mail: MailSettings,
    pub admin: AdminSettings,
    #[serde(default)]
    pub federation: FederationSettings,
    pub secrets: SecretSettings,
    pub log: LogSettings,
}

fn default_profile() -> Profile {
    Profile::Dev
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    pub allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub max_body_bytes: usize,
    pub admin_addr: SocketAddr,
    pub shutdown_grace_secs: u64,
    pub hsts_max_age_secs: u64,
    /// Connections served at once; 0 derives it from `RLIMIT_NOFILE`.
    pub max_connections: usize,
    /// Extra connections, beyond `max_connections`, that serve only the
    /// probes (`/healthz`, `/readyz`), to peers in `probe_networks`.
    pub reserved_connections: usize,
    pub probe_networks: Vec<IpNet>,
    /// Connections one client address may hold (trusted proxies exempt).
    pub max_connections_per_peer: usize,
    pub header_read_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    pub keep_alive_idle_secs: u64,
    pub request_timeout_secs: u64,
    /// Nice of the request (tokio worker) threads (see `scheduling`).
    pub worker_nice: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Without a password: in prod, inline passwords are refused.
    pub url: SecretString,
    /// File holding the database password (e.g. a mounted secret).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    pub max_connections: u32,
    pub create_if_missing: bool,
    pub migrate_on_start: bool,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl_secs: i64,
    pub session_idle_ttl_secs: i64,
    pub session_absolute_ttl_secs: i64,
    pub refresh_reuse_leeway_secs: i64,
    pub require_verified_email: bool,
    pub default_roles: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    pub min_length: usize,
    pub max_length: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub pool_threads: usize,
    pub pool_queue: usize,
    pub pool_max_wait_ms: u64,
    /// Nice of the hashing threads (see `scheduling`).
    pub pool_nice: i32,
    /// How long a login or signup shed before its body is read waits
    /// before its 503: each flooding connection then sends at most one
    /// request per this many milliseconds, so refusals stop taking the CPU
    /// that hashing needs. 0 answers at once.
    pub shed_delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub signup: RateLimit,
    pub login: RateLimit,
    pub refresh: RateLimit,
    /// Verification resends and password-reset requests.
    pub mail: RateLimit,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub burst: u32,
    pub replenish_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSettings {
    pub ip_free_failures: i32,
    pub account_free_failures: i32,
    pub base_delay_secs: i64,
    pub max_delay_secs: i64,
    pub window_secs: i64,
    /// Wrong second factors per account, all IPs together, before backoff:
    /// far fewer than passwords, since a code has only 10^6 values.
    pub mfa_account_free_failures: i32,
    /// How long second-factor counters last without a failure.
    pub mfa_window_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencySettings {
    /// How long an `Idempotency-Key` is remembered; after it the same key
    /// starts a new request.
    pub ttl_secs: i64,
}

/// The algorithms authd signs access tokens with (`keys.algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SigningAlgorithm {
    RS256,
    ES256,
}

impl SigningAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// The algorithm of keys created from now on.
    pub algorithm: SigningAlgorithm,
    pub rsa_bits: u32,
    pub activation_delay_secs: i64,
    pub reload_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaSettings {
    /// The issuer label authenticator apps show next to the account.
    pub issuer: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Absolute lifetime of any session of an account with an admin-plane
    /// role (support, auditor, admin).
    pub session_max_secs: i64,
}

/// Sign-in through OpenID Providers (`[federation.providers.<id>]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSettings {
    #[serde(default)]
    pub providers: std::collections::BTreeMap<String, ProviderSettings>,
    /// PEM file of extra CA certificates to trust for the providers (a
    /// private CA); the public web roots are always trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Bound on each call to a provider (discovery, token, JWKS).
    #[serde(default = "default_federation_timeout")]
    pub http_timeout_secs: u64,
}

impl Default for FederationSettings {
    fn default() -> Self {
        Self {
            providers: std::collections::BTreeMap::new(),
            ca_file: None,
            http_timeout_secs: default_federation_timeout(),
        }
    }
}

fn default_federation_timeout() -> u64 {
    10
}

/// One OpenID Provider. Defaults follow the issue that specified them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The provider's issuer; discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret_file: PathBuf,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Shown on sign-in pages (`GET /v1/auth/federation`); the id if unset.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Email domains allowed to sign in (empty: any).
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Google Workspace: the ID token's `hd` claim must be this domain (a
    /// consumer Google account can hold a verified address of the company's
    /// domain; only `hd` says the company's Workspace manages it).
    #[serde(default)]
    pub hosted_domain: Option<String>,
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// IdP group → authd role, applied at every federated sign-in.
    #[serde(default)]
    pub group_roles: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_true")]
    pub auto_provision: bool,
    #[serde(default)]
    pub link_by_verified_email: bool,
    #[serde(default = "default_mfa_amr_values")]
    pub mfa_amr_values: Vec<String>,
    /// Treat every sign-in as MFA (IdPs that enforce it but send no `amr`).
    #[serde(default)]
    pub assume_mfa: bool,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_mfa_amr_values() -> Vec<String> {
    ["mfa", "otp", "hwk", "swk", "sms"]
        .map(String::from)
        .to_vec()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub transport: MailTransport,
    /// The sender, e.g. `authd <no-reply@example.com>`.
    pub from: String,
    /// The product name the messages speak of.
    pub product_name: String,
    /// Base of the links in the messages (`{link_base_url}/verify-email?token=…`).
    pub link_base_url: String,
    /// Where the `file` transport writes one `.eml` per message.
    pub file_dir: PathBuf,
    /// How often the outbox is polled for due messages.
    pub poll_interval_ms: u64,
    /// The longest pause between two delivery attempts of a message.
    pub max_retry_interval_secs: u64,
    /// A message still undelivered after this long is dropped (and logged).
    pub give_up_after_secs: i64,
    /// Mails that anyone can trigger (verification, "account exists",
    /// password reset) sent to one address per hour, at most.
    pub max_per_address_per_hour: i64,
    pub smtp: SmtpSettings,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    Smtp,
    File,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Implicit,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    pub master_key_file: PathBuf,
    pub generate_master_key: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Longest `password.shed_delay_ms`: beyond it a refused client would
/// rather time out than learn to come back later.
const MAX_SHED_DELAY_MS: u64 = 5000;

impl Settings {
    /// Loads `default.toml` + `<profile>.toml` from `dir`, then the environment.
    pub fn load(profile: Profile, dir: &Path) -> anyhow::Result<Self> {
        let mut figment = Figment::new()
            .merge(Toml::file_exact(dir.join("default.toml")))
            .merge(Toml::file(dir.join(format!("{}.toml", profile.name()))))
            .merge(
                Env::prefixed("AUTHD_")
                    // Not settings: the profile, the config dir, and the
                    // test suite's database.
                    .ignore(&["profile", "config_dir", "test_database_url"])
                    .split("__"),
            );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(Serialized::default("database.url", url));
        }
        if profile == Profile::Prod {
            refuse_inline_secrets(&figment)?;
        }
        let mut settings: Settings = figment.extract()?;
        settings.profile = profile;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.profile == Profile::Prod {
            self.validate_prod_secrets()?;
        }
        let p = &self.password;
        anyhow::ensure!(p.min_length >= 8, "password.min_length must be at least 8");
        anyhow::ensure!(
            p.max_length >= p.min_length && p.max_length <= 1024,
            "password.max_length must be between min_length and 1024"
        );
        anyhow::ensure!(
            matches!(self.keys.rsa_bits, 2048 | 3072 | 4096),
            "keys.rsa_bits must be 2048, 3072 or 4096"
        );
        anyhow::ensure!(
            (1..=300).contains(&self.keys.reload_secs),
            "keys.reload_secs must be between 1 and 300 (rotated keys retire 5 minutes after their last use)"
        );
        anyhow::ensure!(
            self.keys.activation_delay_secs >= 0,
            "keys.activation_delay_secs must not be negative"
        );
        let a = &self.auth;
        anyhow::ensure!(
            a.access_token_ttl_secs > 0,
            "auth.access_token_ttl_secs must be positive"
        );
        anyhow::ensure!(
            a.session_idle_ttl_secs > 0 && a.session_absolute_ttl_secs >= a.session_idle_ttl_secs,
            "auth.session_absolute_ttl_secs must be at least auth.session_idle_ttl_secs"
        );
        anyhow::ensure!(
            a.refresh_reuse_leeway_secs >= 0,
            "auth.refresh_reuse_leeway_secs must not be negative"
        );
        anyhow::ensure!(p.pool_queue > 0, "password.pool_queue must be positive");
        anyhow::ensure!(
            p.shed_delay_ms <= MAX_SHED_DELAY_MS,
            "password.shed_delay_ms must be at most {MAX_SHED_DELAY_MS}"
        );
        self.validate_mail()?;
        self.validate_federation()?;
        anyhow::ensure!(
            (3600..=14400).contains(&self.admin.session_max_secs),
            "admin.session_max_secs must be between 3600 and 14400 (1 to 4 hours)"
        );
        let issuer = &self.mfa.issuer;
        anyhow::ensure!(
            !issuer.trim().is_empty() && issuer.chars().count() <= 64 && !issuer.contains(':'),
            "mfa.issuer must be 1 to 64 characters without ':' (it is the otpauth label's prefix)"
        );
        anyhow::ensure!(
            self.idempotency.ttl_secs > 0,
            "idempotency.ttl_secs must be positive"
        );
        let h = &self.http;
        // Port 0 (tests) picks a free port for each listener separately.
        anyhow::ensure!(
            h.addr.port() == 0 || h.admin_addr != h.addr,
            "http.admin_addr must differ from http.addr"
        );
        anyhow::ensure!(
            h.max_connections_per_peer > 0,
            "http.max_connections_per_peer must be positive"
        );
        for (name, nice) in [
            ("http.worker_nice", h.worker_nice),
            ("password.pool_nice", self.password.pool_nice),
        ] {
            anyhow::ensure!((0..=19).contains(&nice), "{name} must be between 0 and 19");
        }
        for (name, secs) in [
            ("header_read_timeout_secs", h.header_read_timeout_secs),
            ("body_read_timeout_secs", h.body_read_timeout_secs),
            ("keep_alive_idle_secs", h.keep_alive_idle_secs),
            ("request_timeout_secs", h.request_timeout_secs),
        ] {
            anyhow::ensure!(
                (1..=3600).contains(&secs),
                "http.{name} must be between 1 and 3600"
            );
        }
        anyhow::ensure!(
            (1..=30).contains(&self.database.acquire_timeout_secs),
            "database.acquire_timeout_secs must be between 1 and 30"
        );
        for (name, limit) in [
            ("signup", self.rate_limit.signup),
            ("login", self.rate_limit.login),
            ("refresh", self.rate_limit.refresh),
            ("mail", self.rate_limit.mail),
        ] {
            anyhow::ensure!(
                limit.burst > 0 && limit.replenish_ms > 0,
                "rate_limit.{name}: burst and replenish_ms must be positive"
            );
        }
        if self.profile == Profile::Prod {
            anyhow::ensure!(
                !self.secrets.generate_master_key,
                "secrets.generate_master_key is not allowed in the prod profile"
            );
            anyhow::ensure!(
                !self.database.create_if_missing,
                "database.create_if_missing is not allowed in the prod profile"
            );
        }
        Ok(())
    }

    fn validate_mail(&self) -> anyhow::Result<()> {
        let m = &self.mail;
        anyhow::ensure!(
            m.link_base_url.starts_with("https://") || m.link_base_url.starts_with("http://"),
            "mail.link_base_url must be an http(s) URL"
        );
        anyhow::ensure!(
            m.from.contains('@'),
            "mail.from must be an address, e.g. \"authd <no-reply@example.com>\""
        );
        anyhow::ensure!(
            m.poll_interval_ms > 0 && m.max_retry_interval_secs > 0 && m.give_up_after_secs > 0,
            "mail.poll_interval_ms, mail.max_retry_interval_secs and mail.give_up_after_secs must be positive"
        );
        anyhow::ensure!(
            m.max_per_address_per_hour > 0,
            "mail.max_per_address_per_hour must be positive"
        );
        let smtp = &m.smtp;
        if m.transport == MailTransport::Smtp && smtp.tls == SmtpTls::None {
            anyhow::ensure!(
                is_loopback_host(&smtp.host),
                "mail.smtp.tls = \"none\" is allowed only towards a loopback address, not {:?}",
                smtp.host
            );
        }
        anyhow::ensure!(
            smtp.username.is_some() == smtp.password_file.is_some(),
            "mail.smtp.username and mail.smtp.password_file go together"
        );
        if let Some(path) = smtp
            .password_file
            .as_ref()
            .filter(|_| self.profile == Profile::Prod)
        {
            secret_files::check_permissions("mail.smtp.password_file", path)?;
        }
        Ok(())
    }

    fn validate_federation(&self) -> anyhow::Result<()> {
        let f = &self.federation;
        anyhow::ensure!(
            (1..=60).contains(&f.http_timeout_secs),
            "federation.http_timeout_secs must be between 1 and 60"
        );
        for (id, p) in &f.providers {
            let key = format!("federation.providers.{id}");
            // Each id has an environment name (AUTHD_FEDERATION__PROVIDERS__<ID>__…)
            // and is a path segment of the redirect URI.
            anyhow::ensure!(
                !id.is_empty()
                    && id.len() <= 32
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{key}: a provider id is 1 to 32 of a-z, 0-9 and _"
            );
            let issuer = url::Url::parse(&p.issuer)
                .map_err(|e| anyhow::anyhow!("{key}.issuer is not a URL: {e}"))?;
            let loopback = issuer.host_str().is_some_and(is_loopback_host);
            anyhow::ensure!(
                issuer.scheme() == "https" || (issuer.scheme() == "http" && loopback),
                "{key}.issuer must be https (http only towards a loopback address)"
            );
            anyhow::ensure!(
                !p.client_id.trim().is_empty(),
                "{key}.client_id must be set"
            );
            anyhow::ensure!(
                p.scopes.iter().any(|s| s == "openid"),
                "{key}.scopes must include openid"
            );
            anyhow::ensure!(
                !p.groups_claim.trim().is_empty(),
                "{key}.groups_claim must be set"
            );
            if self.profile == Profile::Prod {
                secret_files::check_permissions(
                    &format!("{key}.client_secret_file"),
                    &p.client_secret_file,
                )?;
            }
        }
        Ok(())
    }

    fn validate_prod_secrets(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !url_has_password(self.database.url.expose_secret()),
            "database.url must not contain a password in the prod profile: put it in database.password_file"
        );
        if self.secrets.master_key_file.exists() {
            secret_files::check_permissions(
                "secrets.master_key_file",
                &self.secrets.master_key_file,
            )?;
        }
        if let Some(path) = &self.database.password_file {
            secret_files::check_permissions("database.password_file", path)?;
        }
        Ok(())
    }
}

/// Every configured key (from files or the environment) whose name marks an
/// inline secret.
fn refuse_inline_secrets(figment: &Figment) -> anyhow::Result<()> {
    let data = figment.data()?;
    let mut keys = Vec::new();
    for dict in data.values() {
        collect_keys("", dict, &mut keys);
    }
    if let Some(key) = keys.iter().find(|k| secret_files::is_inline_secret(k)) {
        anyhow::bail!(
            "{key} is a secret given inline; the prod profile only takes secrets from files ({key}_file)"
        );
    }
    Ok(())
}

fn collect_keys(prefix: &str, dict: &figment::value::Dict, out: &mut Vec<String>) {
    for (name, value) in dict {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            figment::value::Value::Dict(_, inner) => collect_keys(&key, inner, out),
            _ => out.push(key),
        }
    }
}

/// `localhost`, or an address in 127.0.0.0/8 or ::1.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `postgres://user:secret@host/db` or `?password=...`.
fn url_has_password(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?']).next().unwrap_or("");
    let userinfo_password = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let query_password = url.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|kv| kv.to_ascii_lowercase().starts_with("password="))
    });
    userinfo_password || query_password
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_passwords_in_database_urls() {
        assert!(url_has_password("postgres://app:hunter2@db:5432/authd"));
        assert!(url_has_password(
            "postgres://db/authd?user=app&password=hunter2"
        ));
        assert!(!url_has_password("postgres://app@db:5432/authd"));
        assert!(!url_has_password(
            "postgres://db:5432/authd?sslmode=require"
        ));
    }

    #[test]
    fn debug_output_hides_the_database_url() {
        let db = DatabaseSettings {
            url: SecretString::from("postgres://app:hunter2@db/authd"),
            password_file: None,
            max_connections: 1,
            create_if_missing: false,
            migrate_on_start: false,
            acquire_timeout_secs: 1,
        };
        assert!(!format!("{db:?}").contains("hunter2"));
    }
}
