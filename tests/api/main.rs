//! Integration tests: the real router on a random port, a fresh PostgreSQL
//! database per test, reqwest as the client.
// A failed unwrap is a failed test, with the reason in the panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod helpers;

mod admin;
mod audit;
mod authorizers;
mod cli;
mod clients;
mod connections;
mod contract;
mod emails;
mod errors;
mod federation;
mod flood;
mod health;
mod hsts;
mod idempotency;
mod jwks;
mod lifecycle;
mod login;
mod me;
mod metrics;
mod mfa;
mod openapi;
mod outage;
mod overload;
mod rate_limit;
mod refresh;
mod replicas;
mod shutdown;
mod signup;
