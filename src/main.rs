//! The `authd` binary: everything lives in the library; see `authd --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match authd::cli::run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("authd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
