//! Handlers, one module per area of the API.
pub mod account;
pub mod activity;
pub mod admin;
pub mod auth;
pub mod federation;
pub mod health;
pub mod me;
pub mod me_account;
pub mod mfa;
pub mod well_known;
