//! The system under test: authd started in this process on a fresh
//! database (`Local`), or one running in another process that `--url`
//! names (`Remote`, whose database and config the bench shares to seed
//! accounts and measure baselines), plus seeding, which is kept apart from
//! measurement.
use anyhow::Context as _;
use authd::clock::{Clock, SystemClock};
use authd::config::{Profile, Settings};
use authd::crypto::MasterKey;
use authd::startup::Application;
use authd::state::AppState;
use secrecy::SecretString;
use sqlx::{Connection, PgConnection, PgPool};
use std::path::Path;
use std::sync::Arc;

pub const PASSWORD: &str = "benchmark passphrase 2026";

pub fn user_email(i: usize) -> String {
    format!("bench-user-{i}@example.com")
}

pub fn mfa_user_email(i: usize) -> String {
    format!("bench-mfa-user-{i}@example.com")
}

/// The TOTP secret every seeded MFA account shares (each sealed to its own
/// user id, as authd stores them).
pub const MFA_SECRET: &[u8; 20] = b"bench-totp-secret-20";

/// An authd to measure: where it answers, and its state (for seeding and
/// the baselines; for a remote authd, built on its database and config).
pub struct System {
    pub base_url: String,
    pub state: AppState,
    pub db: PgPool,
    /// Whose resident set to sample: this process, or the remote's pid.
    pub pid: Option<u32>,
    /// The database this bench created, to drop afterwards.
    created: Option<(String, String)>,
}

/// An in-process authd on its own database.
pub struct Local;

/// An authd in another process: `url` answers for it, `database_url` is
/// its database, `config_dir` its config (with the same `AUTHD_*`
/// overrides), so the master key and password parameters are the same.
pub struct Remote;

fn database_url(admin_url: &str, name: &str) -> String {
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    format!("{base}/{name}")
}

impl Remote {
    pub async fn connect(
        url: &str,
        database_url: &str,
        config_dir: &Path,
        profile: Profile,
        pid: Option<u32>,
    ) -> anyhow::Result<System> {
        let settings = Settings::load(profile, config_dir)?;
        // authd's own pool settings, so that the refresh transaction
        // baseline pays for a checkout what the server pays.
        let db = authd::storage::db::pool_options(&settings.database)
            .connect(database_url)
            .await
            .context("connect to the remote authd's database")?;
        // Accounts of an earlier run go, so seeding starts clean.
        sqlx::query("DELETE FROM users WHERE email_key LIKE 'bench-%@example.com'")
            .execute(&db)
            .await?;
        let master = authd::startup::load_master_key(&settings)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let state = authd::startup::build_state(settings, db.clone(), &master, clock).await?;
        Ok(System {
            base_url: url.trim_end_matches('/').to_owned(),
            state,
            db,
            pid,
            created: None,
        })
    }
}

impl Local {
    pub async fn start(admin_url: &str, config_dir: &Path) -> anyhow::Result<System> {
        let db_name = format!("authd_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .context("connect to PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;

        let mut settings = Settings::load(Profile::Test, config_dir)?;
        settings.http.addr = "127.0.0.1:0".parse()?;
        for limit in [
            &mut settings.rate_limit.signup,
            &mut settings.rate_limit.login,
            &mut settings.rate_limit.refresh,
        ] {
            limit.burst = 1_000_000;
            limit.replenish_ms = 1;
        }
        // The flood comes from one address.
        settings.http.max_connections_per_peer = 4096;
        settings.log.level = "error".into();
        let db = authd::storage::db::pool_options(&settings.database)
            .connect(&database_url(admin_url, &db_name))
            .await?;
        authd::storage::db::migrate(&db).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let app =
            Application::with_pool(settings, db.clone(), &MasterKey::generate()?, clock).await?;
        let base_url = format!("http://{}", app.local_addr()?);
        let state = app.state().clone();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Ok(System {
            base_url,
            state,
            db,
            pid: None,
            created: Some((admin_url.to_owned(), db_name)),
        })
    }
}

impl System {
    /// Inserts `count` accounts sharing one Argon2 hash of `PASSWORD`: bulk
    /// SQL, so seeding 2,000 users takes milliseconds, not 2,000 hashes.
    pub async fn seed_users(&self, count: usize) -> anyhow::Result<()> {
        let hash = self
            .state
            .passwords
            .hash(SecretString::from(PASSWORD.to_owned()))
            .await
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
        let count = i64::try_from(count)?;
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "INSERT INTO users (id, email, email_key, password_hash, email_verified, created_at, updated_at)
             SELECT gen_random_uuid(), 'bench-user-' || i || '@example.com', 'bench-user-' || i || '@example.com',
                    $1, true, now(), now()
             FROM generate_series(0, $2 - 1) AS i
             RETURNING id",
        )
        .bind(&hash)
        .bind(count)
        .fetch_all(&self.db)
        .await?;
        sqlx::query("INSERT INTO user_roles (user_id, role, granted_at) SELECT id, 'user', now() FROM users")
            .execute(&self.db)
            .await?;
        self.seed_user_keys(&ids).await
    }

    /// Gives each account the data key that signup creates with its first
    /// audit event, so that a measured login is an ordinary login and not
    /// the account's first audited event ever (which also creates its key).
    async fn seed_user_keys(&self, ids: &[uuid::Uuid]) -> anyhow::Result<()> {
        let now = self.state.clock.now();
        let mut tx = self.db.begin().await?;
        for id in ids {
            self.state
                .audit
                .user_keys()
                .open_or_create(&mut tx, *id, None, now)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Inserts `count` accounts with TOTP MFA active (secret `MFA_SECRET`).
    /// A TOTP step is accepted once per account, so each account can finish
    /// one MFA login per 30 s: the scenario uses each at most once.
    pub async fn seed_mfa_users(&self, count: usize) -> anyhow::Result<()> {
        let hash: String = sqlx::query_scalar("SELECT password_hash FROM users LIMIT 1")
            .fetch_one(&self.db)
            .await?;
        let ids: Vec<uuid::Uuid> = (0..count).map(|_| uuid::Uuid::new_v4()).collect();
        let emails: Vec<String> = (0..count).map(mfa_user_email).collect();
        let secret = authd::domain::mfa::totp::TotpSecret::from_bytes(MFA_SECRET.to_vec());
        let sealed = ids
            .iter()
            .map(|id| secret.seal(&self.state.mfa.secrets, *id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        sqlx::query(
            "INSERT INTO users (id, email, email_key, password_hash, email_verified, mfa_enabled, created_at, updated_at)
             SELECT id, email, email, $3, true, true, now(), now()
             FROM unnest($1::uuid[], $2::text[]) AS u(id, email)",
        )
        .bind(&ids)
        .bind(&emails)
        .bind(&hash)
        .execute(&self.db)
        .await?;
        sqlx::query(
            "INSERT INTO mfa_totp (user_id, secret_enc, state, created_at, activated_at)
             SELECT id, secret, 'active', now(), now() FROM unnest($1::uuid[], $2::bytea[]) AS t(id, secret)",
        )
        .bind(&ids)
        .bind(&sealed)
        .execute(&self.db)
        .await?;
        self.seed_user_keys(&ids).await
    }

    pub async fn stop(self, keep_db: bool) -> anyhow::Result<()> {
        self.db.close().await;
        if let Some((admin_url, db_name)) = self.created
            && !keep_db
        {
            let mut admin = PgConnection::connect(&admin_url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
                .execute(&mut admin)
                .await?;
        }
        Ok(())
    }
}
