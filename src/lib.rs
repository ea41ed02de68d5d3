//! authd: a self-hosted authentication service.
//!
//! Layers, outermost first: `http` (routes, extractors, error mapping) calls
//! `domain` (passwords, tokens, sessions, throttling), which calls `storage`
//! (all SQL). `startup` wires them together; `cli` is the command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod scheduling;
pub mod secret_files;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;

pub use error::Error;
