//! Real proxies for the proxy tests, each started on a free loopback port with its own
//! configuration in a temporary directory and stopped when dropped: Dante (`danted`,
//! Debian's `dante-server`) for SOCKS4 and SOCKS5, tinyproxy for HTTP `CONNECT` and proxied
//! HTTP requests. Their logs show every connection they made for us, which is how the tests
//! check that traffic went through them.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ChildGuard, output_with_timeout, require_program};

/// The system account Dante checks SOCKS5 usernames and passwords against (its `username`
/// method reads the password database; it has no user list of its own).
pub const SOCKS_USER: &str = "ltproxy";
/// Its password.
pub const SOCKS_PASSWORD: &str = "lt-proxy-pw";

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    _child: ChildGuard,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Proxy {
    /// Dante on a free loopback port: SOCKS4 and SOCKS5 (`CONNECT` and `UDP ASSOCIATE`)
    /// without authentication, or with SOCKS5 username/password ([`SOCKS_USER`], made if
    /// missing) when `auth`.
    ///
    /// # Panics
    /// When `danted` is missing (install `dante-server`), the account cannot be made, or
    /// Dante does not start within 10 s.
    #[must_use]
    pub fn dante(work: &Path, auth: bool) -> Self {
        Self::dante_on(work, auth, Ipv4Addr::LOCALHOST, "127.0.0.0/8")
    }

    /// As [`Proxy::dante`], listening on `listen` for clients of the network `clients`
    /// (`10.0.0.0/24` style); it connects out from 127.0.0.1.
    ///
    /// # Panics
    /// As [`Proxy::dante`].
    #[must_use]
    pub fn dante_on(work: &Path, auth: bool, listen: Ipv4Addr, clients: &str) -> Self {
        let danted = require_program("danted", "dante-server");
        if auth {
            ensure_socks_user();
        }
        let dir = work.join(if auth { "dante-auth" } else { "dante" });
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("dante dir: {e}"));
        let port = free_port(listen);
        let log = dir.join("danted.log");
        let method = if auth { "username" } else { "none" };
        let conf = format!(
            "logoutput: {log}\ninternal: {listen} port = {port}\nexternal: 127.0.0.1\n\
             socksmethod: {method}\nclientmethod: none\nuser.privileged: root\n\
             user.unprivileged: nobody\n\
             client pass {{\n  from: {clients} to: 0.0.0.0/0\n}}\n\
             socks pass {{\n  from: {clients} to: 0.0.0.0/0\n  command: connect udpassociate\n  \
             log: connect disconnect error\n}}\n\
             socks pass {{\n  from: 0.0.0.0/0 to: {clients}\n  command: udpreply\n  \
             log: connect disconnect error\n}}\n",
            log = log.display()
        );
        let conf_path = dir.join("danted.conf");
        std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("danted.conf: {e}"));
        let child = ChildGuard::spawn(
            Command::new(danted)
                .arg("-f")
                .arg(&conf_path)
                .arg("-p")
                .arg(dir.join("danted.pid"))
                .arg("-N")
                .arg("1")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .unwrap_or_else(|e| panic!("start danted: {e}"));
        Self::started(child, SocketAddr::from((listen, port)), log)
    }

    /// tinyproxy on a free loopback port, with basic authentication when `auth` is given.
    ///
    /// # Panics
    /// When tinyproxy is missing (install `tinyproxy`) or does not start within 10 s.
    #[must_use]
    pub fn tinyproxy(work: &Path, auth: Option<(&str, &str)>) -> Self {
        Self::tinyproxy_on(work, auth, Ipv4Addr::LOCALHOST, "127.0.0.1")
    }

    /// As [`Proxy::tinyproxy`], listening on `listen` for clients of `clients` (an address
    /// or a network).
    ///
    /// # Panics
    /// As [`Proxy::tinyproxy`].
    #[must_use]
    pub fn tinyproxy_on(
        work: &Path,
        auth: Option<(&str, &str)>,
        listen: Ipv4Addr,
        clients: &str,
    ) -> Self {
        let tinyproxy = require_program("tinyproxy", "tinyproxy");
        let dir = work.join(if auth.is_some() {
            "tinyproxy-auth"
        } else {
            "tinyproxy"
        });
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("tinyproxy dir: {e}"));
        let port = free_port(listen);
        let log = dir.join("tinyproxy.log");
        let mut conf = format!(
            "Port {port}\nListen {listen}\nTimeout 60\nPidFile \"{pid}\"\nLogFile \"{log}\"\n\
             LogLevel Connect\nMaxClients 100\nAllow {clients}\n",
            pid = dir.join("tinyproxy.pid").display(),
            log = log.display()
        );
        if let Some((user, password)) = auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_path = dir.join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("tinyproxy.conf: {e}"));
        let child = ChildGuard::spawn(
            Command::new(tinyproxy)
                .arg("-d")
                .arg("-c")
                .arg(&conf_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap_or_else(|e| panic!("start tinyproxy: {e}"));
        Self::started(child, SocketAddr::from((listen, port)), log)
    }

    fn started(child: ChildGuard, addr: SocketAddr, log: PathBuf) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the proxy did not start on {addr}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            _child: child,
            addr,
            log,
        }
    }

    /// The proxy's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the log shows a connection the proxy made to 127.0.0.1:`port` (Dante writes
    /// `127.0.0.1.PORT`, tinyproxy `127.0.0.1:PORT`).
    #[must_use]
    pub fn connected_to(&self, port: u16) -> bool {
        let log = self.log();
        log.contains(&format!("127.0.0.1.{port} ")) || log.contains(&format!("127.0.0.1:{port}"))
    }
}

/// A TCP port free on `ip`.
fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port on {ip}: {e}"))
}

/// Makes the [`SOCKS_USER`] account with [`SOCKS_PASSWORD`] unless it exists (no home, no
/// shell). A lock file keeps tests in parallel processes from making it twice.
///
/// # Panics
/// When `useradd` or `chpasswd` fail (they need root, as the CI runs).
pub fn ensure_socks_user() {
    let lock = std::fs::File::create(std::env::temp_dir().join("lt-tests-socks-user.lock"))
        .unwrap_or_else(|e| panic!("lock file: {e}"));
    lock.lock().unwrap_or_else(|e| panic!("lock: {e}"));
    let exists = Command::new("id")
        .arg(SOCKS_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return;
    }
    {
        let out = output_with_timeout(
            Command::new(require_program("useradd", "passwd")).args([
                "-M",
                "-s",
                "/usr/sbin/nologin",
                SOCKS_USER,
            ]),
            Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("useradd: {e}"));
        assert!(
            out.status.success(),
            "useradd {SOCKS_USER} (root is needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut child = Command::new(require_program("chpasswd", "passwd"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("chpasswd: {e}"));
    {
        use std::io::Write as _;
        let mut stdin = child
            .stdin
            .take()
            .unwrap_or_else(|| panic!("chpasswd stdin"));
        stdin
            .write_all(format!("{SOCKS_USER}:{SOCKS_PASSWORD}\n").as_bytes())
            .unwrap_or_else(|e| panic!("chpasswd: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("chpasswd: {e}"));
    assert!(
        out.status.success(),
        "chpasswd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
