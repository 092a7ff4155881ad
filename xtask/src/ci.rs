//! `cargo xtask ci`: the README's test command and the body of `.ci/run` (STYLE.md section 10).

use anyhow::Result;
use clap::Args;

use crate::cmd::{self, Steps};
use crate::{deps, fuzz, swarm, system_deps};

#[derive(Debug, Args)]
pub(crate) struct CiArgs {
    /// Do not install missing Debian packages (only warn; the tests that need them will fail
    /// naming them).
    #[arg(long)]
    skip_install: bool,
    /// Also run every fuzz target for 10 seconds (`cargo xtask fuzz --smoke`).
    #[arg(long)]
    fuzz_smoke: bool,
}

pub(crate) fn run(args: &CiArgs) -> Result<()> {
    let mut steps = Steps::new();

    let mut needed = system_deps::CI_DEPS.to_vec();
    if args.fuzz_smoke {
        needed.extend_from_slice(system_deps::FUZZ_DEPS);
    }
    if args.skip_install {
        let missing = system_deps::missing(&needed);
        if missing.is_empty() {
            steps.skip("install-deps", "--skip-install; all present");
        } else {
            let names: Vec<_> = missing.iter().map(|d| d.package).collect();
            println!(
                "warning: missing Debian packages: {} (tests that need them will fail)",
                names.join(" ")
            );
            steps.skip("install-deps", "--skip-install");
        }
    } else {
        steps.run("install-deps", || system_deps::ensure(&needed, true))?;
    }

    steps.run("fmt", || {
        cmd::run(&mut cmd::cargo(["fmt", "--all", "--check"]))
    })?;
    steps.run("clippy", || {
        cmd::run(&mut cmd::cargo([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    steps.run("build", || {
        cmd::run(&mut cmd::cargo(["build", "--workspace", "--all-targets"]))
    })?;
    // The interop tests run the `lt` the workspace build just made, rather than building
    // their own in target/lt-bin (see lt_tests::swarm::lt_binary).
    let lt_bin = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || cmd::workspace_root().join("target"),
            std::path::PathBuf::from,
        )
        .join("debug")
        .join("lt");
    steps.run("test", || {
        if cmd::succeeds(&mut cmd::cargo(["nextest", "--version"])) {
            let mut test = cmd::cargo([
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
            ]);
            cmd::run(test.env("LT_BIN", &lt_bin))
        } else {
            println!("cargo-nextest not found; using cargo test");
            let mut test = cmd::cargo(["test", "--workspace", "--all-features"]);
            cmd::run(test.env("LT_BIN", &lt_bin))
        }
    })?;
    // nextest does not run doctests; with `cargo test` above this repeats them, cheaply.
    steps.run("doctest", || {
        cmd::run(&mut cmd::cargo([
            "test",
            "--workspace",
            "--doc",
            "--all-features",
        ]))
    })?;

    // A local swarm of separate processes: one lt seed, 8 lt and 2 libtorrent leechers
    // through lt-tracker's server, 32 MiB, every byte verified.
    steps.run("swarm-test", || {
        swarm::run(&swarm::SwarmArgs {
            size_mib: 32,
            leechers: 8,
            with_libtorrent: 2,
            piece_kib: 256,
            timeout: 120,
            keep: false,
        })
    })?;

    let protocol = deps::protocol_crates(&deps::workspace_packages()?);
    steps.run("no-default-features", || {
        // One cargo invocation per crate: building several at once would unify their features.
        for krate in &protocol {
            cmd::run(&mut cmd::cargo([
                "clippy",
                "-p",
                krate,
                "--no-default-features",
                "--",
                "-D",
                "warnings",
            ]))?;
        }
        Ok(())
    })?;
    steps.run("doc", || {
        let mut doc = cmd::cargo(["doc", "--workspace", "--no-deps", "--all-features"]);
        doc.env("RUSTDOCFLAGS", "-Dwarnings");
        cmd::run(&mut doc)
    })?;
    steps.run("deps", deps::run)?;

    if args.fuzz_smoke {
        steps.run("fuzz-smoke", || fuzz::run(&fuzz::FuzzArgs::smoke()))?;
    } else {
        steps.skip("fuzz-smoke", "pass --fuzz-smoke to run it");
    }

    steps.print_summary();
    println!("\nci: all steps passed");
    Ok(())
}
