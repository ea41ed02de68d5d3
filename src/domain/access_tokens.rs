//! Access tokens per RFC 9068: RS256 JWTs with `typ: at+jwt`, 15 minutes,
//! no PII. Verification accepts only RS256 with a known `kid`, our issuer
//! and audience, and checks expiry against the injected clock.
use jsonwebtoken::{Algorithm, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::AuthSettings;
use crate::domain::keys::KeyStore;
use crate::error::{Error, Result};

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
}

/// What identifies the holder of a session when minting its access token.
pub struct Subject<'a> {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub roles: &'a [String],
    pub amr: &'a [String],
    pub auth_time: OffsetDateTime,
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
        aud: settings.audience.clone(),
        exp: iat + settings.access_token_ttl_secs,
        iat,
        jti: Uuid::new_v4(),
        sid: subject.session_id,
        roles: subject.roles.to_vec(),
        amr: subject.amr.to_vec(),
        auth_time: subject.auth_time.unix_timestamp(),
    };
    let set = keys.current();
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some(TOKEN_TYPE.to_owned());
    header.kid = Some(set.active.kid.clone());
    encode(&header, &claims, &set.active.encoding).map_err(|e| Error::Internal(e.into()))
}

pub fn verify(
    keys: &KeyStore,
    settings: &AuthSettings,
    token: &str,
    now: OffsetDateTime,
) -> Result<AccessClaims> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::InvalidToken);
    }
    let header = decode_header(token).map_err(|_| Error::InvalidToken)?;
    if header.alg != Algorithm::RS256 || header.typ.as_deref() != Some(TOKEN_TYPE) {
        return Err(Error::InvalidToken);
    }
    let kid = header.kid.ok_or(Error::InvalidToken)?;
    let set = keys.current();
    let key = set.verifying.get(&kid).ok_or(Error::InvalidToken)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    // Expiry is checked below against the service clock, not the system one.
    validation.validate_exp = false;
    let claims = decode::<AccessClaims>(token, key, &validation)
        .map_err(|_| Error::InvalidToken)?
        .claims;
    let now = now.unix_timestamp();
    if claims.exp <= now || claims.iat > now + 60 {
        return Err(Error::InvalidToken);
    }
    Ok(claims)
}
