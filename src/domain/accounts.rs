//! Sign-up and the caller's own profile. Sign-up answers identically whether
//! or not the address is taken: the password is hashed in both cases, and
//! the insert simply does nothing on a duplicate (the audit log records
//! which it was; the client is never told).
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::domain::audit::{Context, Event, Kind};
use crate::domain::email::Email;
use crate::domain::password_policy;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::storage::users::{self, NewUser, Profile};

pub async fn signup(state: &AppState, ctx: &Context, email: &str, password: &str) -> Result<()> {
    let email = Email::parse(email)?;
    let password = password_policy::normalize(password);
    let reasons = password_policy::violations(&password, &email, &state.settings.password);
    if !reasons.is_empty() {
        return Err(Error::WeakPassword(reasons));
    }
    let hash = state.passwords.hash(SecretString::from(password)).await?;
    let now = state.clock.now();
    let user = NewUser {
        id: Uuid::new_v4(),
        email: email.as_str(),
        email_key: email.key(),
        password_hash: &hash,
        email_verified: false,
        now,
    };
    let mut tx = state.db.begin().await?;
    let event = if users::insert_if_absent(&mut *tx, &user).await? {
        users::grant_roles(&mut *tx, user.id, &state.settings.auth.default_roles, now).await?;
        Event::by_user(Kind::Signup, user.id, "created", json!({}))
    } else {
        let existing = users::id_by_email_key(&mut *tx, email.key()).await?;
        Event {
            kind: Kind::Signup,
            actor: None,
            subject: existing,
            outcome: "duplicate",
            details: json!({}),
        }
    };
    state.audit.append(&mut tx, ctx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn profile(state: &AppState, user_id: Uuid, session_id: Uuid) -> Result<Profile> {
    users::profile_for_session(&state.db, user_id, session_id)
        .await?
        .ok_or(Error::InvalidToken)
}
