//! nginx (Debian's `nginx-light`) as a web seed: started on a free loopback port with its
//! own configuration in a temporary directory, serving one directory, stopped when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ChildGuard, require_program};

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    _child: ChildGuard,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: PathBuf,
    tls: bool,
}

impl Nginx {
    /// Serves `root` on a free loopback port; `extra` is added to the `server` block (for
    /// redirects). Waits until it accepts connections.
    ///
    /// # Panics
    /// When nginx is missing (install `nginx-light`) or does not start within 10 s.
    #[must_use]
    pub fn start(work: &Path, root: &Path, extra: &str) -> Self {
        Self::start_with(work, root, extra, None)
    }

    /// As [`Nginx::start`], over TLS with `(certificate, key)` (PEM files) when given.
    ///
    /// # Panics
    /// As [`Nginx::start`].
    #[must_use]
    pub fn start_with(work: &Path, root: &Path, extra: &str, tls: Option<(&Path, &Path)>) -> Self {
        let nginx = require_program("nginx", "nginx-light");
        let dir = work.join("nginx");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("nginx dir: {e}"));
        let port = crate::swarm::free_port();
        let d = dir.display();
        let listen = match tls {
            Some((cert, key)) => format!(
                "127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {}",
                cert.display(),
                key.display()
            ),
            None => format!("127.0.0.1:{port}"),
        };
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  gzip off;\n\
             server {{\n    listen {listen};\n    root {root};\n    {extra}\n  }}\n}}\n",
            root = root.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("nginx.conf: {e}"));
        let child = ChildGuard::spawn(
            Command::new(nginx)
                .arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .unwrap_or_else(|e| panic!("start nginx: {e}"));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start on {addr}: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            _child: child,
            addr,
            dir,
            tls: tls.is_some(),
        }
    }

    /// `http://127.0.0.1:port/` (or `https://`) followed by `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/{path}", self.addr)
    }

    /// The access log so far (to check which requests were made).
    #[must_use]
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}
