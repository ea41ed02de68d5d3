//! The command line: `authd serve | migrate | keys … | audit verify |
//! secrets rotate-master | users … | clients …`.
mod clients;
mod users;

use clap::{Parser, Subcommand};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{Profile, Settings};
use crate::crypto::MasterKey;
use crate::domain::audit::{AuditLog, Context, Verdict};
use crate::domain::{keys, master_key_rotation};
use crate::startup::{self, Application};
use crate::storage::db;
use crate::{secret_files, telemetry};

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
    /// Manage the signing keys (RS256 or ES256) published in the JWKS.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage the master key.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Administer accounts (bootstrap the first admin, break glass).
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Register the clients tokens are minted for.
    Clients {
        #[command(subcommand)]
        command: clients::ClientsCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the audit chain from the first event, recomputing every HMAC.
    /// Prints the event count and exits 0 when intact; prints the first
    /// broken link (sequence number and why) and exits 1 otherwise.
    Verify,
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Re-encrypt everything sealed under the current master key
    /// (secrets.master_key_file) with the key in --new-key-file, in one
    /// transaction. Then point secrets.master_key_file at the new file,
    /// restart every replica, and destroy the old key.
    RotateMaster {
        /// File holding the new master key (base64 of 32 random bytes).
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key. It is published in the JWKS at once and starts
    /// signing after keys.activation_delay_secs (so caching resource servers
    /// learn it first); the key it replaces keeps verifying until every token
    /// it signed has expired (access-token lifetime plus five minutes).
    Rotate {
        /// Sign with the new key at once (e.g. the current key is
        /// compromised); resource servers with a cached JWKS may reject new
        /// tokens until they refetch it.
        #[arg(long)]
        immediately: bool,
    },
    /// List signing keys: kid, status (pending, active, verify-only,
    /// retired), creation, activation and retirement times.
    List,
}

pub async fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.profile, &cli.config_dir)?;
    telemetry::init(&settings.log);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match cli.command {
        Command::Serve => serve(settings, clock).await?,
        Command::Migrate => {
            let pool = db::connect(&settings.database).await?;
            db::migrate(&pool).await?;
            println!("migrations applied");
        }
        Command::Keys { command } => keys_command(settings, clock, command).await?,
        Command::Users { command } => users::run(settings, clock, command).await?,
        Command::Clients { command } => clients::run(settings, clock, command).await?,
        Command::Audit {
            command: AuditCommand::Verify,
        } => return audit_verify(settings, clock).await,
        Command::Secrets {
            command: SecretsCommand::RotateMaster { new_key_file },
        } => {
            rotate_master(settings, clock, &new_key_file).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The pool, the master key and the audit log: what operator commands need.
async fn operator_context(
    settings: &Settings,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<(PgPool, MasterKey, AuditLog)> {
    let pool = db::connect(&settings.database).await?;
    let master = startup::load_master_key(settings)?;
    let audit = AuditLog::load_or_create(&pool, &master, clock.now()).await?;
    Ok((pool, master, audit))
}

async fn audit_verify(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<ExitCode> {
    let (pool, _, audit) = operator_context(&settings, &clock).await?;
    match audit.verify(&pool).await? {
        Verdict::Intact { events } => {
            println!("audit chain intact: {events} events");
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Broken { seq, reason } => {
            println!("audit chain broken at seq {seq}: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn rotate_master(
    settings: Settings,
    clock: Arc<dyn Clock>,
    new_key_file: &Path,
) -> anyhow::Result<()> {
    let (pool, old, audit) = operator_context(&settings, &clock).await?;
    if settings.profile == Profile::Prod {
        secret_files::check_permissions("--new-key-file", new_key_file)?;
    }
    let new = MasterKey::load("--new-key-file", new_key_file)?;
    let resealed =
        master_key_rotation::rotate_master(&pool, &old, &new, &audit, &Context::cli()).await?;
    println!(
        "re-sealed {resealed} keys under master key {}; now set secrets.master_key_file to {} and restart every replica",
        new.id()?,
        new_key_file.display()
    );
    Ok(())
}

async fn serve(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let profile = settings.profile;
    let app = Application::build(settings, clock).await?;
    tracing::info!(
        addr = %app.local_addr()?,
        admin_addr = %app.admin_addr()?,
        profile = profile.name(),
        "authd listening"
    );
    app.run_until_stopped(startup::shutdown_signal()).await?;
    Ok(())
}

async fn keys_command(
    settings: Settings,
    clock: Arc<dyn Clock>,
    command: KeysCommand,
) -> anyhow::Result<()> {
    let now = clock.now();
    match command {
        KeysCommand::Rotate { immediately } => {
            let (pool, master, audit) = operator_context(&settings, &clock).await?;
            let sealing = master.derive(keys::SEALING_LABEL)?;
            let rotation =
                keys::Rotation::from_settings(&settings.keys, &settings.auth, immediately);
            let kid =
                keys::rotate(&pool, &sealing, (&audit, &Context::cli()), rotation, now).await?;
            println!(
                "new {} signing key {kid}: published now, signing from {}",
                rotation.algorithm.name(),
                now + rotation.activation_delay
            );
        }
        KeysCommand::List => {
            let pool = db::connect(&settings.database).await?;
            let rows: Vec<[String; 6]> = keys::list(&pool, now)
                .await?
                .into_iter()
                .map(|k| {
                    let retire = k
                        .retire_after
                        .map_or_else(|| "-".to_owned(), |t| t.to_string());
                    [
                        k.kid,
                        k.algorithm,
                        k.status.to_owned(),
                        k.created_at.to_string(),
                        k.activate_after.to_string(),
                        retire,
                    ]
                })
                .collect();
            print_table(
                &[
                    "kid",
                    "alg",
                    "status",
                    "created_at",
                    "activate_after",
                    "retire_after",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// Left-aligned columns, each as wide as its widest cell.
fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(*header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}
