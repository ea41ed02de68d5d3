//! The second step of a login. A correct password of an enrolled account
//! yields no tokens, only an `mfa_token`: 256 random bits, stored as its
//! SHA-256, bound to the account and to the channel (web cookie or native
//! body) of the password step, alive for `TTL_SECS`, good for
//! `MAX_ATTEMPTS` codes and for one success. The step never runs Argon2.
use serde_json::json;
use time::Duration;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::clients::Client;
use crate::domain::mfa::factor::{Against, Factor, Guard};
use crate::domain::refresh_tokens::PlainToken;
use crate::domain::services::Services;
use crate::domain::sessions::{self, ClientType, Issued, Opening};
use crate::error::{Error, Result};
use crate::storage::mfa::{self as store, NewChallenge};

pub const TTL_SECS: i64 = 300;
pub const MAX_ATTEMPTS: i32 = 5;

/// What the password step hands an enrolled account instead of tokens.
#[derive(Debug)]
pub struct Challenge {
    pub token: PlainToken,
    pub expires_in: i64,
}

pub async fn issue(
    services: &Services,
    ctx: &Context,
    user_id: Uuid,
    client_type: ClientType,
    client: &Client,
) -> Result<Challenge> {
    let token = PlainToken::generate()?;
    let now = services.clock.now();
    let challenge = NewChallenge {
        token_hash: &token.hash(),
        user_id,
        client_type: client_type.as_str(),
        client_id: client.stored_id(),
        now,
        expires_at: now + Duration::seconds(TTL_SECS),
    };
    let mut tx = services.db.begin().await?;
    store::insert_challenge(&mut *tx, &challenge).await?;
    let details = json!({ "client_type": client_type.as_str() });
    let event = Event::by_user(Kind::MfaChallenged, user_id, "challenge_issued", details);
    services.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    Ok(Challenge {
        token,
        expires_in: TTL_SECS,
    })
}

/// Completes a login with `factor`: the tokens, and the channel of the
/// password step to hand them out on.
pub async fn complete(
    services: &Services,
    ctx: &Context,
    presented: &str,
    factor: &Factor,
) -> Result<(Issued, ClientType)> {
    let token = PlainToken::parse(presented).ok_or(Error::InvalidMfaToken)?;
    let hash = token.hash();
    let now = services.clock.now();
    let user_id = store::peek_challenge(&services.db, &hash, now, MAX_ATTEMPTS)
        .await?
        .ok_or(Error::InvalidMfaToken)?;
    let guard = Guard::check(services, ctx, user_id, Kind::MfaFailed).await?;
    let challenge = store::take_attempt(&services.db, &hash, now, MAX_ATTEMPTS)
        .await?
        .ok_or(Error::InvalidMfaToken)?;
    let client_type = ClientType::parse(&challenge.client_type)?;
    let client = services
        .clients
        .stored(&services.db, challenge.client_id.as_deref())
        .await?
        .ok_or(Error::InvalidMfaToken)?;
    // The challenge is used, and the code spent, in one transaction: a
    // double submit (or a second code sent alongside) waits on the
    // challenge's row, then finds it used, and spends nothing.
    let mut tx = services.db.begin().await?;
    if !store::use_challenge(&mut *tx, &hash, now).await? {
        return Err(Error::InvalidMfaToken);
    }
    let Some(method) = guard
        .spend_in(services, ctx, &mut tx, factor, Against::Active)
        .await?
    else {
        // The challenge's use rolls back with it: its attempts still count.
        tx.rollback().await?;
        return Err(guard.refuse(services, ctx, factor, Kind::MfaFailed).await);
    };
    let details = json!({ "method": method.as_str() });
    let event = Event::by_user(Kind::MfaSucceeded, user_id, "success", details);
    services.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    guard.succeeded(services).await?;
    let opening = Opening {
        user_id,
        client_type,
        client: &client,
        amr: method.amr(),
        idp: None,
    };
    // An account disabled since the attempt was taken opens no session.
    let issued = sessions::open_session(services, ctx, opening)
        .await
        .map_err(|e| match e {
            Error::InvalidCredentials => Error::InvalidMfaToken,
            other => other,
        })?;
    Ok((issued, client_type))
}
