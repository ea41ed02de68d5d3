//! The one application state, shared by every handler and background task:
//! the domain's `Services`, plus what only HTTP needs. It derefs to
//! `Services`, so a handler passes `&state` to a domain function as is.
use std::ops::Deref;
use std::sync::Arc;

use crate::crypto::DataKey;
use crate::domain::services::Services;

pub struct App {
    pub services: Services,
    /// Keys the fingerprints of idempotent requests (see `http::idempotency`).
    pub idempotency_key: DataKey,
}

impl Deref for App {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
