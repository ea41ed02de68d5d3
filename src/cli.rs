//! The command line: `authd serve | migrate | keys rotate | keys list`.
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{Profile, Settings};
use crate::domain::keys;
use crate::startup::{self, Application};
use crate::storage::db;
use crate::telemetry;

#[derive(Parser)]
#[command(
    name = "authd",
    version,
    about = "Self-hosted authentication service: Argon2id passwords, RS256 access tokens with JWKS, rotating refresh tokens"
)]
pub struct Cli {
    /// Configuration profile: dev, test or prod (overlay config/<profile>.toml).
    #[arg(long, env = "AUTHD_PROFILE", default_value = "dev", global = true)]
    profile: Profile,
    /// Directory holding default.toml and the profile overlays.
    #[arg(
        long,
        env = "AUTHD_CONFIG_DIR",
        default_value = "config",
        global = true
    )]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API. Connects to PostgreSQL (creating the database in
    /// dev/test), applies pending migrations (database.migrate_on_start),
    /// creates the first signing key if there is none, and listens on http.addr.
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Manage the RS256 signing keys published in the JWKS.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a new active signing key. The previous key stops signing but
    /// stays in the JWKS and keeps verifying until every token it signed has
    /// expired (access-token lifetime plus five minutes), then retires.
    Rotate,
    /// List signing keys: kid, creation time, status (active, verify-only,
    /// retired) and retirement time.
    List,
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.profile, &cli.config_dir)?;
    telemetry::init(&settings.log);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match cli.command {
        Command::Serve => serve(settings, clock).await,
        Command::Migrate => {
            let pool = db::connect(&settings.database).await?;
            db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keys { command } => keys_command(settings, clock, command).await,
    }
}

async fn serve(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let profile = settings.profile;
    let app = Application::build(settings, clock).await?;
    tracing::info!(addr = %app.local_addr()?, profile = profile.name(), "authd listening");
    app.run_until_stopped(startup::shutdown_signal()).await?;
    Ok(())
}

async fn keys_command(
    settings: Settings,
    clock: Arc<dyn Clock>,
    command: KeysCommand,
) -> anyhow::Result<()> {
    let pool = db::connect(&settings.database).await?;
    match command {
        KeysCommand::Rotate => {
            let master = startup::load_master_key(&settings)?;
            let sealing = master.derive(keys::SEALING_LABEL);
            let ttl = time::Duration::seconds(settings.auth.access_token_ttl_secs);
            let kid = keys::rotate(
                &pool,
                &sealing,
                settings.keys.rsa_bits,
                ttl,
                clock.now(),
                false,
            )
            .await?;
            println!("new active signing key: {}", kid.unwrap_or_default());
        }
        KeysCommand::List => {
            println!(
                "{:<45} {:<10} {:<28} retire_after",
                "kid", "status", "created_at"
            );
            for key in keys::list(&pool, clock.now()).await? {
                let retire = key
                    .retire_after
                    .map_or_else(|| "-".to_owned(), |t| t.to_string());
                println!(
                    "{:<45} {:<10} {:<28} {retire}",
                    key.kid,
                    key.status,
                    key.created_at.to_string()
                );
            }
        }
    }
    Ok(())
}
