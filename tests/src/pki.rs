//! Certificates for SSL torrent tests, made with the `openssl` command as a publisher would
//! (the manual suggests `CA.sh`): a root certificate, and peer certificates it signs with
//! chosen SubjectAltName dNSNames and Common Names, valid or expired.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{output_with_timeout, require_program};

/// A root (CA) certificate and its key, in a directory of its own.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
    /// The root certificate, PEM: what an SSL torrent embeds.
    pub root: PathBuf,
    root_key: PathBuf,
}

/// A peer certificate and its private key (PEM files).
#[derive(Debug, Clone)]
pub struct PeerCert {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The key's passphrase, when it is encrypted.
    pub passphrase: Option<String>,
}

fn openssl(args: &[&str]) {
    let program = require_program("openssl", "openssl");
    let out = output_with_timeout(Command::new(program).args(args), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("openssl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("not UTF-8: {}", p.display()))
}

impl Pki {
    /// A new root called `name` under `dir/name/`.
    ///
    /// # Panics
    /// When `openssl` fails or is missing.
    #[must_use]
    pub fn new(dir: &Path, name: &str) -> Self {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let root = dir.join("root.pem");
        let root_key = dir.join("root.key");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            path_str(&root_key),
            "-out",
            path_str(&root),
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}"),
        ]);
        Self {
            dir,
            root,
            root_key,
        }
    }

    /// A peer certificate `file` signed by this root, with these SubjectAltName dNSNames
    /// and one Common Name each of `cns` (the last is the most specific); `expired` makes
    /// it end before it begins (valid at no time).
    ///
    /// # Panics
    /// When `openssl` fails.
    #[must_use]
    pub fn issue(&self, file: &str, dns: &[&str], cns: &[&str], expired: bool) -> PeerCert {
        let cert = self.dir.join(format!("{file}.pem"));
        let key = self.dir.join(format!("{file}.key"));
        let csr = self.dir.join(format!("{file}.csr"));
        let subject: String = cns.iter().map(|cn| format!("/CN={cn}")).collect();
        let subject = if subject.is_empty() {
            "/O=lt tests".to_owned()
        } else {
            subject
        };
        let mut req = vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&csr),
            "-subj",
            &subject,
            // An extension makes it X.509 v3: without one `openssl x509 -req` makes a v1
            // certificate, which webpki (rustls) refuses.
            "-addext",
            "basicConstraints=CA:FALSE",
        ];
        let san = dns
            .iter()
            .map(|d| format!("DNS:{d}"))
            .collect::<Vec<_>>()
            .join(",");
        let san = format!("subjectAltName={san}");
        if !dns.is_empty() {
            req.extend(["-addext", &san]);
        }
        openssl(&req);
        let days = if expired { "-1" } else { "10" };
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_str(&csr),
            "-CA",
            path_str(&self.root),
            "-CAkey",
            path_str(&self.root_key),
            "-CAcreateserial",
            "-out",
            path_str(&cert),
            "-days",
            days,
            "-copy_extensions",
            "copy",
        ]);
        PeerCert {
            cert,
            key,
            passphrase: None,
        }
    }

    /// `cert` with its key encrypted with `passphrase` as OpenSSL 3 does by default (PKCS#8,
    /// PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC) in a new file.
    ///
    /// # Panics
    /// When `openssl` fails.
    #[must_use]
    pub fn encrypt_key(cert: &PeerCert, passphrase: &str) -> PeerCert {
        let out = cert.key.with_extension("encrypted.key");
        openssl(&[
            "pkcs8",
            "-topk8",
            "-in",
            path_str(&cert.key),
            "-out",
            path_str(&out),
            "-passout",
            &format!("pass:{passphrase}"),
        ]);
        PeerCert {
            cert: cert.cert.clone(),
            key: out,
            passphrase: Some(passphrase.to_owned()),
        }
    }

    /// Diffie-Hellman parameters, which libtorrent 2.0's `set_ssl_certificate` asks for.
    ///
    /// # Panics
    /// When `openssl` fails.
    #[must_use]
    pub fn dh_params(&self) -> PathBuf {
        let dh = self.dir.join("dh.pem");
        openssl(&["dhparam", "-dsaparam", "-out", path_str(&dh), "2048"]);
        dh
    }
}
