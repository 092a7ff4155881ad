//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `fuzz/` on stable Rust.
//!
//! cargo-fuzz passes nightly-only flags (sanitizers, `-Z` options); `RUSTC_BOOTSTRAP=1` lets
//! the stable toolchain accept them (STYLE.md section 2). libFuzzer writes the new inputs it
//! finds into the first corpus directory, so that is `fuzz/target/corpus/<target>/` (ignored by
//! git) and the committed seeds in `fuzz/corpus/<target>/` are only read.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::cmd;
use crate::system_deps;

/// Seconds each target runs with `--smoke`.
const SMOKE_SECONDS: u64 = 10;
/// Seconds each target runs by default.
const DEFAULT_SECONDS: u64 = 60;

#[derive(Debug, Args)]
pub(crate) struct FuzzArgs {
    /// Run each target for 10 seconds (unless --seconds says otherwise).
    #[arg(long)]
    smoke: bool,
    /// Seconds to run each target [default: 60, or 10 with --smoke].
    #[arg(long, value_name = "N")]
    seconds: Option<u64>,
    /// Targets to run [default: every file in fuzz/fuzz_targets/].
    targets: Vec<String>,
}

impl FuzzArgs {
    /// `--smoke` over every target.
    pub(crate) fn smoke() -> Self {
        Self {
            smoke: true,
            seconds: None,
            targets: Vec::new(),
        }
    }
}

pub(crate) fn run(args: &FuzzArgs) -> Result<()> {
    let fuzz_dir = cmd::workspace_root().join("fuzz");
    let all = targets(&fuzz_dir)?;
    let selected = if args.targets.is_empty() {
        all
    } else {
        for t in &args.targets {
            if !all.contains(t) {
                bail!("no fuzz target `{t}`; the targets are: {}", all.join(", "));
            }
        }
        args.targets.clone()
    };
    let seconds = args.seconds.unwrap_or(if args.smoke {
        SMOKE_SECONDS
    } else {
        DEFAULT_SECONDS
    });

    system_deps::ensure(system_deps::FUZZ_DEPS, true)?;
    ensure_cargo_fuzz()?;

    for target in &selected {
        let seeds = fuzz_dir.join("corpus").join(target);
        if !seeds.is_dir() {
            bail!(
                "fuzz target `{target}` has no seed corpus at {}",
                seeds.display()
            );
        }
        let scratch = fuzz_dir.join("target").join("corpus").join(target);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        println!("\n--> fuzz {target} for {seconds}s");
        let mut fuzz = cmd::cargo(["fuzz", "run", "--fuzz-dir"]);
        fuzz.arg(relative(&fuzz_dir))
            .arg(target)
            .arg(relative(&scratch))
            .arg(relative(&seeds))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .env("RUSTC_BOOTSTRAP", "1");
        cmd::run(&mut fuzz).with_context(|| {
            format!(
                "fuzz target `{target}` failed to build or found a crash (a crashing input is \
                 saved in fuzz/artifacts/{target}/)"
            )
        })?;
    }
    println!("fuzz: {} target(s) ran {seconds}s each", selected.len());
    Ok(())
}

/// The target names: the stems of `fuzz/fuzz_targets/*.rs`, sorted.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem()
        {
            names.push(stem.to_string_lossy().into_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("no fuzz targets in {}", dir.display());
    }
    Ok(names)
}

fn ensure_cargo_fuzz() -> Result<()> {
    if cmd::succeeds(&mut cmd::cargo(["fuzz", "--version"])) {
        return Ok(());
    }
    println!("cargo-fuzz not found; installing it");
    cmd::run(&mut cmd::cargo(["install", "cargo-fuzz", "--locked"]))
}

/// `path` relative to the workspace root, for shorter command lines.
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(cmd::workspace_root())
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_targets() {
        let names = targets(&cmd::workspace_root().join("fuzz")).unwrap();
        assert!(names.contains(&"bdecode".to_owned()), "{names:?}");
    }
}
