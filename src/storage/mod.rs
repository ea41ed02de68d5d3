//! Storage: the only place SQL lives. Functions take any executor so the
//! domain layer decides what runs inside one transaction.
//!
//! Queries are checked at run time (`sqlx::query_as` + `FromRow`) rather than
//! by the compile-time macros: that keeps builds independent of a live
//! database or a committed `.sqlx` cache, and every query runs in the
//! integration tests against real PostgreSQL, which is where a broken query
//! would show.
pub mod account_tokens;
pub mod admin;
pub mod audit;
pub mod clients;
pub mod db;
pub mod federation;
pub mod idempotency;
pub mod mfa;
pub mod notifications;
pub mod outbox;
pub mod sealed_keys;
pub mod sessions;
pub mod signing_keys;
pub mod throttle;
pub mod user_keys;
pub mod users;
