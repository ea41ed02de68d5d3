//! One configured identity provider at run time: its settings, its client
//! secret, and its discovery document with its JWKS, fetched at start,
//! cached, and its JWKS fetched again when an ID token names a key the
//! cache does not know (the provider rotated its keys). Fetches are spaced
//! by `REFRESH_GAP`, so an unreachable provider costs one request per gap,
//! not one per sign-in.
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::CoreProviderMetadata;
use openidconnect::{ClientSecret, IssuerUrl, JsonWebKeySet};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::config::ProviderSettings;
use crate::domain::federation::http_client::IdpClient;
use crate::error::{Error, Result};
use crate::secret_files;

/// The shortest time between two discoveries, and between two JWKS
/// refreshes, of one provider.
const REFRESH_GAP: Duration = Duration::from_secs(10);

pub struct Provider {
    pub id: String,
    pub settings: ProviderSettings,
    secret: SecretString,
    metadata: RwLock<Option<Arc<CoreProviderMetadata>>>,
    /// Held during a fetch, so concurrent sign-ins wait for it rather than
    /// fetch again or fail; holds when the last fetch started.
    last_discovery: Mutex<Option<Instant>>,
    last_key_refresh: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("issuer", &self.settings.issuer)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

impl Provider {
    pub fn new(id: &str, settings: &ProviderSettings) -> anyhow::Result<Self> {
        let key = format!("federation.providers.{id}.client_secret_file");
        let secret = secret_files::read(&key, &settings.client_secret_file)?;
        anyhow::ensure!(!secret.expose_secret().is_empty(), "{key} is empty");
        Ok(Self {
            id: id.to_owned(),
            settings: settings.clone(),
            secret,
            metadata: RwLock::new(None),
            last_discovery: Mutex::new(None),
            last_key_refresh: Mutex::new(None),
        })
    }

    pub fn client_secret(&self) -> ClientSecret {
        ClientSecret::new(self.secret.expose_secret().to_owned())
    }

    pub fn display_name(&self) -> &str {
        self.settings.display_name.as_deref().unwrap_or(&self.id)
    }

    /// The cached discovery document, fetched now if there is none yet.
    pub async fn metadata(&self, http: &IdpClient) -> Result<Arc<CoreProviderMetadata>> {
        if let Some(cached) = self.cached() {
            return Ok(cached);
        }
        self.discover(http).await
    }

    fn cached(&self) -> Option<Arc<CoreProviderMetadata>> {
        self.metadata.read().ok()?.clone()
    }

    /// Fetches the discovery document and the JWKS, unless that was tried
    /// within `REFRESH_GAP` (then the cache, or `idp_unavailable`).
    pub async fn discover(&self, http: &IdpClient) -> Result<Arc<CoreProviderMetadata>> {
        let mut last = self.last_discovery.lock().await;
        if let Some(cached) = self.cached() {
            // Fetched while this caller waited.
            return Ok(cached);
        }
        if !may_fetch(&mut last) {
            return self.cached().ok_or(Error::IdpUnavailable);
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| Error::Internal(anyhow::anyhow!("issuer of {}: {e}", self.id)))?;
        let fetched = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| {
                tracing::warn!(provider = %self.id, error = %e, "identity provider discovery failed");
                Error::IdpUnavailable
            })?;
        Ok(self.store(fetched))
    }

    /// Fetches the JWKS again (the provider may have rotated its keys);
    /// false when nothing was fetched (within `REFRESH_GAP` of the last
    /// fetch), so the caller does not retry with the same keys.
    pub async fn refresh_keys(&self, http: &IdpClient) -> Result<bool> {
        let mut last = self.last_key_refresh.lock().await;
        let Some(current) = self.cached() else {
            return Ok(false);
        };
        if !may_fetch(&mut last) {
            return Ok(false);
        }
        let jwks = JsonWebKeySet::fetch_async(current.jwks_uri(), http)
            .await
            .map_err(|e| {
                tracing::warn!(provider = %self.id, error = %e, "identity provider JWKS fetch failed");
                Error::IdpUnavailable
            })?;
        self.store(current.as_ref().clone().set_jwks(jwks));
        Ok(true)
    }

    fn store(&self, metadata: CoreProviderMetadata) -> Arc<CoreProviderMetadata> {
        let metadata = Arc::new(metadata);
        if let Ok(mut slot) = self.metadata.write() {
            *slot = Some(metadata.clone());
        }
        metadata
    }
}

/// Whether a fetch may start now (and, if so, records it).
fn may_fetch(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < REFRESH_GAP) {
        return false;
    }
    *last = Some(now);
    true
}
