//! Workspace tooling, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! - `ci`: everything CI checks, in order, failing fast (STYLE.md section 10).
//! - `deps`: the crate layering and sans-IO rules of STYLE.md section 3.
//! - `fuzz`: runs every cargo-fuzz target on stable (`RUSTC_BOOTSTRAP=1`).
//! - `swarm-test`: one `lt seed`, many `lt download` processes and lt-tracker's server on
//!   loopback; every byte verified.
//! - `bench transfer`: 1 GiB over loopback, lt and libtorrent as seeder and leecher (MB/s, CPU,
//!   memory). `bench tracker` (or `bench-tracker`): UDP announces/s of lt-tracker's server and
//!   of opentracker, same generator. `bench scale`: 10,000 torrents in one session and one
//!   seeder with 10 and 1000 peers, lt beside libtorrent (issue 19). `bench webseed`: 1 GiB
//!   from nginx as a web seed, lt beside libtorrent and curl (issue 21).

mod bench;
mod bench_scale;
mod bench_ssl;
mod bench_tracker;
mod bench_webseed;
mod ci;
mod cmd;
mod deps;
mod fuzz;
mod swarm;
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
    /// A local swarm of `lt` processes (one seed, many leechers) and lt-tracker's server on
    /// loopback; every leecher's data verified; prints each peer's time and rate.
    SwarmTest(swarm::SwarmArgs),
    /// Benchmarks: `transfer` (lt and libtorrent moving 1 GiB over loopback) and `tracker`.
    Bench(bench::BenchArgs),
    /// UDP announces per second of lt-tracker's TrackerServer and of opentracker on loopback,
    /// with the same load generator in the same run (also `bench tracker`).
    BenchTracker(bench_tracker::BenchTrackerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ci(args) => ci::run(&args),
        Command::Deps => deps::run(),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::SwarmTest(args) => swarm::run(&args),
        Command::Bench(args) => bench::run(&args),
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
