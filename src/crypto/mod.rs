//! Cryptographic building blocks, all on aws-lc-rs: the master key and the
//! per-purpose keys derived from it, authenticated encryption, random tokens.
pub mod master_key;
pub mod random;

pub use master_key::{DataKey, MasterKey};
