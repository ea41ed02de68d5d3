//! Registered clients.
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub audience: String,
    pub access_ttl_secs: i32,
    pub scopes: Vec<String>,
    pub created_at: OffsetDateTime,
}

/// Inserts the client; false when its name is taken.
pub async fn insert(db: impl PgExecutor<'_>, client: &ClientRow) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO clients (id, name, audience, access_ttl_secs, scopes, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&client.id)
    .bind(&client.name)
    .bind(&client.audience)
    .bind(client.access_ttl_secs)
    .bind(&client.scopes)
    .bind(client.created_at)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

const COLUMNS: &str = "id, name, audience, access_ttl_secs, scopes, created_at";

pub async fn find(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<ClientRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM clients WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<ClientRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clients ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await
}
