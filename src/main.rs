//! The `authd` binary: everything lives in the library; see `authd --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

/// jemalloc (with background threads) rather than glibc's malloc: it hands
/// freed pages back to the kernel, so memory returns to its baseline after
/// a connection flood (glibc kept ~70 MB of a 4,096-connection flood for good).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    authd::crypto::install_tls_provider();
    let outcome = authd::scheduling::runtime()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(authd::cli::run()));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("authd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
