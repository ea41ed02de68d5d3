//! The account's life around its password: verifying the address, resetting
//! a forgotten password, changing the password or the address, seeing and
//! ending sessions, and deleting the account.
//!
//! The rules: nothing reveals whether an address has an account (requests
//! that name an address answer the same, and do the same work on the
//! request path, either way); every link is a 256-bit single-use token
//! stored only as its hash, with a short life; a change of password ends
//! the other sessions; deletion shreds what the audit log keeps.
pub mod deletion;
pub mod email_change;
pub mod password;
pub mod requests;
pub mod sessions;
pub mod tokens;
pub mod verification;
