//! Helpers shared by the lt-metainfo bench binaries.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

/// The benches' result type.
pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The system Python with python3-libtorrent.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// Reproducible bytes (xorshift64*), so piece hashes look like hashes.
pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ seed.wrapping_mul(0xff51_afd7_ed55_8ccd);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A scratch directory on /dev/shm (page cache only), or the default temp dir.
pub(crate) fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir> {
    let builder = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(PathBuf::from("/dev/shm"));
    Ok(builder.or_else(|_| tempfile::tempdir())?)
}

/// A numeric environment variable, or the default.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs a python3-libtorrent `script` with `args` and returns the words it printed.
pub(crate) fn run_python<I, S>(script: &str, args: I) -> Result<Vec<String>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {PYTHON}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "python3-libtorrent failed (apt-get install python3-libtorrent?): {}",
            err.lines().last().unwrap_or("")
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}
