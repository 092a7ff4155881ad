//! Shared helpers for the workspace-level tests in `tests/tests/`.
//!
//! Interop tests run against real clients from Debian's packages (libtorrent-rasterbar through
//! `python3-libtorrent`, opentracker, aria2, ...). `cargo xtask ci` installs them; when one is
//! missing a test must fail loudly and name the package, never skip. Every process a test
//! starts is held in a [`ChildGuard`] so that it is killed and reaped even when the test
//! panics.
#![forbid(unsafe_code)]

pub mod bad_peer;
pub mod hostile;
pub mod netns;
pub mod nginx;
pub mod pki;
pub mod proxies;
pub mod session;
pub mod swarm;
pub mod tracker_driver;

use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's own Python, which is where `python3-libtorrent` installs its module (a `python3`
/// earlier on `PATH`, such as a pyenv shim, may not see it).
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Directories searched after `PATH`: Debian puts daemons in the `sbin` directories, which a
/// non-login or non-root `PATH` may leave out.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Panics unless Debian's Python can import `libtorrent` (package `python3-libtorrent`).
///
/// Returns the interpreter to run libtorrent scripts with.
///
/// # Panics
/// When the module is missing, with a message naming the package to install.
pub fn require_python_libtorrent() -> &'static Path {
    let ok = Command::new(DEBIAN_PYTHON)
        .args(["-c", "import libtorrent"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{DEBIAN_PYTHON} -c 'import libtorrent'` failed: this test needs Debian's \
         libtorrent bindings; install them with `apt-get install python3-libtorrent` \
         (`cargo xtask ci` does this when run as root)"
    );
    Path::new(DEBIAN_PYTHON)
}

/// Returns the path of `program`, searching `PATH` and then the standard Debian directories.
///
/// # Panics
/// When it is not found, with a message naming the Debian `package` that provides it.
pub fn require_program(program: &str, package: &str) -> PathBuf {
    find_program(program).unwrap_or_else(|| {
        panic!(
            "`{program}` was not found on PATH or in /usr/sbin, /usr/bin, ...: this test needs \
             it; install it with `apt-get install {package}` (`cargo xtask ci` does this when \
             run as root)"
        )
    })
}

/// Finds an executable file named `program` on `PATH` or in the standard Debian directories.
#[must_use]
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `command` to completion with its stdout and stderr captured, like
/// [`Command::output`], but kills it when it runs longer than `timeout`.
///
/// stdin is null. Both pipes are drained on threads while waiting, so a chatty child
/// cannot block on a full pipe.
///
/// # Errors
/// When the command cannot be started or waited for, or
/// [`std::io::ErrorKind::TimedOut`] (with what it printed to stderr so far) when it
/// outlives `timeout`.
pub fn output_with_timeout(command: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = ChildGuard::spawn(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )?;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                // A read error ends the capture; what was read so far is kept.
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Killing (on timeout) closes the pipes, which ends both drain threads.
    drop(child);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "killed after {timeout:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&stderr)
            ),
        )),
    }
}

/// A child process that is killed (`SIGKILL`) and reaped when the guard is dropped, so that
/// every test stops what it starts, on success and on panic alike.
///
/// It dereferences to [`Child`] for `id()`, `stdout`, `try_wait()` and the like.
///
/// ```no_run
/// use std::process::Command;
/// let tracker = lt_tests::ChildGuard::spawn(Command::new("opentracker").args(["-p", "6969"]))
///     .expect("start opentracker");
/// // ... run the test against it; it is killed when `tracker` goes out of scope.
/// # drop(tracker);
/// ```
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Guards an already started child.
    #[must_use]
    pub fn new(child: Child) -> Self {
        Self { child }
    }

    /// Starts `command` and guards the child.
    ///
    /// # Errors
    /// As [`Command::spawn`].
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        command.spawn().map(Self::new)
    }
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Both fail only when the child has already been reaped, which is the goal anyway.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a CA and a leaf certificate for 127.0.0.1 with the `openssl` tool; returns the CA
/// certificate, the leaf certificate and the leaf key, all PEM (also written to `dir` as
/// `ca.pem`, `leaf.pem` and `leaf.key`).
///
/// # Panics
/// When `openssl` is missing or fails.
pub fn test_certificates(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let openssl = require_program("openssl", "openssl");
    let run = |args: &[&str]| {
        let out = output_with_timeout(
            Command::new(&openssl).current_dir(dir).args(args),
            Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("openssl {args:?}: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=lt test CA",
        "-days",
        "2",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("ext.cnf: {e}"));
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    (read("ca.pem"), read("leaf.pem"), read("leaf.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_program_on_path() {
        let sh = require_program("sh", "dash");
        assert!(sh.is_absolute());
        assert_eq!(find_program(&sh.to_string_lossy()), Some(sh));
    }

    #[test]
    #[should_panic(expected = "apt-get install lt-no-such-package")]
    fn missing_program_names_the_package() {
        require_program("lt-no-such-program-5f3a", "lt-no-such-package");
    }

    #[test]
    fn missing_program_is_none() {
        assert_eq!(find_program("lt-no-such-program-5f3a"), None);
        assert_eq!(find_program("/nonexistent/lt-no-such-program"), None);
    }

    #[test]
    fn child_guard_kills_and_reaps_on_drop() {
        let guard = ChildGuard::spawn(Command::new("sleep").arg("600")).unwrap();
        let proc_dir = PathBuf::from(format!("/proc/{}", guard.id()));
        assert!(proc_dir.exists());
        drop(guard);
        // Reaped, not a zombie: the /proc entry is gone.
        assert!(!proc_dir.exists());
    }

    #[test]
    fn child_guard_tolerates_an_exited_child() {
        let mut guard = ChildGuard::spawn(&mut Command::new("true")).unwrap();
        assert!(guard.wait().unwrap().success());
        drop(guard);
    }

    #[test]
    fn output_with_timeout_captures_output() {
        let out = output_with_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn output_with_timeout_kills_a_slow_child() {
        let started = Instant::now();
        let err = output_with_timeout(
            Command::new("sh").args(["-c", "echo started >&2; exec sleep 600"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("started"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
