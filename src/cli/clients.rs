//! `authd clients …`: register the clients whose tokens resource servers
//! (AppSync, API Gateway) accept by `aud` or `client_id`.
use clap::Subcommand;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::clients::{self, NewClient};
use crate::storage::db;

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Register a client and print its id: tokens minted for it carry
    /// `client_id` = the id and `aud` = --audience.
    Create {
        /// A unique label for operators.
        #[arg(long)]
        name: String,
        /// The `aud` of its access tokens (what the resource server's
        /// authorizer is configured with).
        #[arg(long)]
        audience: String,
        /// Access-token lifetime in seconds, 60 to 3600 (default:
        /// auth.access_token_ttl_secs).
        #[arg(long)]
        access_ttl: Option<i64>,
        /// A scope its tokens carry in `scope`; repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List registered clients.
    List,
}

pub async fn run(
    settings: Settings,
    clock: Arc<dyn Clock>,
    command: ClientsCommand,
) -> anyhow::Result<()> {
    let pool = db::connect(&settings.database).await?;
    match command {
        ClientsCommand::Create {
            name,
            audience,
            access_ttl,
            scopes,
        } => {
            let new = NewClient {
                name: &name,
                audience: &audience,
                access_ttl_secs: access_ttl.unwrap_or(settings.auth.access_token_ttl_secs),
                scopes: &scopes,
            };
            let client = clients::create(&pool, &new, clock.now()).await?;
            println!("{}", client.id);
        }
        ClientsCommand::List => {
            let rows: Vec<[String; 5]> = clients::list(&pool)
                .await?
                .into_iter()
                .map(|c| {
                    [
                        c.id,
                        c.name,
                        c.audience,
                        c.access_ttl_secs.to_string(),
                        c.scopes.join(" "),
                    ]
                })
                .collect();
            super::print_table(
                &["client_id", "name", "audience", "access_ttl", "scope"],
                &rows,
            );
        }
    }
    Ok(())
}
