//! Debian packages the tests and tools need, and installing the missing ones.
//!
//! CI runs `cargo xtask ci` as root on a bare Debian 12 machine, so the tests' real clients
//! (STYLE.md section 8, "Interop") are installed here rather than in `.ci/run`: a developer's
//! `cargo xtask ci` does the same thing. Add a row to a table to add a package.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::cmd;

/// How to tell that a package is installed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// An executable of this name on `PATH` or in the standard Debian directories.
    Program(&'static str),
    /// A module that Debian's `/usr/bin/python3` can import.
    PythonModule(&'static str),
}

/// A Debian package and how to check for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemDep {
    pub(crate) package: &'static str,
    pub(crate) check: Check,
    pub(crate) why: &'static str,
}

/// What `cargo xtask ci` needs: the real clients of the interop tests.
pub(crate) const CI_DEPS: &[SystemDep] = &[
    SystemDep {
        package: "python3-libtorrent",
        check: Check::PythonModule("libtorrent"),
        why: "interop tests against libtorrent-rasterbar",
    },
    SystemDep {
        package: "aria2",
        check: Check::Program("aria2c"),
        why: "interop tests against aria2c, a second client besides libtorrent",
    },
    SystemDep {
        package: "opentracker",
        check: Check::Program("opentracker"),
        why: "interop tests against a real tracker",
    },
    SystemDep {
        package: "mktorrent",
        check: Check::Program("mktorrent"),
        why: "interop tests with torrents made by another tool",
    },
    SystemDep {
        package: "openssl",
        check: Check::Program("openssl"),
        why: "certificates for the HTTPS tracker and SSL torrent tests, and s_client/s_server as TLS peers",
    },
    SystemDep {
        package: "nginx-light",
        check: Check::Program("nginx"),
        why: "web seed tests (BEP 19) against a real HTTP server",
    },
    SystemDep {
        package: "dante-server",
        check: Check::Program("danted"),
        why: "proxy tests: SOCKS4 and SOCKS5 (with and without a password)",
    },
    SystemDep {
        package: "tinyproxy",
        check: Check::Program("tinyproxy"),
        why: "proxy tests: HTTP CONNECT and proxied HTTP requests (with and without a password)",
    },
    SystemDep {
        package: "miniupnpd",
        check: Check::Program("miniupnpd"),
        why: "lt-nat interop tests against a real UPnP IGD / NAT-PMP / PCP gateway",
    },
    SystemDep {
        package: "nftables",
        check: Check::Program("nft"),
        why: "the firewall miniupnpd's nftables backend writes its mappings into",
    },
];

/// What `cargo xtask fuzz` needs besides cargo-fuzz.
pub(crate) const FUZZ_DEPS: &[SystemDep] = &[SystemDep {
    package: "g++",
    check: Check::Program("c++"),
    why: "libfuzzer-sys compiles libFuzzer's C++ sources",
}];

/// Debian's own Python, where `python3-*` packages install their modules.
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Searched after `PATH`: Debian puts daemons in the `sbin` directories.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Makes sure every package of `deps` is installed.
///
/// Missing packages are installed with `apt-get` (one `update`, one `install`) when `install`
/// is set and this runs as root on Debian; otherwise this fails naming them.
pub(crate) fn ensure(deps: &[SystemDep], install: bool) -> Result<()> {
    let missing = missing(deps);
    if missing.is_empty() {
        println!("all present: {}", package_list(deps));
        return Ok(());
    }
    let names = package_list(&missing);
    for dep in &missing {
        println!(
            "missing: {} ({}; {})",
            dep.package,
            describe(dep.check),
            dep.why
        );
    }
    if !install {
        bail!("missing Debian packages: {names}; install them with `apt-get install -y {names}`");
    }
    if !is_root() || !is_debian() {
        bail!(
            "missing Debian packages: {names}; install them with `apt-get install -y {names}` \
             (this xtask installs them itself only when run as root on Debian)"
        );
    }
    cmd::run(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    // Packages such as dante-server, tinyproxy and nginx start their daemon when installed
    // unless policy-rc.d says no (exit 101); each test starts its own instead.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let made_policy = !policy.exists();
    if made_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n")?;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
    }
    let installed = cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(missing.iter().map(|d| d.package))
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    if made_policy {
        let _ = std::fs::remove_file(policy);
    }
    installed?;
    let still = self::missing(&missing);
    if !still.is_empty() {
        bail!(
            "apt-get installed {names} but these checks still fail: {}",
            still
                .iter()
                .map(|d| format!("{} ({})", d.package, describe(d.check)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("installed: {names}");
    Ok(())
}

/// The packages of `deps` whose check fails.
pub(crate) fn missing(deps: &[SystemDep]) -> Vec<SystemDep> {
    deps.iter()
        .filter(|dep| !is_present(dep.check))
        .copied()
        .collect()
}

/// Finds an executable file named `program` on `PATH` or in the standard Debian directories.
pub(crate) fn find_program(program: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_present(check: Check) -> bool {
    match check {
        Check::Program(program) => find_program(program).is_some(),
        Check::PythonModule(module) => {
            cmd::succeeds(Command::new(DEBIAN_PYTHON).args(["-c", &format!("import {module}")]))
        }
    }
}

fn describe(check: Check) -> String {
    match check {
        Check::Program(program) => format!("no `{program}` on PATH or in /usr/sbin, /usr/bin"),
        Check::PythonModule(module) => format!("`{DEBIAN_PYTHON} -c 'import {module}'` fails"),
    }
}

fn package_list(deps: &[SystemDep]) -> String {
    deps.iter().map(|d| d.package).collect::<Vec<_>>().join(" ")
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether this process runs as root: `/proc/self` belongs to the effective user.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").map_or_else(
        |_| {
            cmd::output(Command::new("id").arg("-u"))
                .is_ok_and(|out| String::from_utf8_lossy(&out).trim() == "0")
        },
        |m| m.uid() == 0,
    )
}

fn is_debian() -> bool {
    Path::new("/etc/debian_version").exists() && find_program("apt-get").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_name_distinct_packages() {
        let mut names: Vec<_> = CI_DEPS.iter().chain(FUZZ_DEPS).map(|d| d.package).collect();
        let len = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), len);
    }

    #[test]
    fn finds_programs_and_reports_missing_ones() {
        assert!(find_program("sh").is_some());
        let fake = SystemDep {
            package: "lt-no-such-package",
            check: Check::Program("lt-no-such-program-5f3a"),
            why: "test",
        };
        let present = SystemDep {
            package: "dash",
            check: Check::Program("sh"),
            why: "test",
        };
        let missing = missing(&[present, fake]);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].package, "lt-no-such-package");
        let err = ensure(&[fake], false).unwrap_err().to_string();
        assert!(
            err.contains("apt-get install -y lt-no-such-package"),
            "{err}"
        );
    }
}
