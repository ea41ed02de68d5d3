//! The code exchange and the ID token's validation (OpenID Connect Core
//! §3.1.3.7). openidconnect checks the signature against the provider's
//! JWKS, `iss`, `aud`, `exp` and the nonce; authd adds an algorithm
//! allow-list (asymmetric only: no `none`, no HMAC keyed with a public key
//! or the client secret), `azp`, a bound on `iat`, a 60-second skew, and
//! one JWKS refresh on an unknown key.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreClient, CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, Nonce, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, SignatureVerificationError, TokenResponse as _,
};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::domain::federation::http_client::IdpClient;
use crate::domain::federation::provider::Provider;
use crate::error::{Error, Result};

/// Clock difference tolerated between authd and the provider.
const SKEW: Duration = Duration::seconds(60);
/// An ID token issued longer ago than a sign-in may last is refused.
const MAX_AGE: Duration = Duration::minutes(10);
const MAX_SUBJECT_BYTES: usize = 255;
/// Groups read from one ID token, at most.
const MAX_GROUPS: usize = 256;

const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Who the provider says signed in. `Debug` hides the address.
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub groups: Vec<String>,
    pub amr: Vec<String>,
    /// Google's `hd`: the Workspace domain that manages the account.
    pub hosted_domain: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("email", &self.email.as_ref().map(|_| "[REDACTED]"))
            .field("email_verified", &self.email_verified)
            .field("groups", &self.groups)
            .field("amr", &self.amr)
            .finish()
    }
}

/// What the exchange needs besides the code.
pub struct Exchange<'a> {
    pub http: &'a IdpClient,
    pub redirect_uri: String,
    pub verifier: PkceCodeVerifier,
    pub nonce: Nonce,
    pub now: OffsetDateTime,
}

/// Redeems `code` at the token endpoint (client_secret_basic, with the PKCE
/// verifier) and validates the ID token it returns.
pub async fn redeem(provider: &Provider, code: &str, exchange: Exchange<'_>) -> Result<Identity> {
    let Exchange {
        http,
        redirect_uri,
        verifier,
        nonce,
        now,
    } = exchange;
    let metadata = provider.metadata(http).await?;
    let client = client_for(provider, &metadata, &redirect_uri)?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| Error::Internal(anyhow::anyhow!("token endpoint of {}: {e}", provider.id)))?
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(_) => Error::InvalidIdToken("code_refused"),
            other => {
                tracing::warn!(provider = %provider.id, error = %other, "token request failed");
                Error::IdpUnavailable
            }
        })?;
    let id_token = response
        .id_token()
        .ok_or(Error::InvalidIdToken("no_id_token"))?;
    match validate(provider, &client, id_token, (&nonce, now)) {
        Err(Error::InvalidIdToken("unknown_key")) if provider.refresh_keys(http).await? => {
            let metadata = provider.metadata(http).await?;
            let client = client_for(provider, &metadata, &redirect_uri)?;
            validate(provider, &client, id_token, (&nonce, now))
        }
        other => other,
    }
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// The provider's client as authd is registered with it.
pub(super) fn client_for(
    provider: &Provider,
    metadata: &CoreProviderMetadata,
    redirect: &str,
) -> Result<Client> {
    let redirect = RedirectUrl::new(redirect.to_owned())
        .map_err(|e| Error::Internal(anyhow::anyhow!("redirect URI: {e}")))?;
    Ok(CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(provider.settings.client_id.clone()),
        Some(provider.client_secret()),
    )
    .set_redirect_uri(redirect))
}

fn validate(
    provider: &Provider,
    client: &Client,
    id_token: &CoreIdToken,
    (nonce, now): (&Nonce, OffsetDateTime),
) -> Result<Identity> {
    // `exp` is compared with this: up to SKEW past it is still accepted.
    let lenient_now = chrono_time(now - SKEW);
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(ALLOWED_ALGS)
        .set_time_fn(move || lenient_now)
        .set_issue_time_verifier_fn(move |iat| {
            let iat = iat.timestamp();
            if iat > (now + SKEW).unix_timestamp() {
                Err("issued in the future".to_owned())
            } else if iat < (now - MAX_AGE - SKEW).unix_timestamp() {
                Err("issued too long ago".to_owned())
            } else {
                Ok(())
            }
        });
    let claims = id_token
        .claims(&verifier, nonce)
        .map_err(|e| Error::InvalidIdToken(reason(&e)))?;
    check_authorized_party(claims, &provider.settings.client_id)?;
    let subject = claims.subject().as_str();
    // OIDC Core §2: at most 255 ASCII characters (and what the table holds).
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return Err(Error::InvalidIdToken("subject"));
    }
    let extra = payload(id_token);
    Ok(Identity {
        subject: subject.to_owned(),
        email: claims.email().map(|e| e.as_str().to_owned()),
        email_verified: claims.email_verified().unwrap_or(false),
        groups: groups(&extra, &provider.settings.groups_claim),
        hosted_domain: extra
            .as_ref()
            .and_then(|claims| claims.get("hd"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        amr: claims
            .auth_method_refs()
            .map(|refs| refs.iter().map(|r| r.as_str().to_owned()).collect())
            .unwrap_or_default(),
    })
}

/// OIDC Core §3.1.3.7 steps 4-5: with several audiences `azp` must be
/// present, and when present it must be us.
fn check_authorized_party(claims: &CoreIdTokenClaims, client_id: &str) -> Result<()> {
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != client_id => Err(Error::InvalidIdToken("authorized_party")),
        None if claims.audiences().len() > 1 => Err(Error::InvalidIdToken("authorized_party")),
        _ => Ok(()),
    }
}

/// The audit log's word for why the token failed.
fn reason(error: &ClaimsVerificationError) -> &'static str {
    match error {
        ClaimsVerificationError::Expired(_) => "expired_or_not_yet_valid",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidNonce(_) => "nonce",
        ClaimsVerificationError::SignatureVerification(e) => match e {
            SignatureVerificationError::NoMatchingKey => "unknown_key",
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_)
            | SignatureVerificationError::NoSignature => "algorithm",
            _ => "signature",
        },
        _ => "claims",
    }
}

/// The groups claim, read from the verified token's payload (a list of
/// strings, or one string); absent or of another shape, no groups.
/// The ID token's claims as JSON, for those openidconnect does not model
/// (groups, `hd`); read only after the signature was verified.
fn payload(id_token: &CoreIdToken) -> Option<Value> {
    let compact = id_token.to_string();
    compact
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
}

fn groups(payload: &Option<Value>, claim: &str) -> Vec<String> {
    match payload.as_ref().and_then(|p| p.get(claim)) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .take(MAX_GROUPS)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

fn chrono_time(at: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(at.unix_timestamp(), 0).unwrap_or_default()
}
