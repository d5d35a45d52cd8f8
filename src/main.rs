//! The `logwarden` binary: parse flags, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = logwarden::cli::Cli::parse();
    match logwarden::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logwarden: {e:#}");
            ExitCode::FAILURE
        }
    }
}
