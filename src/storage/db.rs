//! Connecting to PostgreSQL, creating the database in dev/test, migrations.
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::time::Duration;

use crate::config::DatabaseSettings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub fn connect_options(settings: &DatabaseSettings) -> anyhow::Result<PgConnectOptions> {
    let mut options = PgConnectOptions::from_str(settings.url.expose_secret())
        .map_err(|_| anyhow::anyhow!("database.url is not a valid PostgreSQL URL"))?;
    if let Some(path) = &settings.password_file {
        let password = crate::secret_files::read("database.password_file", path)?;
        options = options.password(password.expose_secret());
    }
    // Statement logging would be noise at info level; slow ones still warn.
    Ok(options.log_statements(tracing::log::LevelFilter::Trace))
}

/// Whether PostgreSQL's autovacuum runs (a server-wide setting).
pub async fn autovacuum_on(pool: &PgPool) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT current_setting('autovacuum') = 'on'")
        .fetch_one(pool)
        .await
}

/// A pool for `settings`, creating the database first when allowed.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = connect_options(settings)?;
    if settings.create_if_missing {
        create_database_if_missing(&options).await?;
    }
    Ok(pool_options(settings).connect_with(options).await?)
}

/// How the pool behaves. `acquire_timeout` bounds the whole wait for a
/// connection (including connecting anew and the liveness check of an idle
/// one), so it is how long a request waits while PostgreSQL is gone before
/// it gets `503 unavailable`.
pub fn pool_options(settings: &DatabaseSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// A connection idle this long is pinged before use (a broken one is
/// replaced unseen). Under load connections come back within
/// milliseconds and go out again unpinged: a ping on every checkout was one
/// more round trip per query batch, on both sides' CPU.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

async fn create_database_if_missing(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        // Another replica may win the race; that is fine.
        if let Err(e) = sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            let duplicate = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04");
            if !duplicate {
                return Err(e.into());
            }
        }
        tracing::info!("created database");
    }
    admin.close().await?;
    Ok(())
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}
