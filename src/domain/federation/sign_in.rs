//! The authorization code flow. `start` picks a 256-bit `state`, stores its
//! SHA-256 (single use, 10 minutes) with where to return, and derives the
//! nonce and the PKCE verifier from it under a service key, so nothing
//! stored can be replayed. The browser gets the state twice: in the
//! provider's redirect and in a cookie (`http` sets it), and `finish`
//! requires both to match before it spends the state, redeems the code,
//! validates the ID token, finds the account, sets its roles and opens a
//! web session. Every refusal is audited (`federation_failed`) and opens
//! no session.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier, Scope};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::Duration;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::federation::id_token::{self, Exchange, Identity};
use crate::domain::federation::provider::Provider;
use crate::domain::federation::{Federation, accounts, return_to};
use crate::domain::refresh_tokens::PlainToken;
use crate::domain::services::Services;
use crate::domain::sessions::{self, ClientType, Issued, Opening};
use crate::error::{Error, Result};
use crate::storage::federation::{self as store, NewState};

/// How long a started sign-in may take.
pub const STATE_TTL: Duration = Duration::minutes(10);

/// Where to send the browser, and the state for its cookie.
pub struct Started {
    pub authorization_url: String,
    /// 32 random bytes, like a refresh token; stored only as its hash.
    pub state: PlainToken,
}

pub async fn start(
    services: &Services,
    provider_id: &str,
    requested_return_to: Option<&str>,
    client_id: Option<&str>,
) -> Result<Started> {
    let federation = &services.federation;
    let provider = federation.provider(provider_id)?;
    let return_to = return_to::check(requested_return_to, &services.settings.http.allowed_origins)?;
    let client = services.clients.resolve(&services.db, client_id).await?;
    let metadata = provider.metadata(federation.http()).await?;
    let state = PlainToken::generate()?;
    let (nonce, verifier) = derived(federation, state.expose());
    let oidc =
        super::id_token::client_for(provider, &metadata, &redirect_uri(services, provider_id))?;
    let state_for_url = state.expose().to_owned();
    let mut request = oidc.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        move || CsrfToken::new(state_for_url),
        move || nonce,
    );
    if let Some(domain) = &provider.settings.hosted_domain {
        // Google's account chooser then offers only that Workspace's
        // accounts; the `hd` claim is still checked at the callback.
        request = request.add_extra_param("hd", domain.trim());
    }
    let (url, _, _) = request
        .add_scopes(
            provider
                .settings
                .scopes
                .iter()
                .filter(|s| s.as_str() != "openid")
                .map(|s| Scope::new(s.clone())),
        )
        .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
        .url();
    let now = services.clock.now();
    let row = NewState {
        state_hash: &state.hash(),
        provider: provider_id,
        return_to: &return_to,
        client_id: client.stored_id(),
        now,
    };
    store::insert_state(&services.db, &row).await?;
    Ok(Started {
        authorization_url: url.to_string(),
        state,
    })
}

/// What the provider's redirect brought back.
#[derive(Default)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<SecretString>,
    pub error: Option<String>,
    /// RFC 9207: the issuer of the response, when the provider sends it.
    pub iss: Option<String>,
}

/// A finished sign-in: the session's tokens, and where the browser goes.
#[derive(Debug)]
pub struct Finished {
    pub issued: Issued,
    pub return_to: String,
}

pub async fn finish(
    services: &Services,
    ctx: &Context,
    provider_id: &str,
    callback: Callback,
    cookie_state: Option<&str>,
) -> Result<Finished> {
    let provider = services.federation.provider(provider_id)?;
    let result = complete(services, ctx, provider, callback, cookie_state).await;
    if let Err(error) = &result {
        let details =
            json!({ "provider": provider_id, "error": error.code(), "reason": reason(error) });
        let event = Event {
            kind: Kind::FederationFailed,
            actor: None,
            subject: None,
            outcome: "failure",
            details,
        };
        services.audit.record(&services.db, ctx, event).await?;
    }
    result
}

fn reason(error: &Error) -> &'static str {
    match error {
        Error::InvalidState(r) | Error::InvalidIdToken(r) | Error::FederationDenied(r) => r,
        Error::EmailDomainNotAllowed => "email_domain",
        Error::IdpUnavailable => "idp_unavailable",
        Error::InvalidClient => "client_gone",
        _ => "error",
    }
}

