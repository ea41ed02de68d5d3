//! Building and running the service: database, master key, signing keys,
//! state, routers, listeners (public API and admin), background maintenance,
//! and a graceful shutdown bounded by `http.shutdown_grace_secs`.
use sqlx::PgPool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::domain::audit::AuditLog;
use crate::domain::data_keys;
use crate::domain::federation::Federation;
use crate::domain::keys::{self, KeyStore};
use crate::domain::mail::{self, Mailer, transport::Transport};
use crate::domain::mfa::MfaKeys;
use crate::domain::passwords::Passwords;
use crate::domain::services::Services;
use crate::domain::throttle;
use crate::http;
use crate::http::rate_limit::RateLimiters;
use crate::http::server::{self, connection::Timeouts, limits, limits::ConnectionLimits};
use crate::metrics::Metrics;
use crate::state::{App, AppState};
use crate::storage::{
    db, idempotency as idempotency_store, sessions as session_store, throttle as throttle_store,
};

pub struct Application {
    public: server::Listener,
    admin: server::Listener,
    state: AppState,
    rate_limiters: RateLimiters,
    mail_transport: Transport,
}

/// Bound on closing the database pool once the listeners are done: closing
/// waits for checked-out connections, which requests cut off by the grace
/// period may still hold.
const POOL_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Application {
    /// The production path: connect (creating the database where allowed),
    /// migrate, load the master key, then `with_pool`.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let pool = db::connect(&settings.database).await?;
        if settings.database.migrate_on_start {
            db::migrate(&pool).await?;
        }
        let master = load_master_key(&settings)?;
        Self::with_pool(settings, pool, &master, clock).await
    }

    /// Builds on an existing pool (tests pass a per-test database). Creates
    /// the first signing key if there is none.
    pub async fn with_pool(
        settings: Settings,
        pool: PgPool,
        master: &MasterKey,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        warn_if_autovacuum_off(&pool).await;
        let http_settings = &settings.http;
        let max_connections =
            limits::max_connections(http_settings, settings.database.max_connections)?;
        let timeouts = Timeouts::from_settings(http_settings);
        let public_limits = ConnectionLimits::public(http_settings, max_connections);
        let state = build_state(settings, pool, master, clock).await?;
        let (router, rate_limiters) = http::router(state.clone())?;
        let public = server::Listener {
            socket: TcpListener::bind(state.settings.http.addr).await?,
            router,
            limits: public_limits,
            timeouts,
            metrics: state.metrics.connections("public")?,
        };
        let admin = server::Listener {
            socket: TcpListener::bind(state.settings.http.admin_addr).await?,
            router: http::admin::router(state.clone()),
            limits: ConnectionLimits::admin(),
            timeouts,
            metrics: state.metrics.connections("admin")?,
        };
        Ok(Self {
            public,
            admin,
            mail_transport: Transport::from_settings(&state.settings.mail)?,
            state,
            rate_limiters,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.public.socket.local_addr()
    }

    /// Where `/metrics` is served.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.socket.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves both listeners until `shutdown` resolves, then stops accepting
    /// on both, gives in-flight requests `http.shutdown_grace_secs` to
    /// finish, and closes the database pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        crate::scheduling::set_worker_nice(self.state.settings.http.worker_nice);
        self.state.federation.discover_all();
        let listener = tokio::spawn(
            self.state
                .session_cache
                .clone()
                .listen(self.state.db.clone()),
        );
        let maintenance = tokio::spawn(maintain(self.state.clone(), self.rate_limiters));
        let mailer = tokio::spawn({
            let state = self.state.clone();
            async move { mail::worker::run(&state, self.mail_transport).await }
        });
        let (stop, stopping) = watch::channel(false);
        let public = server::serve(self.public, stopping.clone());
        let admin = server::serve(self.admin, stopping);
        let servers = async {
            let (public, admin) = tokio::join!(public, admin);
            public.and(admin)
        };
        let grace = Duration::from_secs(self.state.settings.http.shutdown_grace_secs);
        let result = drain(servers, shutdown, stop, grace).await;
        maintenance.abort();
        mailer.abort();
        listener.abort();
        if tokio::time::timeout(POOL_CLOSE_TIMEOUT, self.state.db.close())
            .await
            .is_err()
        {
            tracing::warn!("database pool did not close in time; exiting anyway");
        }
        result
    }
}

pub fn load_master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    MasterKey::load_or_generate(
        &settings.secrets.master_key_file,
        settings.secrets.generate_master_key,
    )
}

