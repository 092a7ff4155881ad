//! Workspace tooling, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! - `ci`: everything CI checks, in order, failing fast (STYLE.md section 10).
//! - `deps`: the crate layering and sans-IO rules of STYLE.md section 3.
//! - `fuzz`: runs every cargo-fuzz target on stable (`RUSTC_BOOTSTRAP=1`).
//! - `bench-tracker`: UDP announces/s of lt-tracker's server and of opentracker, same generator.

mod bench_tracker;
mod ci;
mod cmd;
mod deps;
mod fuzz;
mod system_deps;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "lt workspace tooling"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every CI check: install test clients, fmt, clippy, build, tests, no-default-features
    /// builds, docs, dependency rules.
    Ci(ci::CiArgs),
    /// Check crate dependencies against the layer table and protocol crates for I/O, clocks and
    /// OS randomness.
    Deps,
    /// Run every cargo-fuzz target (installs cargo-fuzz when missing).
    Fuzz(fuzz::FuzzArgs),
    /// UDP announces per second of lt-tracker's TrackerServer and of opentracker on loopback,
    /// with the same load generator in the same run.
    BenchTracker(bench_tracker::BenchTrackerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ci(args) => ci::run(&args),
        Command::Deps => deps::run(),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::BenchTracker(args) => bench_tracker::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nxtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
