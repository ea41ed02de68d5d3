//! Who may do what: one table from roles to permissions, and nothing else
//! decides. A permission not in a role's row is denied.
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// List and read accounts.
    ReadUsers,
    /// End an account's sessions.
    RevokeSessions,
    /// Mail an account a new verification link.
    ResendVerification,
    /// Read the audit log.
    ReadAudit,
    /// Disable and enable accounts.
    DisableAccounts,
    /// Change an account's roles.
    ManageRoles,
    /// Remove an account's TOTP and recovery codes (lost phone).
    ResetMfa,
}

use Permission::*;

/// The table. `user` is every account's role and grants nothing here.
pub const ROLES: [(&str, &[Permission]); 4] = [
    ("user", &[]),
    ("support", &[ReadUsers, RevokeSessions, ResendVerification]),
    ("auditor", &[ReadAudit]),
    (
        "admin",
        &[
            ReadUsers,
            RevokeSessions,
            ResendVerification,
            ReadAudit,
            DisableAccounts,
            ManageRoles,
            ResetMfa,
        ],
    ),
];

/// Whether any of `roles` grants `permission`.
pub fn grants(roles: &[String], permission: Permission) -> bool {
    roles.iter().any(|role| {
        ROLES
            .iter()
            .any(|(name, permissions)| name == role && permissions.contains(&permission))
    })
}

/// The permissions some roles grant together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermissionSet(u16);

impl PermissionSet {
    /// An operator at the command line.
    pub const ALL: Self = Self(u16::MAX);

    pub fn of(roles: &[String]) -> Self {
        let bits = ROLES
            .iter()
            .filter(|(name, _)| roles.iter().any(|role| role == name))
            .flat_map(|(_, permissions)| permissions.iter())
            .fold(0u16, |bits, permission| bits | 1 << (*permission as u16));
        Self(bits)
    }

    /// Whether these hold every permission `other` holds.
    pub fn covers(self, other: Self) -> bool {
        other.0 & !self.0 == 0
    }
}

pub fn is_known(role: &str) -> bool {
    ROLES.iter().any(|(name, _)| *name == role)
}

/// A permission as a type, so that a route names it in its signature.
pub trait Required: Send + Sync + 'static {
    const PERMISSION: Permission;
}

macro_rules! required {
    ($($name:ident),*) => {
        $(
            #[derive(Debug)]
            pub struct $name;
            impl Required for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*
    };
}

/// Marker types, one per permission.
pub mod require {
    use super::{Permission, Required};
    required!(
        ReadUsers,
        RevokeSessions,
        ResendVerification,
        ReadAudit,
        DisableAccounts,
        ManageRoles,
        ResetMfa
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn each_role_grants_exactly_its_row() {
        let all = [
            ReadUsers,
            RevokeSessions,
            ResendVerification,
            ReadAudit,
            DisableAccounts,
            ManageRoles,
            ResetMfa,
        ];
        for permission in all {
            assert!(!grants(&roles(&["user"]), permission));
            assert!(grants(&roles(&["admin"]), permission));
            assert_eq!(
                grants(&roles(&["support"]), permission),
                matches!(permission, ReadUsers | RevokeSessions | ResendVerification)
            );
            assert_eq!(
                grants(&roles(&["auditor"]), permission),
                permission == ReadAudit
            );
            // Unknown roles grant nothing.
            assert!(!grants(&roles(&["superuser", "root"]), permission));
        }
    }
}
