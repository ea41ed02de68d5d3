//! The admin plane: roles and their permissions, the checks every admin
//! call passes first, and the actions on accounts and the audit log.
//!
//! The rules: least privilege (`permissions::ROLES` is the only grant),
//! default-deny (a route without a permission cannot be built; a caller
//! without it gets 403 before anything else happens), power read from the
//! database at every call (a revoked role bites at once), admin-plane roles
//! act only from a session that passed MFA, and every admin action and
//! every read of personal data is audited with who, whom and why.
pub mod audit_view;
pub mod authorize;
pub mod permissions;
pub mod users;

/// The `reason` every mutating admin call carries: 1 to 500 characters.
pub fn check_reason(reason: &str) -> crate::error::Result<&str> {
    let trimmed = reason.trim();
    let length = trimmed.chars().count();
    if (1..=500).contains(&length) {
        Ok(trimmed)
    } else {
        Err(crate::Error::InvalidRequest(
            "reason must be 1 to 500 characters".into(),
        ))
    }
}
