//! The change notifications between replicas: `authd_user_changed` carries
//! the id of an account whose sessions, roles or profile changed (sent by
//! the triggers of migration ..._07 at commit); `authd_user_forgotten`
//! carries `replica:account` once a replica has forgotten that account.
//! Each replica's listener connection is named `authd-listener/<replica>`
//! so that a revocation knows whose acknowledgements to wait for.
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

const USER_CHANGED: &str = "authd_user_changed";
const USER_FORGOTTEN: &str = "authd_user_forgotten";
const LISTENER_NAME: &str = "authd-listener/";

/// What the listener heard.
pub enum Heard {
    /// This account changed.
    Changed(Uuid),
    /// `replica` has forgotten what it knew of `user_id`.
    Forgotten { replica: Uuid, user_id: Uuid },
}

pub struct Listener(PgListener);

impl Listener {
    pub async fn connect(pool: &PgPool, replica: Uuid) -> sqlx::Result<Self> {
        let mut listener = PgListener::connect_with(pool).await?;
        // Not `SET`: the name is a bound parameter.
        sqlx::query("SELECT set_config('application_name', $1, false)")
            .bind(format!("{LISTENER_NAME}{replica}"))
            .execute(&mut listener)
            .await?;
        listener.listen_all([USER_CHANGED, USER_FORGOTTEN]).await?;
        Ok(Self(listener))
    }

    /// The next notification. An error means the connection was lost, so
    /// notifications may have been missed.
    pub async fn next(&mut self) -> sqlx::Result<Heard> {
        loop {
            let Some(notification) = self.0.try_recv().await? else {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the notification connection was lost",
                )));
            };
            if let Some(heard) = parse(notification.channel(), notification.payload()) {
                return Ok(heard);
            }
        }
    }

    /// Tells every replica that `replica` has forgotten `user_id`.
    pub async fn acknowledge(&mut self, replica: Uuid, user_id: Uuid) -> sqlx::Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(USER_FORGOTTEN)
            .bind(format!("{replica}:{user_id}"))
            .execute(&mut self.0)
            .await?;
        Ok(())
    }
}

fn parse(channel: &str, payload: &str) -> Option<Heard> {
    match channel {
        USER_CHANGED => payload.parse().ok().map(Heard::Changed),
        USER_FORGOTTEN => {
            let (replica, user_id) = payload.split_once(':')?;
            Some(Heard::Forgotten {
                replica: replica.parse().ok()?,
                user_id: user_id.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// The replicas listening now, by their listener connections.
pub async fn listening_replicas(pool: &PgPool) -> sqlx::Result<Vec<Uuid>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE $1",
    )
    .bind(format!("{LISTENER_NAME}%"))
    .fetch_all(pool)
    .await?;
    Ok(names
        .iter()
        .filter_map(|name| name.strip_prefix(LISTENER_NAME)?.parse().ok())
        .collect())
}
