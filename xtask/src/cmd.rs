//! Running commands and timing named steps.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// The workspace root: the parent of this crate's directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A `cargo` command run from the workspace root, using the cargo that runs this xtask.
pub(crate) fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(workspace_root());
    cmd
}

/// Runs `cmd` with inherited stdio, failing with the command line when it does not succeed.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    println!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Whether `cmd` runs and exits successfully, with its output discarded.
pub(crate) fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` and returns its stdout, failing with its stderr when it does not succeed.
pub(crate) fn output(cmd: &mut Command) -> Result<Vec<u8>> {
    let line = display(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// A shell-like rendering of `cmd`: changed environment variables, program and arguments.
/// The program is shown by its file name (`cargo`, not the toolchain path).
pub(crate) fn display(cmd: &Command) -> String {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            let _ = write!(
                line,
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            );
        }
    }
    let program = Path::new(cmd.get_program());
    let program = program.file_name().unwrap_or(program.as_os_str());
    line.push_str(&program.to_string_lossy());
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains([' ', '\'', '"', '*', '$']) {
            let _ = write!(line, " '{}'", arg.replace('\'', r"'\''"));
        } else {
            let _ = write!(line, " {arg}");
        }
    }
    line
}

/// Runs named steps in order, printing a header and the elapsed time of each, and stopping at
/// the first failure.
pub(crate) struct Steps {
    started: Instant,
    done: Vec<(String, Duration, &'static str)>,
}

impl Steps {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            done: Vec::new(),
        }
    }

    /// Runs one step. On failure, prints the summary so far and returns the error with the
    /// step's name.
    pub(crate) fn run(&mut self, name: &str, step: impl FnOnce() -> Result<()>) -> Result<()> {
        println!("\n==> {name}");
        let started = Instant::now();
        let result = step();
        let elapsed = started.elapsed();
        match result {
            Ok(()) => {
                println!("<== {name}: ok in {}", secs(elapsed));
                self.done.push((name.to_owned(), elapsed, "ok"));
                Ok(())
            }
            Err(err) => {
                self.done.push((name.to_owned(), elapsed, "FAILED"));
                self.print_summary();
                Err(err.context(format!("step `{name}` failed after {}", secs(elapsed))))
            }
        }
    }

    /// Records a step that was deliberately not run.
    pub(crate) fn skip(&mut self, name: &str, why: &str) {
        println!("\n==> {name}: skipped ({why})");
        self.done.push((name.to_owned(), Duration::ZERO, "skipped"));
    }

    /// Prints each step's outcome and time, and the total.
    pub(crate) fn print_summary(&self) {
        println!("\n==> summary");
        for (name, elapsed, outcome) in &self.done {
            println!("    {name:<28} {outcome:<8} {:>9}", secs(*elapsed));
        }
        println!(
            "    {:<28} {:<8} {:>9}",
            "total",
            "",
            secs(self.started.elapsed())
        );
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_commands_like_a_shell() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.env("RUSTDOCFLAGS", "-Dwarnings")
            .args(["doc", "--workspace", "it's here"]);
        assert_eq!(
            display(&cmd),
            r"RUSTDOCFLAGS=-Dwarnings cargo doc --workspace 'it'\''s here'"
        );
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