pub async fn build_state(
    settings: Settings,
    pool: PgPool,
    master: &MasterKey,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AppState> {
    let sealing = master.derive(keys::SEALING_LABEL)?;
    keys::ensure_initial_key(&pool, &sealing, &settings.keys, clock.now()).await?;
    check_roles(&pool, &settings).await?;
    crate::domain::accounts::backfill_email_skeletons(&pool).await?;
    let key_store = KeyStore::load(&pool, sealing, clock.now()).await?;
    let password_settings = settings.password.clone();
    let metrics = Metrics::new()?;
    let pool_metrics = metrics.hashing_pool();
    let passwords =
        tokio::task::spawn_blocking(move || Passwords::new(&password_settings, pool_metrics))
            .await??;
    let audit = AuditLog::load_or_create(&pool, master, clock.now()).await?;
    let mfa = MfaKeys::load_or_create(&pool, master, clock.now()).await?;
    let outbox_key =
        data_keys::load_or_create(&pool, master, mail::OUTBOX_KEY_PURPOSE, clock.now()).await?;
    let federation = Federation::new(
        &settings.federation,
        master.derive(crate::crypto::master_key::labels::FEDERATION_STATE)?,
    )?;
    let services = Services {
        throttle_key: master.derive(throttle::SUBJECT_LABEL)?,
        clients: crate::domain::clients::Clients::new(&settings.auth),
        federation,
        settings,
        db: pool,
        clock,
        keys: key_store,
        passwords,
        audit,
        mfa,
        mail: Mailer::new(outbox_key),
        metrics,
        session_cache: Arc::default(),
        verified_tokens: Default::default(),
        checks_in_flight: Arc::default(),
    };
    Ok(AppState(Arc::new(App {
        services,
        idempotency_key: master.derive(http::idempotency::FINGERPRINT_LABEL)?,
    })))
}

/// Every role the settings name must exist: an unknown default role would
/// fail every signup, an unknown `group_roles` role every federated sign-in
/// of that group; refuse to start instead.
async fn check_roles(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let known = crate::storage::users::known_roles(pool).await?;
    if let Some(unknown) = settings
        .auth
        .default_roles
        .iter()
        .find(|r| !known.contains(r))
    {
        anyhow::bail!(
            "auth.default_roles names {unknown:?}, which is not a role (known: {known:?})"
        );
    }
    for (id, provider) in &settings.federation.providers {
        if let Some((group, role)) = provider
            .group_roles
            .iter()
            .find(|(_, r)| !known.contains(r))
        {
            anyhow::bail!(
                "federation.providers.{id}.group_roles maps {group:?} to {role:?}, which is not a role (known: {known:?})"
            );
        }
    }
    Ok(())
}

/// Periodic upkeep: reload keys (rotation on another replica), drop expired
/// sessions, throttle rows and idempotency keys, trim rate-limiter memory.
async fn maintain(state: AppState, rate_limiters: RateLimiters) {
    let mut tick =
        tokio::time::interval(Duration::from_secs(state.settings.keys.reload_secs.max(1)));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = state.clock.now();
        if let Err(e) = state.keys.reload(&state.db, now).await {
            tracing::error!(error = %e, "signing key reload failed");
        }
        // The longer window: a counter of either kind outlives it.
        let throttle = &state.settings.throttle;
        let window = throttle.window_secs.max(throttle.mfa_window_secs);
        let window_start = now - time::Duration::seconds(window);
        if let Err(e) = session_store::purge_expired(&state.db, now).await {
            tracing::warn!(error = %e, "session purge failed");
        }
        if let Err(e) = throttle_store::purge_stale(&state.db, window_start, now).await {
            tracing::warn!(error = %e, "throttle purge failed");
        }
        if let Err(e) = crate::storage::mfa::purge_challenges(&state.db, now).await {
            tracing::warn!(error = %e, "MFA challenge purge failed");
        }
        let oldest_state = now - crate::domain::federation::sign_in::STATE_TTL;
        if let Err(e) = crate::storage::federation::purge_states(&state.db, oldest_state).await {
            tracing::warn!(error = %e, "federation state purge failed");
        }
        if let Err(e) = crate::storage::account_tokens::purge(&state.db, now).await {
            tracing::warn!(error = %e, "account token purge failed");
        }
        let hour_ago = now - time::Duration::hours(1);
        if let Err(e) = crate::storage::outbox::purge_quota(&state.db, hour_ago).await {
            tracing::warn!(error = %e, "mail quota purge failed");
        }
        let keys_expired_before = http::idempotency::expired_before(&state, now);
        if let Err(e) = idempotency_store::purge_expired(&state.db, keys_expired_before).await {
            tracing::warn!(error = %e, "idempotency key purge failed");
        }
        rate_limiters.shrink();
    }
}

/// Runs `servers` until `shutdown`, then tells them to stop (via `stop`)
/// and waits at most `grace` for their in-flight requests. Requests still
/// running after it are abandoned: the process is about to exit.
async fn drain(
    servers: impl Future<Output = std::io::Result<()>>,
    shutdown: impl Future<Output = ()>,
    stop: watch::Sender<bool>,
    grace: Duration,
) -> std::io::Result<()> {
    tokio::pin!(servers);
    tokio::select! {
        // Serving ends by itself only on an error.
        result = &mut servers => return result,
        () = shutdown => {}
    }
    let _ = stop.send(true);
    match tokio::time::timeout(grace, servers).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests did not finish within the grace period; stopping anyway"
            );
            Ok(())
        }
    }
}

/// Every refresh spends a token row and adds one, and every login adds a
/// session: without autovacuum, dead rows are never reclaimed, and tables
/// that started empty are never analysed, so each connection keeps the
/// plans it made while they were nearly empty (sequential scans in every
/// refresh). authd works without it, slower and slower: say so at start.
async fn warn_if_autovacuum_off(db: &PgPool) {
    match db::autovacuum_on(db).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "PostgreSQL's autovacuum is off: sessions and refresh tokens will bloat and refreshes slow down as they grow; turn it on (README, Production notes)"
        ),
        Err(error) => tracing::warn!(%error, "could not read PostgreSQL's autovacuum setting"),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining requests");
}
