//! `authd users …`: bootstrap and break-glass administration from the
//! command line (it needs the database and the master key, so whoever runs
//! it could do anything anyway). Each change is audited with `"by": "cli"`,
//! under the same rules as the admin API: known roles only, never without
//! an enabled admin.
use clap::Subcommand;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::admin::authorize::AdminCaller;
use crate::domain::admin::{self, users};
use crate::domain::audit::Context;
use crate::domain::email::Email;
use crate::startup;
use crate::storage::{admin as store, db};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Give an account a role (user, support, auditor, admin).
    Grant {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Take a role away (the last admin keeps theirs).
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Disable an account: every session ends, and login fails like a wrong
    /// password.
    Disable {
        #[arg(long)]
        email: String,
        #[arg(long)]
        reason: String,
    },
    /// List accounts (all, or those holding --role): address, roles,
    /// disabled, MFA, creation time.
    List {
        #[arg(long)]
        role: Option<String>,
    },
}

pub async fn run(
    settings: Settings,
    clock: Arc<dyn Clock>,
    command: UsersCommand,
) -> anyhow::Result<()> {
    let pool = db::connect(&settings.database).await?;
    let master = startup::load_master_key(&settings)?;
    let state = startup::build_state(settings, pool, &master, clock).await?;
    let ctx = Context::cli();
    let caller = AdminCaller::cli();
    let find = |email: String| {
        let state = state.clone();
        async move {
            let email = Email::parse(&email).or_else(|_| Email::parse_legacy(&email))?;
            store::id_by_email_key(&state.db, email.key())
                .await?
                .ok_or_else(|| anyhow::anyhow!("no account has that address"))
        }
    };
    match command {
        UsersCommand::Grant { email, role } => {
            let id = find(email).await?;
            let mut roles = current_roles(&state, id).await?;
            roles.push(role);
            let reason = "granted with authd users grant";
            let roles = users::set_roles(&state, &ctx, caller, id, &roles, reason).await?;
            println!("roles now: {}", roles.join(", "));
        }
        UsersCommand::Revoke { email, role } => {
            let id = find(email).await?;
            let roles: Vec<String> = current_roles(&state, id)
                .await?
                .into_iter()
                .filter(|r| *r != role)
                .collect();
            let reason = "revoked with authd users revoke";
            let roles = users::set_roles(&state, &ctx, caller, id, &roles, reason).await?;
            println!("roles now: {}", roles.join(", "));
        }
        UsersCommand::Disable { email, reason } => {
            let id = find(email).await?;
            let reason = admin::check_reason(&reason)?;
            users::set_disabled(&state, &ctx, caller, (id, true), reason).await?;
            println!("disabled; every session of the account is revoked");
        }
        UsersCommand::List { role } => {
            for u in store::list_by_role(&state.db, role.as_deref(), state.clock.now()).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    u.email,
                    u.roles.join(","),
                    if u.disabled { "disabled" } else { "enabled" },
                    if u.mfa_enabled { "mfa" } else { "no-mfa" },
                    u.created_at
                );
            }
        }
    }
    Ok(())
}

async fn current_roles(
    state: &crate::state::AppState,
    id: uuid::Uuid,
) -> anyhow::Result<Vec<String>> {
    let row = store::user(&state.db, id, state.clock.now())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no such account"))?;
    Ok(row.roles)
}
