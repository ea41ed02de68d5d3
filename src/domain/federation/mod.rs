//! Sign-in through OpenID Providers (Okta, Entra ID, Google Workspace,
//! Keycloak, a Cognito user pool): authd is the relying party of the
//! authorization code flow with PKCE, and the provider's groups decide the
//! account's roles. `sign_in` runs the flow, `id_token` validates what the
//! provider returns, `accounts` maps the identity to an account.
pub mod accounts;
pub mod http_client;
pub mod id_token;
pub mod provider;
pub mod return_to;
pub mod sign_in;

/// Where a provider's routes live: `{PATHS}/{id}/start` and
/// `{PATHS}/{id}/callback` (the router's templates spell the same paths).
const PATHS: &str = "/v1/auth/federation";

/// The path that starts a sign-in with `provider_id`.
pub fn start_path(provider_id: &str) -> String {
    format!("{PATHS}/{provider_id}/start")
}

/// The path the provider sends the browser back to (the state cookie's
/// `Path`, and the redirect URI under `auth.issuer`).
pub fn callback_path(provider_id: &str) -> String {
    format!("{PATHS}/{provider_id}/callback")
}

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::FederationSettings;
use crate::crypto::DataKey;
use crate::error::{Error, Result};
use provider::Provider;

pub struct Federation {
    providers: BTreeMap<String, Arc<Provider>>,
    http: http_client::IdpClient,
    /// Derives each sign-in's nonce and PKCE verifier from its state.
    state_key: DataKey,
}

impl Federation {
    /// Reads each provider's client secret; fetches nothing yet (see
    /// `discover_all`).
    pub fn new(settings: &FederationSettings, state_key: DataKey) -> anyhow::Result<Self> {
        let providers = settings
            .providers
            .iter()
            .map(|(id, p)| Ok((id.clone(), Arc::new(Provider::new(id, p)?))))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            providers,
            http: http_client::build(settings)?,
            state_key,
        })
    }

    pub fn provider(&self, id: &str) -> Result<&Arc<Provider>> {
        self.providers.get(id).ok_or(Error::NotFound)
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    pub fn http(&self) -> &http_client::IdpClient {
        &self.http
    }

    /// Fetches every provider's discovery document and keys, in the
    /// background: a provider that is down must not keep authd from
    /// starting (it is tried again at the first sign-in).
    pub fn discover_all(&self) {
        for provider in self.providers.values() {
            let (provider, http) = (provider.clone(), self.http.clone());
            tokio::spawn(async move {
                if provider.discover(&http).await.is_ok() {
                    tracing::info!(provider = %provider.id, "identity provider discovered");
                }
            });
        }
    }
}