async fn complete(
    services: &Services,
    ctx: &Context,
    provider: &Provider,
    callback: Callback,
    cookie_state: Option<&str>,
) -> Result<Finished> {
    let state = callback
        .state
        .as_deref()
        .and_then(PlainToken::parse)
        .ok_or(Error::InvalidState("missing_state"))?;
    let cookie_state = cookie_state.ok_or(Error::InvalidState("missing_cookie"))?;
    // Both are ours or an attacker's guesses: compare without timing leaks.
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        state.expose().as_bytes(),
        cookie_state.as_bytes(),
    )
    .is_err()
    {
        return Err(Error::InvalidState("cookie_mismatch"));
    }
    let started = store::take_state(&services.db, &state.hash(), &provider.id)
        .await?
        .ok_or(Error::InvalidState("unknown_or_used"))?;
    let now = services.clock.now();
    if started.created_at + STATE_TTL < now {
        return Err(Error::InvalidState("expired"));
    }
    if callback.iss.as_deref().is_some_and(|iss| {
        iss.trim_end_matches('/') != provider.settings.issuer.trim_end_matches('/')
    }) {
        return Err(Error::InvalidIdToken("response_issuer"));
    }
    if callback.error.is_some() {
        return Err(Error::FederationDenied("provider_error"));
    }
    let code = callback.code.ok_or(Error::FederationDenied("no_code"))?;
    let (nonce, verifier) = derived(&services.federation, state.expose());
    let exchange = Exchange {
        http: services.federation.http(),
        redirect_uri: redirect_uri(services, &provider.id),
        verifier,
        nonce,
        now,
    };
    let identity = id_token::redeem(provider, code.expose_secret(), exchange).await?;
    accounts::check_domain(&provider.settings, &identity)?;
    let client = services
        .clients
        .stored(&services.db, started.client_id.as_deref())
        .await?
        .ok_or(Error::InvalidClient)?;
    let amr = amr(provider, &identity);
    let roles = accounts::roles_from_groups(services, &provider.settings, &identity.groups);
    let mut tx = services.db.begin().await?;
    let settings = (provider.id.as_str(), &provider.settings);
    let resolved = accounts::resolve(services, ctx, &mut tx, settings, &identity).await?;
    let user_id = resolved.user_id;
    accounts::apply_roles(services, ctx, &mut tx, (&provider.id, user_id), &roles).await?;
    let opening = Opening {
        user_id,
        client_type: ClientType::Web,
        client: &client,
        amr,
        idp: Some(&provider.id),
    };
    let (session, token) = sessions::open_in(services, ctx, &mut tx, &opening).await?;
    // Linking may have ended the account's earlier sessions: then no
    // replica may still trust them once this answers.
    let ended = resolved.sessions_ended.then_some(user_id);
    services
        .session_cache
        .commit(&services.db, tx, ended)
        .await?;
    let issued = sessions::issue(services, &client, &session, token, now)?;
    Ok(Finished {
        issued,
        return_to: started.return_to,
    })
}

/// `fed`, plus `mfa` when the provider says more than one factor was used,
/// or is trusted to always require that. A value of `mfa_amr_values` counts
/// when it is `mfa` itself, or comes with another method: on its own,
/// `otp` or `sms` is one factor (RFC 8176), as in a passwordless SMS
/// sign-in.
fn amr(provider: &Provider, identity: &Identity) -> Vec<String> {
    let settings = &provider.settings;
    let methods: std::collections::BTreeSet<&String> = identity.amr.iter().collect();
    let mfa = settings.assume_mfa
        || methods.iter().any(|value| {
            settings.mfa_amr_values.contains(value) && (*value == "mfa" || methods.len() >= 2)
        });
    let mut amr = vec!["fed".to_owned()];
    if mfa {
        amr.push("mfa".to_owned());
    }
    amr
}

/// `auth.issuer` + `callback_path`: what the provider's client
/// registration must list.
pub fn redirect_uri(services: &Services, provider_id: &str) -> String {
    let issuer = services.settings.auth.issuer.trim_end_matches('/');
    format!("{issuer}{}", super::callback_path(provider_id))
}

/// The nonce and the PKCE verifier of the sign-in with this state.
fn derived(federation: &Federation, state: &str) -> (Nonce, PkceCodeVerifier) {
    let derive = |purpose: &str| {
        let input = [purpose.as_bytes(), b"\0", state.as_bytes()].concat();
        URL_SAFE_NO_PAD.encode(federation.state_key.hmac(&input))
    };
    (
        Nonce::new(derive("nonce")),
        PkceCodeVerifier::new(derive("pkce")),
    )
}
