//! Cryptographic building blocks, all on aws-lc-rs: the master key and the
//! per-purpose keys derived from it, authenticated encryption, random tokens.
pub mod master_key;
pub mod random;

pub use master_key::{DataKey, MasterKey};

/// Makes aws-lc-rs the process's default rustls provider. reqwest clients
/// built without a TLS configuration of their own need one (ring is not
/// compiled in); authd's own clients bring theirs. Idempotent.
pub fn install_tls_provider() {
    // Err means a provider is already installed: that one stays.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
