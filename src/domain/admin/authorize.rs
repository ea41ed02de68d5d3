//! The one check in front of every admin route: an open session of an
//! enabled account whose roles (read now, from the database) grant the
//! permission, and whose session passed MFA.
use uuid::Uuid;

use crate::domain::access_tokens::AccessClaims;
use crate::domain::admin::permissions::{self, Permission, PermissionSet};
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::admin as store;

/// Who is acting, once authorized: an admin-plane account, or an operator
/// at the command line (`user_id` none).
#[derive(Debug, Clone, Copy)]
pub struct AdminCaller {
    pub user_id: Option<Uuid>,
    /// What the caller's roles grant (everything at the command line).
    pub granted: PermissionSet,
}

impl AdminCaller {
    /// Staff may act on an account only if their roles grant all that its
    /// roles do: support cannot log out the admins who could stop them.
    pub fn outranks(&self, target_roles: &[String]) -> bool {
        self.granted.covers(PermissionSet::of(target_roles))
    }

    /// `authd users …`: whoever has the database and the master key.
    pub fn cli() -> Self {
        Self {
            user_id: None,
            granted: PermissionSet::ALL,
        }
    }
}

pub async fn authorize(
    services: &Services,
    claims: &AccessClaims,
    permission: Permission,
) -> Result<AdminCaller> {
    let now = services.clock.now();
    let roles = store::live_roles(&services.db, claims.sub, claims.sid, now)
        .await?
        .ok_or(Error::InvalidToken)?;
    if !permissions::grants(&roles, permission) {
        return Err(Error::Forbidden);
    }
    if !claims.amr.iter().any(|m| m == "mfa") {
        return Err(Error::MfaRequired);
    }
    Ok(AdminCaller {
        user_id: Some(claims.sub),
        granted: PermissionSet::of(&roles),
    })
}
