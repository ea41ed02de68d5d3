//! Access tokens per RFC 9068: RS256 (or ES256) JWTs with `typ: at+jwt`, no PII, for
//! one client (`client_id`, its `aud`, lifetime and `scope`).
//! Verification accepts only a known `kid`, with that key's algorithm, and our issuer, and
//! checks expiry against the injected clock. Any of our clients is
//! accepted, with that client's audience: authd's own API serves every
//! client, as Cognito's does.
use jsonwebtoken::{Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::AuthSettings;
use crate::domain::clients::Client;
use crate::domain::keys::{KeySet, KeyStore};
use crate::domain::services::Services;
use crate::domain::verified_tokens::VerifiedTokens;
use crate::error::{Error, Result};
use std::sync::Arc;

pub const TOKEN_TYPE: &str = "at+jwt";
/// Bearer tokens longer than this are rejected before any parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: Uuid,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    pub sid: Uuid,
    pub roles: Vec<String>,
    pub amr: Vec<String>,
    pub auth_time: i64,
    pub client_id: String,
    /// Space-separated (RFC 9068 §2.2.3), possibly empty.
    pub scope: String,
    /// The identity provider of a federated session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

/// What identifies the holder of a session when minting its access token.
pub struct Subject<'a> {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub roles: &'a [String],
    pub amr: &'a [String],
    pub auth_time: OffsetDateTime,
    pub client: &'a Client,
    pub idp: Option<&'a str>,
}

pub fn mint(
    keys: &KeyStore,
    settings: &AuthSettings,
    subject: &Subject<'_>,
    now: OffsetDateTime,
) -> Result<String> {
    let iat = now.unix_timestamp();
    let claims = AccessClaims {
        iss: settings.issuer.clone(),
        sub: subject.user_id,
        aud: subject.client.audience.clone(),
        exp: iat + subject.client.access_ttl_secs,
        iat,
        jti: Uuid::new_v4(),
        sid: subject.session_id,
        roles: subject.roles.to_vec(),
        amr: subject.amr.to_vec(),
        auth_time: subject.auth_time.unix_timestamp(),
        client_id: subject.client.id.clone(),
        scope: subject.client.scope.clone(),
        idp: subject.idp.map(str::to_owned),
    };
    Ok(keys.current().active.sign(TOKEN_TYPE, &claims)?)
}

/// A bearer token's claims, when it is one of ours, unexpired, and its
/// `aud` is its client's audience. Remembered once verified (see
/// `verified_tokens`).
pub async fn authenticate(services: &Services, token: &str) -> Result<Arc<AccessClaims>> {
    let now = services.clock.now();
    let keys = services.keys.current();
    let cache_key = VerifiedTokens::key(token);
    if let Some(claims) = services
        .verified_tokens
        .get(&cache_key, &keys, now.unix_timestamp())
    {
        return Ok(claims);
    }
    let (kid, claims) = verify(&keys, &services.settings.auth, token, now)?;
    let stored = (claims.client_id != crate::domain::clients::DEFAULT_CLIENT_ID)
        .then_some(claims.client_id.as_str());
    let client = services
        .clients
        .stored(&services.db, stored)
        .await?
        .ok_or(Error::InvalidToken)?;
    if client.audience != claims.aud {
        return Err(Error::InvalidToken);
    }
    let claims = Arc::new(claims);
    services
        .verified_tokens
        .insert(cache_key, kid, claims.clone(), now.unix_timestamp());
    Ok(claims)
}

/// The token's signing key id and claims, when its signature, issuer and
/// times hold.
fn verify(
    set: &KeySet,
    settings: &AuthSettings,
    token: &str,
    now: OffsetDateTime,
) -> Result<(String, AccessClaims)> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::InvalidToken);
    }
    let header = decode_header(token).map_err(|_| Error::InvalidToken)?;
    if header.typ.as_deref() != Some(TOKEN_TYPE) {
        return Err(Error::InvalidToken);
    }
    let kid = header.kid.ok_or(Error::InvalidToken)?;
    let key = set.verifying.get(&kid).ok_or(Error::InvalidToken)?;
    // The key decides the algorithm, never the token.
    if header.alg != key.algorithm.jwt() {
        return Err(Error::InvalidToken);
    }
    let mut validation = Validation::new(key.algorithm.jwt());
    validation.set_issuer(&[&settings.issuer]);
    // Required below, but not pinned: every client's audience is ours.
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    // Expiry is checked below against the service clock, not the system one.
    validation.validate_exp = false;
    let claims = decode::<AccessClaims>(token, &key.key, &validation)
        .map_err(|_| Error::InvalidToken)?
        .claims;
    let now = now.unix_timestamp();
    if claims.exp <= now || claims.iat > now + 60 {
        return Err(Error::InvalidToken);
    }
    Ok((kid, claims))
}
