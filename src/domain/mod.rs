//! Domain logic: the rules of the product, independent of HTTP. Services here
//! own their transactions and call `storage` for SQL.
pub mod access_tokens;
pub mod accounts;
pub mod admin;
pub mod audit;
pub mod clients;
pub mod credentials;
pub mod data_keys;
pub mod email;
pub mod federation;
pub mod hashing_pool;
pub mod key_material;
pub mod keys;
pub mod lifecycle;
pub mod mail;
pub mod master_key_rotation;
pub mod mfa;
pub mod paging;
pub mod password_policy;
pub mod passwords;
pub mod refresh_tokens;
pub mod services;
pub mod session_cache;
pub mod sessions;
pub mod throttle;
pub mod user_keys;
pub mod verified_tokens;
